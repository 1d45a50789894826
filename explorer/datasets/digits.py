"""Handwritten digits (scikit-learn's 8x8 ``load_digits``, shipped with scikit-learn).

Every task is a function of the digit, so they are related by construction:
the explorer should find that, e.g., ``even`` and ``digit`` share almost
everything, while ``closed_loop`` needs a different cut through the classes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits as _sk_load_digits

from explorer.data.dataset import Dataset
from explorer.datasets import register
from explorer.data.tasks import Task, encode_labels

CLOSED_LOOP = (0, 6, 8, 9)
PRIMES = (2, 3, 5, 7)


@register("digits", "image", "1,797 handwritten 8x8 digits; tasks: the digit and four yes/no properties of it.")
def load_digits() -> Dataset:
    raw = _sk_load_digits()
    images = (raw.images / 16.0).astype(np.float32)  # pixel values are counts 0..16
    digit = raw.target.astype(int)

    def yes_no(mask: np.ndarray) -> pd.Series:
        return pd.Series(np.where(mask, "yes", "no"))

    specs = [
        ("digit", pd.Series(digit), [str(i) for i in range(10)], "Which digit, 0-9."),
        ("even", yes_no(digit % 2 == 0), ["no", "yes"], "Whether the digit is even."),
        ("ge5", yes_no(digit >= 5), ["no", "yes"], "Whether the digit is 5 or more."),
        ("closed_loop", yes_no(np.isin(digit, CLOSED_LOOP)), ["no", "yes"],
         "Whether the digit has a closed loop (0, 6, 8, 9)."),
        ("prime", yes_no(np.isin(digit, PRIMES)), ["no", "yes"], "Whether the digit is prime (2, 3, 5, 7)."),
    ]
    tasks: dict[str, Task] = {}
    labels: dict[str, np.ndarray] = {}
    for name, values, classes, description in specs:
        tasks[name], labels[name] = encode_labels(name, values, kind="multiclass" if len(classes) > 2
                                                  else "binary", description=description, classes=classes)
    return Dataset(
        name="digits", modality="image", inputs=images, tasks=tasks, labels=labels,
        description="Handwritten digits, 8x8 pixels scaled to [0, 1] (scikit-learn's load_digits).",
        source={"name": "digits"},
    )
