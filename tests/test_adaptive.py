"""Adaptive seeds (numpy only, no training): a resolved cell stops, an ambiguous one gets more seeds."""
import numpy as np
import pytest

from explorer.errors import ExplorerError
from explorer.relatedness.adaptive import (BUDGET_MODELS, BUDGET_SECONDS, MAX_SEEDS, NEGLIGIBLE, RESOLVED, Budget, adapt,
                                           stop_matrix)
from explorer.relatedness.combos import ComboRun
from explorer.relatedness.transfer import transfer_from_runs

TASKS = ["a", "b", "c"]
# true absolute effect of the partner on the task: a+b clear, a+c a modest real effect hidden by noise,
# b+c nothing at all
EFFECT = {("a", "b"): 0.10, ("b", "a"): 0.08, ("a", "c"): 0.015, ("c", "a"): 0.015}


def make_train(noise=0.02):
    calls = []

    def train(combos, seeds):
        calls.append((list(combos), list(seeds)))
        runs = []
        for seed in seeds:
            rng = np.random.default_rng(seed)
            shared = rng.normal(0, noise)  # what one seed's models share (split order, init)
            for combo in combos:
                metrics = {}
                for t in combo:
                    own = np.random.default_rng([seed, *map(ord, "".join(combo) + t)]).normal(0, noise / 2)
                    shift = sum(EFFECT.get((t, p), 0.0) for p in combo if p != t)
                    metrics[t] = {"primary": "macro_f1", "macro_f1": 0.6 + shift + shared + own, "n": 5000}
                runs.append(ComboRun(tuple(combo), seed, metrics, 1, []))
        return runs
    return train, calls


def start(train, seeds=3):
    combos = [("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")]
    runs = train(combos, list(range(seeds)))
    return runs, transfer_from_runs(runs, TASKS)


def seeds_of(runs, combo):
    return sorted(r.seed for r in runs if r.tasks == combo)


def test_resolved_cells_stop_and_ambiguous_cells_get_more_seeds():
    train, calls = make_train()
    runs, t0 = start(train)
    assert t0.gains["a+b"]["a"].verdict == "positive"
    runs, t, record = adapt(runs, t0, train, lambda r: transfer_from_runs(r, TASKS), Budget(max_seeds=16))
    assert record["stop"]["a+b"] == {"a": RESOLVED, "b": RESOLVED}
    assert seeds_of(runs, ("a", "b")) == [0, 1, 2]          # resolved at once: not one more model
    assert len(seeds_of(runs, ("a", "c"))) > 3               # the ambiguous cell got more
    assert seeds_of(runs, ("a",)) == sorted(set(seeds_of(runs, ("a", "c"))) | set(seeds_of(runs, ("a", "b"))))
    assert record["models"] == len(runs) - 18 and record["rounds"] >= 1
    # every cell says why it stopped, and the matrix gets the seeds each cell was given
    reasons = {r for per in record["stop"].values() for r in per.values()}
    assert reasons <= {RESOLVED, NEGLIGIBLE, MAX_SEEDS}
    assert t.pair_seeds[0][2] == len(seeds_of(runs, ("a", "c"))) and t.pair_seeds[0][1] == 3
    matrix = stop_matrix(TASKS, record["stop"])
    assert matrix[0][1] == RESOLVED and matrix[0][0] is None


def test_model_budget_stops_the_rounds():
    train, calls = make_train(noise=0.05)
    runs, t0 = start(train)
    n0 = len(calls)
    runs, t, record = adapt(runs, t0, train, lambda r: transfer_from_runs(r, TASKS), Budget(max_seeds=50, models=10))
    assert record["models"] <= 10
    assert BUDGET_MODELS in {r for per in record["stop"].values() for r in per.values()}


def test_max_seeds_caps_a_cell():
    train, _ = make_train(noise=0.2)  # hopelessly noisy: nothing decides
    runs, t0 = start(train)
    runs, _, record = adapt(runs, t0, train, lambda r: transfer_from_runs(r, TASKS), Budget(max_seeds=5))
    assert max(len(seeds_of(runs, c)) for c in [("a", "b"), ("a", "c"), ("b", "c")]) == 5
    assert MAX_SEEDS in {r for per in record["stop"].values() for r in per.values()}


def test_bad_budget_is_one_sentence():
    with pytest.raises(ExplorerError, match="effect must be a positive"):
        Budget(effect=0).check()
    with pytest.raises(ExplorerError, match="max_seeds"):
        Budget(max_seeds=0).check()


def test_the_first_round_is_checked_against_the_time_budget():
    """With the seconds per unit measured on the first phase, a round that would overrun the budget is
    not started (before, the first round always ran, since nothing had been timed yet)."""
    import time as _time
    train, calls = make_train()
    runs, t0 = start(train)
    calls.clear()
    budget = Budget(max_seeds=16, seconds=5.0, start=_time.perf_counter(), cost=float, unit=1.0)  # 1 s a model
    _, _, record = adapt(runs, t0, train, lambda r: transfer_from_runs(r, TASKS), budget)
    assert calls == [] and record["rounds"] == 0
    assert BUDGET_SECONDS in {reason for per in record["stop"].values() for reason in per.values()}
    # the same budget with cheap models does run rounds
    cheap = Budget(max_seeds=16, seconds=5.0, start=_time.perf_counter(), cost=float, unit=1e-4)
    assert adapt(runs, t0, train, lambda r: transfer_from_runs(r, TASKS), cheap)[2]["rounds"] >= 1
