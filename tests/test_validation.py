"""The data-boundary checkers and the safe internal names behind them."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.data.validation import (MAX_HIDDEN, check_categorical, check_finite, check_int_param,
                                      check_train_size, normalise_label)
from explorer.datasets.csv import load_csv
from explorer.errors import ExplorerError
from explorer.relatedness.transfer import combo_key, combo_tasks
from explorer.training.hooks import Epoch, FiniteLoss
from explorer.training.trainer import TrainConfig
from models.multitask import ModelSpec, MultiTaskModel, head_key


def test_check_finite_names_column_and_first_bad_row():
    with pytest.raises(ExplorerError, match=r"'x'.*row 4 of the file"):
        check_finite("x", [1.0, np.nan, np.inf, 1e308])
    assert np.isnan(check_finite("x", [1.0, np.nan])[1])  # missing stays missing


def test_categorical_identifier_and_cardinality():
    with pytest.raises(ExplorerError, match="'id'.*every row"):
        check_categorical("id", pd.Series([f"u{i}" for i in range(20)]))
    with pytest.raises(ExplorerError, match="'c'.*limit is 3"):
        check_categorical("c", pd.Series(list("abcdabcd")), limit=3)
    check_categorical("c", pd.Series(list("abab" * 5)))


def test_labels_are_normalised():
    assert normalise_label(" yes ") == "yes"
    assert normalise_label("1.0") == normalise_label("1") == normalise_label(" 1 ") == "1"
    assert normalise_label("1.50") == "1.5"
    assert normalise_label("inf") == "inf"


def test_parameter_bounds():
    with pytest.raises(ExplorerError, match="hidden"):
        TrainConfig(hidden=MAX_HIDDEN + 1).validate()
    with pytest.raises(ExplorerError, match="2.9"):
        TrainConfig(train_size=2.9).validate()
    assert check_train_size(300) == 300 and check_train_size(0.5) == 0.5
    with pytest.raises(ExplorerError, match="whole number"):
        check_int_param("epochs", 2.5, 1)


@pytest.mark.parametrize("names", [("a", "b"), ("a+b", "c"), ("x\\", "+", "y\\+z"), ("price.usd",)])
def test_combo_key_round_trips_names_with_plus_and_backslash(names):
    assert combo_tasks(combo_key(names)) == names


def test_plain_combo_keys_stay_as_before():
    assert combo_key(["a", "b"]) == "a+b" and combo_tasks("a+b") == ("a", "b")


@pytest.mark.parametrize("name", ["price.usd", "a+b", "dir/x", "keys", "type", "", "Größe", "x" * 5000])
def test_any_task_name_is_a_head(name):
    spec = ModelSpec("tabular", {"n_features": 3}, {name: 2, "plain": 1}, hidden=4)
    model = MultiTaskModel(spec)
    assert model.task_names == [name, "plain"]
    assert name in model.heads and model.heads[name].out_features == 2
    out = model(torch.zeros(2, 3))
    assert set(out) == {name, "plain"}
    again = MultiTaskModel(spec)
    again.load_state_dict(model.state_dict())  # saved and loaded under the same keys
    assert torch.equal(again.heads[name].weight, model.heads[name].weight)


def test_plain_names_keep_their_state_dict_keys():
    assert head_key("digit") == "digit"
    model = MultiTaskModel(ModelSpec("tabular", {"n_features": 3}, {"digit": 10}, hidden=4))
    assert "heads.digit.weight" in model.state_dict()


def test_finite_loss_stops_training():
    with pytest.raises(ExplorerError, match="non-finite train loss for y"):
        FiniteLoss().on_epoch(Epoch(1, 2, None, {"y": float("nan")}, {"y": 1.0}))
    batched = Epoch(1, 2, None, torch.tensor([[1.0, float("inf")]]), torch.ones(1, 2),
                    extra={"train_valid": torch.tensor([[True, True]]), "val_valid": torch.tensor([[True, True]])})
    with pytest.raises(ExplorerError, match="non-finite train loss"):
        FiniteLoss().on_epoch(batched)
    masked = Epoch(1, 2, None, torch.tensor([[1.0, float("nan")]]), torch.ones(1, 2),
                   extra={"train_valid": torch.tensor([[True, False]]), "val_valid": torch.tensor([[True, True]])})
    FiniteLoss().on_epoch(masked)  # a task outside the slot's combination does not count


def test_training_to_nan_saves_nothing(monkeypatch, run_store):
    from explorer.cli import main
    import explorer.training.trainer as trainer
    real = trainer.task_loss
    monkeypatch.setattr(trainer, "task_loss", lambda *a: None if (l := real(*a)) is None else l * np.nan)
    assert main(["train", "--dataset", "digits", "--tasks", "digit,even", "--epochs", "2", "--hidden", "8"]) == 2
    assert not run_store.exists() or not any(p for p in run_store.iterdir() if not p.name.startswith("."))


def _poison_from(step_no: int, poison):
    """A wrapper of a Steps.forward that poisons the losses of every step from ``step_no`` on, counting them."""
    seen = {"forward": 0, "updates": 0}

    def wrap(forward):
        def inner(self, rows):
            step = forward(self, rows)
            seen["forward"] += 1
            if step is not None and seen["forward"] >= step_no:
                step.losses = poison(step.losses)
            return step
        return inner

    def count(update):
        def inner(self, step):
            seen["updates"] += 1
            return update(self, step)
        return inner
    return seen, wrap, count


def test_non_finite_loss_stops_at_the_first_bad_step(monkeypatch):
    """Step 3 of 5 in epoch 1 turns NaN: two updates ran, the third never did (per-epoch checks ran all 5)."""
    from explorer.training.trainer import ModelSteps, train
    from tests.helpers import tiny_digits
    seen, wrap, count = _poison_from(3, lambda losses: {k: v * float("nan") for k, v in losses.items()})
    monkeypatch.setattr(ModelSteps, "forward", wrap(ModelSteps.forward))
    monkeypatch.setattr(ModelSteps, "update", count(ModelSteps.update))
    config = TrainConfig(epochs=2, hidden=8, batch_size=64, train_size=300)
    with pytest.raises(ExplorerError, match=r"non-finite loss for digit, even at step 3 \(epoch 1\)"):
        train(tiny_digits(), ["digit", "even"], config)
    assert seen == {"forward": 3, "updates": 2}


def test_non_finite_loss_stops_a_batched_stack_at_the_slot(monkeypatch):
    """One slot's loss turns inf at step 2: the stack stops before that update, naming the slot and task."""
    from explorer.training.batched import StackSteps, train_combinations
    from tests.helpers import tiny_digits

    def poison(losses):  # [slots, tasks]: slot 5 = (digit, even) seed 1, its task "even"
        losses = losses.clone()
        losses[5, 1] = float("inf")
        return losses
    seen, wrap, count = _poison_from(2, poison)
    monkeypatch.setattr(StackSteps, "forward", wrap(StackSteps.forward))
    monkeypatch.setattr(StackSteps, "update", count(StackSteps.update))
    config = TrainConfig(epochs=2, hidden=8, batch_size=64, train_size=300)
    combos = [("digit",), ("even",), ("digit", "even")]
    with pytest.raises(ExplorerError, match=r"for even in the model of digit\+even seed 1 at step 2 \(epoch 1\)"):
        train_combinations(tiny_digits(), combos, config, seeds=[0, 1])
    assert seen == {"forward": 2, "updates": 1}


