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


def numeric_block(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as one float array (rows x columns), text that is not a number as NaN.

    One block instead of a pandas call per column: a file with thousands of
    columns pays the per-call overhead thousands of times otherwise.
    """
    if not columns:
        return np.zeros((len(frame), 0))
    sub = frame[columns]
    if all(pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t) for t in sub.dtypes):
        return sub.to_numpy(dtype=float, na_value=np.nan)
    return np.column_stack([pd.to_numeric(sub.iloc[:, i], errors="coerce").astype(float).to_numpy()
                            for i in range(len(columns))])


class TabularPreprocessor:
    """Standardised numeric columns (missing -> train mean) plus one-hot categoricals."""
    modality = "tabular"

    def __init__(self, numeric: dict[str, tuple[float, float]], categorical: dict[str, list[str]]):
        self.numeric = numeric
        self.categorical = categorical

    @classmethod
    def fit(cls, frame: pd.DataFrame, categorical: list[str]):
        cat = set(categorical)
        names = [c for c in frame.columns if c not in cat]
        block = numeric_block(frame, names)
        counts = (~np.isnan(block)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, np.nansum(block, axis=0) / np.maximum(counts, 1), 0.0)
            centred = np.where(np.isnan(block), 0.0, block - means)
            stds = np.sqrt((centred ** 2).sum(axis=0) / np.maximum(counts - 1, 1))
        stds = np.where((counts > 1) & (stds > 0), stds, 1.0)
        numeric = {c: (float(m), float(sd)) for c, m, sd in zip(names, means, stds)}
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
        if self.numeric:
            stats = np.array(list(self.numeric.values()), dtype=float).reshape(-1, 2)
            block = numeric_block(frame, list(self.numeric))
            block = np.where(np.isnan(block), stats[:, 0], block)
            parts.append((block - stats[:, 0]) / stats[:, 1])
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
