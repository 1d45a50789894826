"""Per-task test metrics. The primary metric is macro-F1 (classification) or R² (regression)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

from explorer.data.tasks import Task, has_label

def task_metrics(task: Task, y_true: np.ndarray, prediction: np.ndarray) -> dict:
    """Metrics on the rows that have a label.

    ``prediction`` is class codes for classification and values in the label's
    own units for regression.
    """
    keep = has_label(y_true)
    y, p = y_true[keep], prediction[keep]
    out: dict = {"primary": task.primary_metric, "n": int(keep.sum())}
    if len(y) == 0:
        return out
    if task.is_classification:
        out["macro_f1"] = float(f1_score(y, p, average="macro", labels=np.arange(len(task.classes)),
                                         zero_division=0))
        out["accuracy"] = float(accuracy_score(y, p))
    else:
        out["r2"] = float(r2_score(y, p))
        out["mae"] = float(mean_absolute_error(y, p))
    return out


def majority_baseline(task: Task, y_train: np.ndarray, y_test: np.ndarray) -> dict:
    """What predicting the most common training class (or the training mean) scores."""
    seen = y_train[has_label(y_train)]
    if task.is_classification:
        guess = np.full(len(y_test), np.bincount(seen).argmax() if len(seen) else 0)
    else:
        guess = np.full(len(y_test), seen.mean() if len(seen) else 0.0)
    return task_metrics(task, y_test, guess)


def primary(metrics: dict) -> float:
    return float(metrics[metrics["primary"]])


def chance_score(task: Task, y_train: np.ndarray, y_test: np.ndarray) -> float | None:
    """The primary score a predictor with no information about the input reaches on the test rows.

    The better of two such predictors: the majority class / training mean, and, for
    classification, guessing each class at its training frequency. The second is what
    matters for macro-F1: its expected per-class F1 is 2pq/(p+q) (p the test share, q the
    guessing share), so on three balanced classes it scores about 0.33 while the
    majority scores 0.17, and a model learning nothing (a shuffled task) lands near it.
    """
    base = majority_baseline(task, y_train, y_test)
    if base["primary"] not in base:
        return None
    best = primary(base)
    if task.is_classification:
        seen, truth = y_train[has_label(y_train)], y_test[has_label(y_test)]
        k = len(task.classes)
        if len(seen) and len(truth):
            q = np.bincount(seen, minlength=k)[:k] / len(seen)
            p = np.bincount(truth, minlength=k)[:k] / len(truth)
            if task.primary_metric == "macro_f1":
                guess = float(np.mean(np.where(p + q > 0, 2 * p * q / np.where(p + q > 0, p + q, 1), 0.0)))
            else:  # accuracy
                guess = float(p @ q)
            best = max(best, guess)
    return best