def test_a_slot_poisoned_outside_its_combination_does_not_stop(monkeypatch):
    """Only losses that count are checked: a NaN in a task the slot does not train is not a failure."""
    from explorer.training.batched import StackSteps, train_combinations
    from tests.helpers import tiny_digits

    def poison(losses):  # slot 0 = (digit,) seed 0: task 'even' is not in its combination
        losses = losses.clone()
        losses[0, 1] = float("nan")
        return losses
    seen, wrap, count = _poison_from(1, poison)
    monkeypatch.setattr(StackSteps, "forward", wrap(StackSteps.forward))
    runs = train_combinations(tiny_digits(), [("digit",), ("digit", "even")],
                              TrainConfig(epochs=1, hidden=8, batch_size=64, train_size=300), seeds=[0])
    assert len(runs) == 2 and seen["forward"] == 5


def test_sweep_to_nan_exits_2_and_writes_nothing(monkeypatch, run_store, tmp_path, capsys):
    from explorer.cli import main
    from explorer.training.batched import StackSteps
    seen, wrap, _ = _poison_from(1, lambda losses: losses * float("nan"))
    monkeypatch.setattr(StackSteps, "forward", wrap(StackSteps.forward))
    out = tmp_path / "report.json"
    code = main(["sweep", "--dataset", "digits", "--tasks", "even,ge5", "--seeds", "1", "--max-seeds", "1",
                 "--epochs", "2", "--hidden", "8", "--train-size", "300", "--no-affinity", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and seen["forward"] == 1
    assert err.startswith("error: Training produced a non-finite loss") and "\n" not in err
    assert "Traceback" not in err
    assert not out.exists()
    assert not run_store.exists() or not any(p for p in run_store.iterdir() if not p.name.startswith("."))


def test_wide_file_loads_without_per_column_frame_inserts():
    # 3,000 columns: before, one PerformanceWarning (a copy of the frame) per inserted column.
    cols = [f"c{i}" for i in range(3000)]
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3000)).round(2), columns=cols)
    frame["y"] = ["a", "b"] * 10
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        ds = load_csv(data=frame.to_csv(index=False).encode(), feature_cols=cols, label_cols=["y"])
    assert ds.inputs.shape == (20, 3000)
