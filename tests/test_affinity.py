"""One-run affinity estimates on constructed tasks whose relation is known in advance."""
import numpy as np
import pandas as pd
import pytest

from explorer.relatedness.affinity import compare_with_gains, one_run_affinity
from explorer.data.dataset import Dataset
from explorer.errors import Cancelled, ExplorerError
from explorer.training.trainer import TrainConfig


def synthetic(n=600, seed=0) -> Dataset:
    """Random features; A and A2 share one label; B and C need different features; NEG_B = -B."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    same = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    from explorer.data.tasks import Task
    tasks = {"A": Task("A", "binary", ("no", "yes")), "A2": Task("A2", "binary", ("no", "yes")),
             "B": Task("B", "regression"), "C": Task("C", "regression"), "NEG_B": Task("NEG_B", "regression")}
    labels = {"A": same, "A2": same.copy(), "B": x[:, 2].copy(), "C": x[:, 3].copy(), "NEG_B": -x[:, 2]}
    return Dataset("synthetic", "tabular", pd.DataFrame(x, columns=["x0", "x1", "x2", "x3"]), tasks, labels)


def config(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=32, lr=1e-2, hidden=16, dropout=0.0, patience=0, seed=0)
    return TrainConfig(**{**base, **kw})


def test_identical_tasks_have_high_affinity():
    out = one_run_affinity(synthetic(), ["A", "A2"], config(), every=2)
    assert out["tasks"] == ["A", "A2"]
    assert out["grad_cosine"][0][1] > 0.5 and out["grad_cosine"][0][1] == out["grad_cosine"][1][0]
    assert out["conflict_share"][0][1] < 0.2
    # each one's step lowers the other's loss, about as much as its own
    assert out["lookahead"][0][1] > 0 and out["lookahead"][1][0] > 0
    assert out["lookahead"][1][0] > 0.3 * out["lookahead_self"][0]
    assert out["grad_cosine"][0][0] is None and out["lookahead"][1][1] is None
    assert out["steps_measured"] >= 10


def test_tasks_competing_for_a_narrow_layer_conflict():
    # Two ReLU units are too few to carry x2 and x3 well: near the compromise each task's gradient
    # pulls the shared layer away from the other (at a joint optimum of the sum they are exactly opposite).
    # Checked over seeds 0-5: cosine -0.4 to -0.7, conflict share 0.72 to 0.92.
    out = one_run_affinity(synthetic(n=1000), ["B", "C"], config(hidden=2, epochs=10, batch_size=64), every=1)
    assert out["grad_cosine"][0][1] < -0.2
    assert out["conflict_share"][0][1] > 0.6
    assert out["lookahead"][0][1] < 0 and out["lookahead"][1][0] < 0


def test_a_sign_flipped_target_is_not_a_conflict():
    # Each task has its own linear head, which absorbs the sign: y and -y want the same shared features.
    out = one_run_affinity(synthetic(), ["B", "NEG_B"], config(), every=2)
    assert out["grad_cosine"][0][1] > 0.2
    assert out["lookahead"][0][1] > 0


def test_lookahead_orientation_follows_the_transfer_matrix():
    # A helps A2 strongly; C's update does nothing useful for A. Row = affected task, column = source.
    out = one_run_affinity(synthetic(), ["A", "A2", "C"], config(), every=2)
    assert out["lookahead"][1][0] > abs(out["lookahead"][1][2])


def test_cancel_and_bad_input():
    with pytest.raises(Cancelled):
        one_run_affinity(synthetic(), ["A", "B"], config(), progress=lambda e: False)
    with pytest.raises(ExplorerError, match="at least two"):
        one_run_affinity(synthetic(), ["A"], config())
    with pytest.raises(ExplorerError, match="every"):
        one_run_affinity(synthetic(), ["A", "B"], config(), every=0)


def test_spearman_against_trained_gains():
    gains = [[None, 5.0, -3.0], [1.0, None, 2.0], [-4.0, 0.5, None]]
    ranked = [[None, 0.9, 0.1], [0.5, None, 0.7], [0.0, 0.4, None]]  # same order as the gains
    affinity = {"lookahead": ranked, "grad_cosine": [[-v if v is not None else None for v in row] for row in ranked],
                "conflict_share": [[None, 0.5, 0.5], [0.5, None, 0.5], [0.5, 0.5, None]]}
    values, details = compare_with_gains(affinity, gains)
    assert values["lookahead"] == pytest.approx(1.0)
    assert values["grad_cosine"] == pytest.approx(-1.0)
    assert values["conflict_share"] is None and "constant" in details["conflict_share"]["reason"]
    assert details["lookahead"]["n_pairs"] == 6 and details["conflict_share"]["expected_sign"] == -1
    values, details = compare_with_gains(None, gains)
    assert values == {"lookahead": None, "grad_cosine": None, "conflict_share": None}
    assert "no affinity run" in details["lookahead"]["reason"]
    two = [[None, 1.0], [2.0, None]]
    values, details = compare_with_gains({"lookahead": two, "grad_cosine": two, "conflict_share": two}, two)
    assert values["lookahead"] is None and "fewer than 3" in details["lookahead"]["reason"]
