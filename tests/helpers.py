"""Small real datasets for fast tests (sklearn's digits ships with scikit-learn)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from explorer.data.dataset import Dataset
from explorer.data.tasks import encode_labels


def tiny_digits(missing_even: float = 0.0) -> Dataset:
    d = load_digits()
    digit_task, digit = encode_labels("digit", pd.Series(d.target))
    even = pd.Series(np.where(d.target % 2 == 0, "even", "odd"))
    if missing_even:
        rng = np.random.default_rng(0)
        even[rng.random(len(even)) < missing_even] = None
    even_task, even_y = encode_labels("even", even)
    size_task, size = encode_labels("ink", pd.Series(d.images.sum(axis=(1, 2)).astype(float)), kind="regression")
    return Dataset("digits-test", "image", (d.images / 16).astype(np.float32),
                   {"digit": digit_task, "even": even_task, "ink": size_task},
                   {"digit": digit, "even": even_y, "ink": size}, source={"name": "digits-test"})
