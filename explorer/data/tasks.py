"""Tasks: what a head predicts, and how its labels are encoded.

Classification labels are stored as integer codes into ``Task.classes`` with
-1 for a missing label; regression labels are floats with NaN for missing.
Missing labels are normal: the loss of a task is masked where its label is
missing, so tasks with partial coverage can still be trained together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from explorer.errors import ExplorerError
from explorer.data.validation import check_finite, check_not_empty, normalise_label

Kind = Literal["binary", "multiclass", "regression"]
KINDS: tuple[str, ...] = ("binary", "multiclass", "regression")
MAX_CLASSES = 200


@dataclass(frozen=True)
class Task:
    name: str
    kind: Kind
    classes: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    @property
    def is_classification(self) -> bool:
        return self.kind != "regression"

    @property
    def n_outputs(self) -> int:
        """Width of the task's head: one logit per class, one value for regression."""
        return len(self.classes) if self.is_classification else 1

    @property
    def primary_metric(self) -> str:
        return "macro_f1" if self.is_classification else "r2"

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes),
                "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(d["name"], d["kind"], tuple(d.get("classes", ())), d.get("description", ""))


def encode_labels(name: str, values: pd.Series, kind: str | None = None,
                  description: str = "", classes: list[str] | None = None) -> tuple[Task, np.ndarray]:
    """Turn a column of raw labels into a Task and its encoded label array.

    ``kind`` is detected when not given: numeric columns with more than 20
    distinct values are regression, everything else is classification.
    ``classes`` fixes the class order (e.g. terciles low < mid < high).
    """
    if kind is not None and kind not in KINDS:
        raise ExplorerError(f"Task '{name}': unknown kind '{kind}'. Use one of {', '.join(KINDS)}.")
    check_not_empty(name, values, "label column")
    present = values.dropna()
    if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
        present = present[present.astype(str).str.strip() != ""]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if kind is None:
        kind = "regression" if numeric and present.nunique() > 20 else (
            "binary" if present.nunique() == 2 else "multiclass")
    if kind == "regression":
        if not numeric:
            as_num = pd.to_numeric(values, errors="coerce")
            if as_num.notna().sum() < len(present):
                raise ExplorerError(f"Label column '{name}' is not numeric, so it cannot be a regression "
                                    "task. Choose kind 'multiclass' or 'binary' for it.")
            values = as_num
        y = check_finite(name, values.astype(float).to_numpy(), "regression target")
        if np.nanstd(y) == 0:
            raise ExplorerError(f"Label column '{name}' has a single value: there is nothing to predict.")
        return Task(name, "regression", (), description), y
    # A plain list, not a Series: ``where(..., None)`` turns None back into NaN
    # in float and string columns, and NaN would then become a class "nan".
    # Normalised, so ' yes' and 'yes', or '1' and '1.0', are one class, not two.
    labels = [None if _is_missing(v) else normalise_label(_label_str(v)) for v in values.tolist()]
    labels = [None if v is None or v == "" else v for v in labels]
    found = sorted({v for v in labels if v is not None}, key=_natural_key)
    if classes is None:
        classes = found
    if len(found) < 2:
        raise ExplorerError(f"Label column '{name}' has only one class ({found[0]!r}): a task needs at "
                            "least two classes. Drop it from the tasks.")
    if len(classes) > MAX_CLASSES:
        raise ExplorerError(f"Label column '{name}' has {len(classes)} classes; the limit is {MAX_CLASSES}. "
                            "Is it an identifier or a free-text column? Choose another label column, "
                            "or make it a regression task if it is numeric.")
    if kind == "binary" and len(classes) != 2:
        raise ExplorerError(f"Task '{name}' is set to binary but has {len(classes)} classes. "
                            "Use kind 'multiclass'.")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([-1 if v is None else index.get(v, -1) for v in labels], dtype=np.int64)
    kind = "binary" if len(classes) == 2 else "multiclass"
    return Task(name, kind, tuple(classes), description), y


def _is_missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # not a scalar
        return False


def _label_str(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _natural_key(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def coverage(y: np.ndarray) -> float:
    """Share of rows that have a label."""
    missing = np.isnan(y) if y.dtype.kind == "f" else (y < 0)
    return float(1.0 - missing.mean()) if len(y) else 0.0


def has_label(y: np.ndarray) -> np.ndarray:
    return ~np.isnan(y) if y.dtype.kind == "f" else (y >= 0)
