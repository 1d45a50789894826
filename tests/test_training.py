import numpy as np
import pytest

from explorer.errors import Cancelled, ExplorerError
from explorer.training.trainer import TrainConfig, prepare, train
from tests.helpers import tiny_digits

FAST = dict(epochs=3, hidden=32, batch_size=64)


def test_beats_majority_baseline_on_every_task():
    result = train(tiny_digits(), ["digit", "even", "ink"], TrainConfig(**{**FAST, "epochs": 10}))
    for task, m in result.metrics.items():
        key = m["primary"]
        assert m[key] > result.baseline[task][key] + 0.2, (task, m, result.baseline[task])
    assert set(result.metrics) == {"digit", "even", "ink"}
    assert result.metrics["ink"]["primary"] == "r2" and "mae" in result.metrics["ink"]


def test_same_seed_same_numbers_and_other_seed_differs():
    ds = tiny_digits()
    a = train(ds, ["digit", "even"], TrainConfig(**FAST, seed=1))
    b = train(ds, ["digit", "even"], TrainConfig(**FAST, seed=1))
    c = train(ds, ["digit", "even"], TrainConfig(**FAST, seed=2))
    assert a.metrics == b.metrics
    assert a.history == b.history
    assert a.history != c.history


def test_missing_labels_are_masked_not_guessed():
    ds = tiny_digits(missing_even=0.6)
    prepared = prepare(ds, ["even"], TrainConfig())
    assert (prepared.y["train"]["even"] == -1).any()
    result = train(ds, ["digit", "even"], TrainConfig(**FAST), prepared=prepare(ds, ["digit", "even"], TrainConfig(**FAST)))
    # The test metric only counts labelled rows.
    assert result.metrics["even"]["n"] == int((prepared.y_raw["test"]["even"] >= 0).sum())
    assert result.metrics["even"]["macro_f1"] > 0.7


def test_early_stopping_keeps_best_epoch():
    result = train(tiny_digits(), ["digit"], TrainConfig(epochs=30, patience=1, hidden=16, lr=0.05))
    assert len(result.history) < 30
    vals = [sum(h["val"].values()) for h in result.history]
    assert result.best_epoch == int(np.argmin(vals)) + 1


def test_progress_callback_reports_and_cancels():
    events = []
    train(tiny_digits(), ["even"], TrainConfig(epochs=1, hidden=8), progress=events.append)
    assert events and events[-1]["step"] == len(events)
    assert {"step", "total_steps", "epoch", "epochs", "losses"} <= set(events[0])
    with pytest.raises(Cancelled):
        train(tiny_digits(), ["even"], TrainConfig(epochs=2, hidden=8), progress=lambda e: e["step"] < 3)


@pytest.mark.parametrize("bad, message", [
    (dict(epochs=0), "epochs must be a whole number"),
    (dict(lr=5.0), "lr must be in"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(device="tpu"), "Unknown device"),
    (dict(method="nope"), "Unknown method"),
])
def test_bad_settings_have_clear_messages(bad, message):
    with pytest.raises(ExplorerError, match=message):
        train(tiny_digits(), ["even"], TrainConfig(**{**FAST, **bad}))


def test_unknown_and_empty_task_selection():
    with pytest.raises(ExplorerError, match="Unknown task"):
        train(tiny_digits(), ["colour"], TrainConfig(**FAST))
    with pytest.raises(ExplorerError, match="No task selected"):
        train(tiny_digits(), [], TrainConfig(**FAST))
