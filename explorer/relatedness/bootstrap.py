"""Test-row sampling noise of a gain: a paired bootstrap over the test rows.

Seeds measure how much a score moves when the models are trained again; they
say nothing about how much it would move on another sample of test rows. Both
models of a cell predict the same rows, so the rows are resampled together
(one multinomial draw of row weights per bootstrap replicate, shared by every
model of the cell) and the variance of the difference of seed-mean scores over
the replicates is the test-row part of the cell's uncertainty
(``explorer.relatedness.gains.gain_stats(row_var=...)``). Rows where the two
sides agree cancel, which is why the paired version is much narrower than the
variance of either score.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from explorer.data.tasks import Task, has_label

DRAWS = 200


def _weights(n: int, draws: int, seed: int) -> np.ndarray:
    """[draws, n] bootstrap row counts (multinomial with equal row probabilities)."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=draws).astype(float)


def weighted_scores(task: Task, y: np.ndarray, predictions: Sequence[np.ndarray], w: np.ndarray) -> np.ndarray:
    """[draws] the mean over ``predictions`` (one per seed) of the task's primary metric under row weights ``w``.

    Macro-F1 follows scikit-learn's ``f1_score(average="macro", labels=all classes, zero_division=0)``;
    accuracy and R² are their weighted forms.
    """
    metric = task.primary_metric
    out = np.zeros(len(w))
    total = w.sum(1)
    if metric == "macro_f1":  # what only the labels decide, once for every prediction
        k = len(task.classes)
        truth = np.eye(k)[y.astype(int)]
        true_count = w @ truth
    elif metric != "accuracy":  # r2
        spread = w @ y ** 2 - total * (w @ y / total) ** 2
        spread = np.where(spread > 0, spread, np.nan)
    for p in predictions:
        if metric == "macro_f1":
            guess = np.eye(k)[np.asarray(p).astype(int)]
            tp = w @ (truth * guess)
            denom = true_count + w @ guess
            out += np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0).mean(1)
        elif metric == "accuracy":
            out += w @ (np.asarray(p) == y).astype(float) / total
        else:  # r2
            out += 1 - w @ (y - np.asarray(p, float)) ** 2 / spread
    return out / len(predictions)


def row_variance(task: Task, y_true: np.ndarray, multi: Sequence[np.ndarray], single: Sequence[np.ndarray],
                 draws: int = DRAWS, seed: int = 0) -> float:
    """Variance over test-row resamples of (mean multi score − mean single score), in metric units².

    ``multi`` and ``single`` are each side's test predictions, one array per seed, over the same rows.
    """
    keep = has_label(y_true)
    if keep.sum() < 2 or not multi or not single:
        return 0.0
    y = np.asarray(y_true)[keep]
    w = _weights(len(y), draws, seed)
    diff = (weighted_scores(task, y, [np.asarray(p)[keep] for p in multi], w)
            - weighted_scores(task, y, [np.asarray(p)[keep] for p in single], w))
    diff = diff[np.isfinite(diff)]
    return float(diff.var(ddof=1)) if len(diff) > 1 else 0.0
