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
    monkeypatch.setattr(trainer, "task_loss", lambda t, o, y: None if (l := real(t, o, y)) is None else l * np.nan)
    assert main(["train", "--dataset", "digits", "--tasks", "digit,even", "--epochs", "2", "--hidden", "8"]) == 2
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
