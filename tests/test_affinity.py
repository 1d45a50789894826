"""One-run affinity estimates on constructed tasks whose relation is known in advance."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.relatedness.affinity import (AffinityCallback, agreement, bootstrap_spearman, compare_with_gains,
                                           measurement_interval, one_run_affinity, optimiser_update,
                                           score_estimate)
from explorer.data.dataset import Dataset
from explorer.errors import Cancelled, ExplorerError
from explorer.training.trainer import TrainConfig, prepare, train


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
    assert out["grad_dot"][0][1] < 0 and out["grad_dot"][1][0] < 0
    # Adam's step from the partner's loss carries the moments of the joint gradient, so it can still lower
    # a task's loss a little; it lowers it far less than the task's own step does.
    for i, j in ((0, 1), (1, 0)):
        assert out["lookahead"][i][j] < 0.5 * out["lookahead_self"][i]


def test_a_sign_flipped_target_is_not_a_conflict():
    # Each task has its own linear head, which absorbs the sign: y and -y want the same shared features.
    out = one_run_affinity(synthetic(), ["B", "NEG_B"], config(), every=2)
    assert out["grad_cosine"][0][1] > 0.2
    assert out["lookahead"][0][1] > 0 and out["grad_dot"][0][1] > 0


def test_lookahead_orientation_follows_the_transfer_matrix():
    # A helps A2 strongly; C's update does nothing useful for A. Row = affected task, column = source.
    out = one_run_affinity(synthetic(), ["A", "A2", "C"], config(), every=2)
    assert out["lookahead"][1][0] > abs(out["lookahead"][1][2])
    assert out["grad_dot"][1][0] > abs(out["grad_dot"][1][2])
    assert out["grad_cosine"][1][0] > abs(out["grad_cosine"][1][2])


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
    assert details["lookahead"]["interval"][1] == pytest.approx(1.0) and details["lookahead"]["interval"][0] > 0
    assert values["grad_cosine"] == pytest.approx(-1.0)
    assert values["grad_dot"] is None and "no affinity run" in details["grad_dot"]["reason"]
    assert values["conflict_share"] is None and "constant" in details["conflict_share"]["reason"]
    assert details["lookahead"]["n_pairs"] == 6 and details["conflict_share"]["expected_sign"] == -1
    values, details = compare_with_gains(None, gains)
    assert values == {"lookahead": None, "grad_dot": None, "grad_cosine": None, "conflict_share": None}
    assert "no affinity run" in details["lookahead"]["reason"]
    two = [[None, 1.0], [2.0, None]]
    values, details = compare_with_gains({"lookahead": two, "grad_cosine": two, "conflict_share": two}, two)
    assert values["lookahead"] is None and "fewer than 3" in details["lookahead"]["reason"]


def _trained_adam(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.05, weight_decay=0.01)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return net, opt


def test_lookahead_takes_the_optimisers_own_step_and_touches_nothing():
    net, opt = _trained_adam()
    params = list(net.parameters())
    grads = [torch.randn_like(p) for p in params]
    before = [p.detach().clone() for p in params]
    state = copy.deepcopy(opt.state_dict())
    stepped = optimiser_update(opt, params, grads)
    # the real parameters and the optimiser's moments are untouched
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    assert str(opt.state_dict()) == str(state)
    # ... and the result is what Adam itself does with these gradients from this state
    twin, twin_opt = _trained_adam()
    for p, g in zip(twin.parameters(), grads):
        p.grad = g.clone()
    twin_opt.step()
    assert all(torch.equal(s, p) for s, p in zip(stepped, twin.parameters()))
    # not a plain gradient step with Adam's learning rate
    assert not torch.allclose(stepped[0], before[0] - 0.05 * grads[0])
    # with plain SGD the optimiser's step is exactly theta - lr * g
    sgd = torch.optim.SGD(params, lr=0.1)
    assert all(torch.allclose(s, b - 0.1 * g) for s, b, g in zip(optimiser_update(sgd, params, grads), before, grads))


def test_the_callback_does_not_change_the_training_it_measures():
    # Default dropout (0.1): the measurements must not draw masks or move the optimiser.
    data = synthetic()
    cfg = TrainConfig(epochs=2, batch_size=32, lr=1e-2, hidden=16, seed=3)
    plain = train(data, ["A", "B", "C"], cfg)
    prep = prepare(data, ["A", "B", "C"], cfg.resolve("tabular"))
    callback = AffinityCallback(prep.tasks, every=3, weights=prep.class_weights)  # the loss the model trains on
    measured = train(data, ["A", "B", "C"], cfg, callbacks=[callback])
    assert callback.measured >= 10
    assert measured.metrics == plain.metrics and measured.history == plain.history
    assert all(torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(),
                                                 measured.model.state_dict().values()))
    # one_run_affinity is that callback on that loop: the same run gives the same numbers
    out = one_run_affinity(data, ["A", "B", "C"], cfg, every=3)
    assert out["grad_cosine"] == callback.result()["grad_cosine"]
    assert out["lookahead"] == callback.result()["lookahead"]
    assert out["epochs"] == len(plain.history)


def test_measurements_are_bounded_and_spread_over_training():
    assert measurement_interval(5, 100, None) == 5
    assert measurement_interval(5, 1000, 40) == 25
    out = one_run_affinity(synthetic(), ["A", "B"], config(epochs=4), every=1, max_measurements=7)
    assert out["steps_measured"] == 7 and out["every"] == 8  # 14 steps x 4 epochs / 7
    with pytest.raises(ExplorerError, match="max_measurements"):
        one_run_affinity(synthetic(), ["A", "B"], config(), max_measurements=0)


def test_bootstrap_interval_of_spearman():
    x = np.arange(12.0)
    assert bootstrap_spearman(x, 2 * x + 1) == pytest.approx([1.0, 1.0])
    rng = np.random.default_rng(1)
    low, high = bootstrap_spearman(rng.normal(size=30), rng.normal(size=30))
    assert low < 0 < high
    assert bootstrap_spearman(x, np.ones(12)) is None  # no ranks to compare


def test_within_task_spearman_ignores_a_level_shared_by_a_row():
    # Row levels differ (task 0's gains are all high), the partners' order inside each row is reversed:
    # the plain Spearman is fooled by the levels, the within-task one is not.
    gains = [[None, 10.0, 11.0], [-1.0, None, 0.0], [-3.0, -2.0, None]]
    levels = [[None, 5.1, 5.0], [0.1, None, 0.0], [-4.9, -5.0, None]]
    d = score_estimate(levels, gains, "surrogate")
    assert d["spearman"] > 0.5 and d["spearman_within_task"] < -0.8


def test_estimates_rank_by_agreement_in_the_direction_they_predict():
    """conflict_share predicts less gain from more conflict: a Spearman of -0.5 agrees more than a
    grad_dot of +0.3, and an estimate with no Spearman has no agreement."""
    gains = [[None, 4.0, -1.0], [2.0, None, -3.0], [0.5, 1.0, None]]
    conflict = [[None, -4.0, 1.0], [-2.0, None, 3.0], [-0.5, -1.0, None]]  # the gains' exact mirror
    d = score_estimate(conflict, gains, "conflict_share")
    assert d["expected_sign"] == -1 and d["spearman"] == pytest.approx(-1.0)
    assert agreement(d) == pytest.approx(1.0)
    assert agreement({"spearman": 0.3, "expected_sign": 1}) > agreement({"spearman": -0.5, "expected_sign": 1})
    assert agreement({"spearman": -0.5, "expected_sign": -1}) > agreement({"spearman": 0.3, "expected_sign": 1})
    assert agreement(score_estimate(None, gains, "grad_dot")) is None
