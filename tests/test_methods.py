import json
import math

import pytest
import torch
from torch import nn

from explorer.cli import main
from explorer.errors import ExplorerError
from explorer.methods import REGISTRY, get_method, names
from explorer.training.trainer import TrainConfig, batch_losses, model_spec, prepare, train
from models import MultiTaskModel

# explorer.methods.nashmtl silences this cvxpy speed notice when imported, but pytest
# drops filters set while it collects tests, so it is repeated here.
pytestmark = pytest.mark.filterwarnings("ignore:You are solving a parameterized problem that is not DPP")

TASKS = ["digit", "even"]
AGGREGATORS = [n for n in names() if REGISTRY[n].needs_shared]


@pytest.fixture(scope="module")
def prepared(digits):
    return prepare(digits, TASKS, TrainConfig(train_size=500))


@pytest.mark.parametrize("method", names())
def test_every_method_lowers_both_training_losses(digits, prepared, method):
    config = TrainConfig(epochs=3, hidden=16, lr=1e-2, patience=0, train_size=500, method=method)
    result = train(digits, TASKS, config, prepared=prepared)
    first, last = result.history[0]["train"], result.history[-1]["train"]
    for task in TASKS:
        assert last[task] < first[task], (method, task, first, last)
    steps = 3 * -(-500 // config.batch_size)  # three epochs of 500 rows
    assert [s["step"] for s in result.weight_trace] == list(range(1, steps + 1))
    for s in result.weight_trace:
        assert set(s["weights"]) == set(TASKS)
        assert all(math.isfinite(w) for w in s["weights"].values())


def _batch(prepared, rows=32, hidden=8):
    torch.manual_seed(0)
    model = MultiTaskModel(model_spec(prepared, TrainConfig(hidden=hidden)))
    x = prepared.x["train"][:rows]
    targets = {t: y[:rows] for t, y in prepared.y["train"].items()}
    return model, x, targets


@pytest.mark.parametrize("method", names())
def test_backward_fills_the_gradient_of_every_parameter(prepared, method):
    model, x, targets = _batch(prepared)
    m = get_method(method, TASKS)
    features = model.encode(x)
    losses = batch_losses(prepared.tasks, model.decode(features), targets)
    weights = m.backward(losses, features, model.shared_parameters())
    assert set(weights) == set(TASKS)
    for name, p in list(model.named_parameters()) + [(f"method.{i}", p) for i, p in enumerate(m.parameters())]:
        assert p.grad is not None, f"{method} left {name} without a gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.shared_parameters())
    m.after_step(lambda: batch_losses(prepared.tasks, model(x), targets))


@pytest.mark.parametrize("method", names())
def test_a_task_missing_from_the_batch_is_left_alone(prepared, method):
    model, x, targets = _batch(prepared)
    m = get_method(method, TASKS)
    features = model.encode(x)
    outputs = model.decode(features)
    losses = batch_losses(prepared.tasks, outputs, targets)
    del losses["even"]  # as when no row of the batch has an 'even' label
    weights = m.backward(losses, features, model.shared_parameters())
    assert list(weights) == ["digit"]
    assert model.heads["even"].weight.grad is None
    assert model.heads["digit"].weight.grad is not None
    for p in m.parameters():  # uncertainty weighting: the absent task's log-variance gets no push
        assert p.grad[TASKS.index("even")].abs().item() < 1e-7
        assert p.grad[TASKS.index("digit")].abs().item() > 0
    m.after_step(lambda: {"digit": batch_losses(prepared.tasks, model(x), targets)["digit"]})


def test_uncertainty_weights_are_learned_with_the_model(digits, prepared):
    m = get_method("uw", TASKS)
    assert len(m.parameters()) == 1
    result = train(digits, TASKS, TrainConfig(epochs=2, hidden=16, lr=1e-2, patience=0, train_size=500,
                                              method="uw"), prepared=prepared)
    first, last = result.weight_trace[0]["weights"], result.weight_trace[-1]["weights"]
    assert first == pytest.approx({"digit": 0.5, "even": 0.5}, abs=0.02)  # exp(0)/2 at the start
    assert last != pytest.approx(first, abs=1e-3)


def test_dwa_up_weights_the_task_whose_loss_falls_slowest():
    m = get_method("dwa", ["a", "b"])
    m.end_epoch({"a": 1.0, "b": 1.0})
    assert m.weights == {"a": 1.0, "b": 1.0}  # one epoch is not enough to see a rate
    m.end_epoch({"a": 0.5, "b": 1.0})
    assert m.weights["b"] > m.weights["a"]
    assert sum(m.weights.values()) == pytest.approx(2.0)
    expected = 2 * torch.softmax(torch.tensor([0.5, 1.0]) / 2.0, 0)
    assert [m.weights["a"], m.weights["b"]] == pytest.approx(expected.tolist())


def _conflicting_pair():
    """Two scalar losses whose gradients on a shared parameter conflict: g_a·g_b = -3 < 0."""
    shared = nn.Parameter(torch.tensor([0.5, 0.5]))
    heads = {"a": nn.Parameter(torch.tensor([1.0, 0.0])), "b": nn.Parameter(torch.tensor([-3.0, 1.0]))}
    features = shared * 1.0
    losses = {t: (features * h).sum() for t, h in heads.items()}
    grads = {t: h.detach().clone() for t, h in heads.items()}  # d loss_t / d shared
    return shared, heads, features, losses, grads


def test_pcgrad_update_has_no_negative_component_along_any_task_gradient():
    shared, heads, features, losses, grads = _conflicting_pair()
    get_method("ew", ["a", "b"]).backward(losses, features, [shared])
    assert shared.grad @ grads["a"] < 0  # the plain sum does increase task a's loss: a real conflict

    shared, heads, features, losses, grads = _conflicting_pair()
    weights = get_method("pcgrad", ["a", "b"]).backward(losses, features, [shared])
    update = shared.grad
    for t, g in grads.items():
        assert update @ g >= -1e-6, (t, update, g)
    # the reported weights are the coefficients of the task gradients in that update
    assert torch.allclose(update, weights["a"] * grads["a"] + weights["b"] * grads["b"], atol=1e-5)
    # heads keep their own task's plain gradient
    assert torch.allclose(heads["a"].grad, features.detach())


# CAGrad only trades some of the average gradient for the worst task's improvement
# (c = 0.5 bounds how much): it does not promise a conflict-free update; see its own test.
@pytest.mark.parametrize("method", [m for m in AGGREGATORS if m != "cagrad"])
def test_aggregators_resolve_the_constructed_conflict(method):
    shared, _, features, losses, grads = _conflicting_pair()
    get_method(method, ["a", "b"]).backward(losses, features, [shared])
    for g in grads.values():
        assert shared.grad @ g >= -1e-6


def test_cagrad_improves_the_worst_task_within_its_ball_around_the_mean():
    shared, _, features, losses, grads = _conflicting_pair()
    m = get_method("cagrad", ["a", "b"])
    weights = m.backward(losses, features, [shared])
    update, g0 = shared.grad, (grads["a"] + grads["b"]) / 2
    worst = min(update @ g for g in grads.values())
    assert worst > min(g0 @ g for g in grads.values()) + 0.1  # the mean makes task a worse by 1.0
    assert (update - g0).norm() <= m.c * g0.norm() + 1e-4
    assert torch.allclose(update, weights["a"] * grads["a"] + weights["b"] * grads["b"], atol=1e-5)


def test_upgrad_uses_torchjds_own_projection():
    jacobian = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])
    # the value in torchjd's documentation, from its default quadprog projector
    assert get_method("upgrad", ["a", "b"]).aggregator(jacobian).tolist() == pytest.approx(
        [0.2929, 1.9004, 1.9004], abs=1e-4)


