"""The Dataset every part of the explorer works on, and its fixed splits.

A dataset is one input modality (text, tabular or image), the inputs, and any
number of tasks with their labels. Splits depend only on the dataset and a split
seed (never on the tasks or the training seed), so every single-task and
multi-task model trained on a dataset is scored on the same test rows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from explorer.errors import ExplorerError
from explorer.data.tasks import Task, coverage, has_label

Modality = Literal["text", "tabular", "image"]
TEST_SHARE = 0.2
VAL_SHARE = 0.1


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


@dataclass
class Dataset:
    """Inputs plus tasks.

    ``inputs`` is a list of strings (text), a DataFrame of feature columns
    (tabular) or a float array of shape (n, h, w) (image). ``labels[name]`` holds
    int codes (-1 = missing) or floats (NaN = missing), see ``explorer.data.tasks``.
    ``source`` records how to load it again (name and options), which the run
    store keeps so a baseline is reused only on the same data.
    """
    name: str
    modality: Modality
    inputs: list[str] | pd.DataFrame | np.ndarray
    tasks: dict[str, Task]
    labels: dict[str, np.ndarray]
    description: str = ""
    categorical: list[str] = field(default_factory=list)
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def fingerprint(self) -> str:
        """A short hash of the inputs and labels: equal data, equal fingerprint."""
        h = hashlib.sha256()
        h.update(self.modality.encode())
        if self.modality == "text":
            for t in self.inputs:
                h.update(t.encode("utf-8", "replace") + b"\0")
        elif self.modality == "tabular":
            h.update(pd.util.hash_pandas_object(self.inputs, index=False).to_numpy().tobytes())
        else:
            h.update(np.ascontiguousarray(self.inputs, dtype=np.float32).tobytes())
        for name, y in self.labels.items():
            h.update(name.encode() + np.ascontiguousarray(y).tobytes())
        return h.hexdigest()[:16]

    def check_tasks(self, names: list[str]) -> list[str]:
        """Validate a user's task selection; returns it as a list, in order."""
        if not names:
            raise ExplorerError(f"No task selected. Choose one or more of: {', '.join(self.tasks)}.")
        unknown = [n for n in names if n not in self.tasks]
        if unknown:
            raise ExplorerError(f"Unknown task(s) {', '.join(map(repr, unknown))} for dataset '{self.name}'. "
                                f"Available tasks: {', '.join(self.tasks)}.")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ExplorerError(f"Task(s) {', '.join(map(repr, twice))} listed more than once. "
                                "Name each task once.")
        return list(names)

    def split(self, seed: int = 0, train_size: float | int = 1.0) -> Split:
        """Deterministic train/validation/test split.

        Test (20 %) and validation (10 %) rows depend only on ``seed``. The
        training pool is then cut to ``train_size`` (a fraction of the pool or a
        row count) by taking a prefix of one fixed permutation, so smaller
        training sets are nested in larger ones and validation/test never move.
        """
        n = len(self)
        idx = np.arange(n)
        strat = self._strata()
        rest, test = _split(idx, TEST_SHARE, seed, strat)
        val_share = VAL_SHARE / (1 - TEST_SHARE)
        train, val = _split(rest, val_share, seed + 1, None if strat is None else strat[rest])
        train = np.random.default_rng(seed + 2).permutation(train)
        n_train = resolve_train_size(train_size, len(train))
        return Split(np.sort(train[:n_train]), np.sort(val), np.sort(test))

    def _strata(self) -> np.ndarray | None:
        # Stratify on the classification task with the fewest classes among the
        # fully labelled ones: it always has enough rows per stratum.
        for t in sorted(self.tasks.values(), key=lambda t: len(t.classes)):
            y = self.labels[t.name]
            if t.is_classification and coverage(y) == 1.0 and np.bincount(y).min() >= 5:
                return y
        return None

    def summary(self) -> list[dict]:
        """One row per task: kind, classes, label coverage, class counts."""
        rows = []
        for t in self.tasks.values():
            y = self.labels[t.name]
            row = {"task": t.name, "kind": t.kind, "n_classes": len(t.classes) or None,
                   "coverage": round(coverage(y), 3), "description": t.description}
            if t.is_classification:
                counts = np.bincount(y[has_label(y)], minlength=len(t.classes))
                row["class_counts"] = dict(zip(t.classes, counts.tolist()))
            rows.append(row)
        return rows

    def subset_rows(self, rows: np.ndarray):
        """The inputs of some rows, in the dataset's own container type."""
        if self.modality == "text":
            return [self.inputs[i] for i in rows]
        if self.modality == "tabular":
            return self.inputs.iloc[rows].reset_index(drop=True)
        return self.inputs[rows]


def resolve_train_size(train_size: float | int, pool: int) -> int:
    """A fraction in (0, 1] or a row count >= 2, checked against the pool size."""
    if isinstance(train_size, bool) or not isinstance(train_size, (int, float, np.integer, np.floating)):
        raise ExplorerError(f"Training-set size must be a number, got {train_size!r}.")
    if isinstance(train_size, (float, np.floating)) and not np.isfinite(train_size):
        raise ExplorerError(f"Training-set size must be a finite number, got {train_size!r}.")
    if isinstance(train_size, (float, np.floating)) and train_size <= 1.0:
        if train_size <= 0:
            raise ExplorerError(f"Training fraction must be in (0, 1], got {train_size}.")
        return max(2, int(round(train_size * pool)))
    n = int(train_size)
    if n != train_size or n < 2:
        raise ExplorerError(f"Training-set size {train_size!r} is neither a fraction in (0, 1] "
                            "nor a whole number of rows >= 2.")
    if n > pool:
        raise ExplorerError(f"Training-set size {n} is larger than the training pool ({pool} rows). "
                            f"Use at most {pool}, or a fraction such as 0.5.")
    return n


def _split(idx: np.ndarray, share: float, seed: int, strat: np.ndarray | None):
    try:
        a, b = train_test_split(idx, test_size=share, random_state=seed, stratify=strat)
    except ValueError:  # a stratum too small to split: fall back to a plain split
        a, b = train_test_split(idx, test_size=share, random_state=seed)
    return np.sort(a), np.sort(b)
