import pytest

import explorer.training.batched as batched
import explorer.training.trainer as trainer
import scripts.seed_spread_regimes as regimes
from explorer.datasets import load_dataset
from explorer.training.batched import train_combinations
from explorer.training.trainer import TrainConfig
from tests.helpers import tiny_digits
from tests.test_batched import _assert_same_runs

COMBOS = [("digit",), ("even",), ("digit", "even")]
CONFIG = TrainConfig(epochs=4, patience=1, train_size=200, hidden=16, dropout=0.0, lr=0.03)


@pytest.fixture
def installed(monkeypatch):
    """The regime's trainers for one test; the stock ones come back afterwards."""
    for module, name in ((trainer, "ModelSteps"), (batched, "StackSteps"), (batched, "_Losses")):
        monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(regimes, "OPT", dict(regimes.OPT))
    stock = {mode: train_combinations(tiny_digits(missing_even=0.2), COMBOS, CONFIG, [0, 1], mode=mode)
             for mode in ("sequential", "batched")}
    regimes.install()
    return stock


def test_default_regime_is_the_stock_trainer(installed):
    digits = tiny_digits(missing_even=0.2)
    for mode in ("sequential", "batched"):
        _assert_same_runs(installed[mode], train_combinations(digits, COMBOS, CONFIG, [0, 1], mode=mode), tol=1e-6)


@pytest.mark.parametrize("average", ["ema", "swa"])
def test_averaged_weights_are_the_same_in_both_modes(installed, average):
    regimes.OPT.update(average=average, decay=0.5, schedule="cosine")
    digits = tiny_digits(missing_even=0.2)
    seq = train_combinations(digits, COMBOS, CONFIG, [0, 1], mode="sequential")
    _assert_same_runs(seq, train_combinations(digits, COMBOS, CONFIG, [0, 1], mode="batched"))
    # the averaged model is what validation saw: from epoch 2 on its losses are not the stock ones
    assert seq[0].history[1]["val"]["digit"] != pytest.approx(installed["sequential"][0].history[1]["val"]["digit"])


def test_averaged_text_model_is_the_same_in_both_modes(installed):
    """The lazy embedding Adam is flushed before averaging and its rate follows the schedule exactly."""
    regimes.OPT.update(average="ema", decay=0.5, schedule="cosine")
    news = load_dataset("news")
    config = TrainConfig(epochs=3, patience=1, train_size=300, hidden=8, embed_dim=8, dropout=0.0)
    combos = [("outlet",), ("section",)]
    _assert_same_runs(train_combinations(news, combos, config, [0, 1], mode="sequential"),
                      train_combinations(news, combos, config, [0, 1], mode="batched"))