def test_nashmtl_weights_solve_the_bargaining_condition():
    shared, _, features, losses, grads = _conflicting_pair()
    m = get_method("nashmtl", ["a", "b"])
    weights = m.backward(losses, features, [shared])
    update = shared.grad
    assert update.norm() <= m.max_norm + 1e-5
    # Nash bargaining: every task gains, and gᵢ·d ∝ 1/αᵢ (the same constant for all tasks)
    gains = {t: float(update @ g) for t, g in grads.items()}
    assert all(v > 0 for v in gains.values())
    assert gains["a"] * weights["a"] == pytest.approx(gains["b"] * weights["b"], rel=1e-2)


def test_nashmtl_keeps_the_full_task_state_apart_from_batches_missing_a_task():
    m = get_method("nashmtl", ["a", "b", "c"])
    full = m.aggregator.weighting
    shared = nn.Parameter(torch.tensor([0.5, 0.5]))

    def step(heads):
        shared.grad = None
        features = shared * 1.0
        return m.backward({t: (features * torch.tensor(h)).sum() for t, h in heads.items()}, features, [shared])

    step({"a": [1.0, 0.0], "b": [-3.0, 1.0], "c": [0.0, 1.0]})
    alpha, steps = full.prvs_alpha.copy(), full.step
    weights = step({"c": [0.0, 1.0], "a": [1.0, 0.0]})  # 'b' unlabelled; dict order must not matter
    assert list(weights) == ["a", "c"]
    assert full.step == steps and (full.prvs_alpha == alpha).all()  # the full set's warm start is untouched
    assert list(m.by_subset) == [("a", "c")]
    # one task left: the bargaining solution is its gradient at unit norm
    assert step({"b": [-3.0, 4.0]}) == pytest.approx({"b": 0.2})
    assert shared.grad.tolist() == pytest.approx([-0.6, 0.8])


@pytest.mark.parametrize("method", AGGREGATORS)
def test_aggregator_on_a_single_task_is_a_clear_error(digits, method):
    with pytest.raises(ExplorerError, match="at least two tasks"):
        get_method(method, ["digit"])
    with pytest.raises(ExplorerError, match="at least two tasks"):
        train(digits, ["digit"], TrainConfig(epochs=1, hidden=8, train_size=100, method=method))


def test_a_missing_solver_is_a_clear_error(monkeypatch):
    from explorer.methods.cagrad import CAGradMethod

    def missing(self):
        raise ImportError("cvxpy is not installed")
    monkeypatch.setattr(CAGradMethod, "build", missing)
    with pytest.raises(ExplorerError, match="'cagrad' needs a solver.*requirements.txt"):
        get_method("cagrad", TASKS)


def test_unknown_method_lists_the_available_ones():
    with pytest.raises(ExplorerError) as e:
        get_method("gradnorm2", TASKS)
    for name in names():
        assert name in str(e.value)


def test_methods_command_lists_every_registered_method(capsys):
    assert main(["methods"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert listed == names()
    assert {"ew", "uw", "dwa", "famo", "pcgrad", "mgda", "upgrad", "cagrad", "nashmtl"} <= set(listed)
    assert main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == listed
    assert all(r["description"] for r in rows)


def test_every_listed_method_is_accepted_by_the_cli(capsys):
    assert main(["methods"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    for name in listed:  # what `train --method` and `compare --methods` hand to the registry
        assert get_method(name, TASKS).name == name
    assert main(["train", "--dataset", "digits", "--tasks", "digit", "--method", "nope", "--no-save"]) == 2
    assert ", ".join(listed) in capsys.readouterr().err
