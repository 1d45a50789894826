"""Turning raw inputs into tensors, fitted on the training split only.

Each preprocessor is JSON-serialisable (``to_dict``/``from_dict``) so a run or an
exported bundle can rebuild it without pickle. The exported ONNX graph starts
after preprocessing: it takes token ids or the transformed feature vector.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:  # only for hints: a bundle loads without sklearn and the data layer
    from explorer.data.dataset import Dataset

TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
PAD, UNK = "<pad>", "<unk>"


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; the same function builds the vocabulary and explains words."""
    return TOKEN_RE.findall(text.lower())


class TextPreprocessor:
    modality = "text"

    def __init__(self, vocab: list[str], max_len: int = 256):
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}
        self.max_len = max_len

    @classmethod
    def fit(cls, texts: list[str], max_vocab: int = 20000, min_freq: int = 2, max_len: int = 256):
        counts = Counter(w for t in texts for w in tokenize(t))
        words = [w for w, c in counts.most_common(max_vocab) if c >= min_freq]
        return cls([PAD, UNK] + words, max_len)

    @property
    def input_spec(self) -> dict:
        return {"vocab_size": len(self.vocab)}

    def ids(self, text: str) -> list[int]:
        unk = self.index[UNK]
        return [self.index.get(w, unk) for w in tokenize(text)[: self.max_len]]

    def transform(self, texts: list[str]) -> torch.Tensor:
        # Pad to the longest document in the batch (not max_len) to save work.
        rows = [self.ids(t) or [self.index[UNK]] for t in texts]
        width = max(len(r) for r in rows) if rows else 1
        out = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def to_dict(self) -> dict:
        return {"modality": "text", "vocab": self.vocab, "max_len": self.max_len}

    @classmethod
    def from_dict(cls, d: dict) -> "TextPreprocessor":
        return cls(d["vocab"], d["max_len"])


class TabularPreprocessor:
    """Standardised numeric columns (missing -> train mean) plus one-hot categoricals."""
    modality = "tabular"

    def __init__(self, numeric: dict[str, tuple[float, float]], categorical: dict[str, list[str]]):
        self.numeric = numeric
        self.categorical = categorical

    @classmethod
    def fit(cls, frame: pd.DataFrame, categorical: list[str]):
        numeric = {}
        for c in frame.columns:
            if c in categorical:
                continue
            col = pd.to_numeric(frame[c], errors="coerce").astype(float)
            mean = float(col.mean()) if col.notna().any() else 0.0
            std = float(col.std()) if col.notna().sum() > 1 else 1.0
            numeric[c] = (mean, std if std > 0 else 1.0)
        cats = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical}
        return cls(numeric, cats)

    @property
    def feature_names(self) -> list[str]:
        return list(self.numeric) + [f"{c}={v}" for c, vs in self.categorical.items() for v in vs]

    @property
    def feature_groups(self) -> list[str]:
        """The source column of each transformed feature (to sum one-hot attributions back)."""
        return list(self.numeric) + [c for c, vs in self.categorical.items() for _ in vs]

    @property
    def input_spec(self) -> dict:
        return {"n_features": len(self.feature_names)}

    def transform(self, frame: pd.DataFrame) -> torch.Tensor:
        parts = []
        for c, (mean, std) in self.numeric.items():
            col = pd.to_numeric(frame[c], errors="coerce").astype(float).fillna(mean).to_numpy()
            parts.append(((col - mean) / std)[:, None])
        for c, values in self.categorical.items():
            col = frame[c].astype(str).to_numpy()
            parts.append((col[:, None] == np.array(values)[None, :]).astype(float))
        x = np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))
        return torch.tensor(x, dtype=torch.float32)

    def to_dict(self) -> dict:
        return {"modality": "tabular", "numeric": self.numeric, "categorical": self.categorical}

    @classmethod
    def from_dict(cls, d: dict) -> "TabularPreprocessor":
        return cls({k: tuple(v) for k, v in d["numeric"].items()}, d["categorical"])


class ImagePreprocessor:
    modality = "image"

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width

    @classmethod
    def fit(cls, images: np.ndarray):
        return cls(int(images.shape[1]), int(images.shape[2]))

    @property
    def input_spec(self) -> dict:
        return {"height": self.height, "width": self.width}

    def transform(self, images: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(images, dtype=np.float32).reshape(-1, self.height, self.width))

    def to_dict(self) -> dict:
        return {"modality": "image", "height": self.height, "width": self.width}

    @classmethod
    def from_dict(cls, d: dict) -> "ImagePreprocessor":
        return cls(d["height"], d["width"])


Preprocessor = TextPreprocessor | TabularPreprocessor | ImagePreprocessor
_BY_MODALITY = {"text": TextPreprocessor, "tabular": TabularPreprocessor, "image": ImagePreprocessor}


def fit_preprocessor(dataset: "Dataset", train_rows: np.ndarray, max_len: int = 256) -> Preprocessor:
    """Fit on the training rows only, so nothing about validation or test leaks in."""
    train_inputs = dataset.subset_rows(train_rows)
    if dataset.modality == "text":
        return TextPreprocessor.fit(train_inputs, max_len=max_len)
    if dataset.modality == "tabular":
        return TabularPreprocessor.fit(train_inputs, dataset.categorical)
    return ImagePreprocessor.fit(train_inputs)


def preprocessor_from_dict(d: dict) -> Preprocessor:
    return _BY_MODALITY[d["modality"]].from_dict(d)
