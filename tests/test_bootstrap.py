"""The paired test-row bootstrap: exact metrics at unit weights, and the variance of a real resample."""
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, r2_score

from explorer.data.tasks import Task
from explorer.relatedness.bootstrap import row_variance, weighted_scores

CLS = Task("c", "multiclass", ("a", "b", "c", "d"))
REG = Task("r", "regression")


def test_unit_weights_give_the_scikit_learn_metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    preds = [np.where(rng.random(300) < 0.7, y, rng.integers(0, 3, 300)) for _ in range(3)]  # class 3 never guessed
    w = np.ones((1, 300))
    f1 = np.mean([f1_score(y, p, average="macro", labels=np.arange(4), zero_division=0) for p in preds])
    assert weighted_scores(CLS, y, preds, w)[0] == pytest.approx(f1, abs=1e-12)
    by_accuracy = SimpleNamespace(primary_metric="accuracy", classes=CLS.classes)
    assert weighted_scores(by_accuracy, y, preds, w)[0] == pytest.approx(
        np.mean([accuracy_score(y, p) for p in preds]), abs=1e-12)
    yr = rng.normal(size=300)
    pr = [yr + rng.normal(scale=0.5, size=300) for _ in range(2)]
    assert weighted_scores(REG, yr, pr, w)[0] == pytest.approx(np.mean([r2_score(yr, p) for p in pr]), abs=1e-9)


@pytest.mark.parametrize("agree", [0.95, 0.5])
def test_row_variance_matches_drawing_new_test_sets(agree):
    """The bootstrap on one test set estimates how the score difference varies over fresh test sets of the
    population, and pairing makes it smaller than the two scores' variances added up when models agree."""
    rng = np.random.default_rng(1)
    N, n = 40_000, 400
    y = rng.integers(0, 4, N)
    a = np.where(rng.random(N) < 0.75, y, rng.integers(0, 4, N))
    b = np.where(rng.random(N) < agree, a, np.where(rng.random(N) < 0.78, y, rng.integers(0, 4, N)))
    fresh, est, apart = [], [], []
    for k in range(300):
        rows = rng.choice(N, n, replace=False)
        f = lambda p: f1_score(y[rows], p[rows], average="macro", labels=np.arange(4), zero_division=0)
        fresh.append(f(a) - f(b))
        if k < 20:
            est.append(row_variance(CLS, y[rows], [a[rows]], [b[rows]], seed=k))
            apart.append(row_variance(CLS, y[rows], [a[rows]], [a[rows][rng.permutation(n)]], seed=k))
    truth = np.var(fresh, ddof=1)
    assert np.mean(est) == pytest.approx(truth, rel=0.35)
    if agree > 0.9:
        assert np.mean(est) < 0.5 * np.mean(apart)


def test_no_predictions_or_labels_means_no_row_noise():
    y = np.full(10, -1)
    assert row_variance(CLS, y, [np.zeros(10)], [np.zeros(10)]) == 0.0
    assert row_variance(CLS, np.zeros(10, int), [], [np.zeros(10)]) == 0.0
