"""Adaptive seeds (numpy only, no training): a resolved cell stops, an ambiguous one gets more seeds."""
import math
import numpy as np
import pytest

from explorer.errors import ExplorerError
from explorer.relatedness.adaptive import (BUDGET_MODELS, BUDGET_SECONDS, FUTILE, MAX_SEEDS, NEGLIGIBLE, RESOLVED,
                                           Budget, adapt, power_at, stop_matrix)
from explorer.relatedness.combos import ComboRun
from explorer.relatedness.transfer import transfer_from_runs

TASKS = ["a", "b", "c"]
# true absolute effect of the partner on the task: a+b clear (past the early-stopping boundary at three
# seeds), a+c a modest real effect hidden by noise, b+c nothing at all
EFFECT = {("a", "b"): 0.40, ("b", "a"): 0.32, ("a", "c"): 0.015, ("c", "a"): 0.015}


def make_train(noise=0.02):
    calls = []

    def train(combos, seeds, progress=None):
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
    assert reasons <= {RESOLVED, NEGLIGIBLE, MAX_SEEDS, FUTILE}
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


# --- calibration: adaptive seeds on matrices where every true gain is 0 ---

from explorer.relatedness.sweep import combinations_for

NULL_TASKS = list("abcdef")


def null_train(rep, scale):
    """Every true gain 0; a seed's models share part of their noise; tasks differ in how noisy they are."""
    def train(combos, seeds, progress=None):
        runs = []
        for seed in seeds:
            shared = np.random.default_rng([rep, seed]).normal(0, 0.01)
            for combo in combos:
                metrics = {}
                for t in combo:
                    own = np.random.default_rng([rep, seed, *map(ord, "".join(combo) + t)]).normal(0, 0.02 * scale[t])
                    metrics[t] = {"primary": "macro_f1", "macro_f1": 0.6 + shared + own, "n": 5000}
                runs.append(ComboRun(tuple(combo), seed, metrics, 1, []))
        return runs
    return train


def _null_share(reps=200, pooled=True):
    """Share of null matrices with any verdict after adaptive seeds (3 seeds, then one more per round up to
    16: many looks), and the mean number of models the rounds added. ``pooled``: each task's seed
    variance pooled over its models (the default analysis), or each cell's own seeds only."""
    found, models = 0, []
    for rep in range(reps):
        rng = np.random.default_rng(1000 + rep)
        scale = {t: float(np.exp(rng.normal(0, 0.7))) for t in NULL_TASKS}
        train = null_train(rep, scale)
        runs = train(combinations_for(NULL_TASKS, 2), [0, 1, 2])
        measure = lambda r: transfer_from_runs(r, NULL_TASKS, pooled=pooled)  # noqa: E731
        runs, t, record = adapt(runs, measure(runs), train, measure, Budget(max_seeds=16, step=1))
        found += any(g.verdict != "unclear" for per in t.gains.values() for g in per.values())
        models.append(record["models"])
    return found / reps, float(np.mean(models))


def test_adaptive_seeds_keep_the_error_rate_on_a_null_matrix(monkeypatch):
    """Stopping a cell the moment it looks resolved (optional stopping) raises the share of null matrices
    with a finding well past the rate; stopping only on the strict early boundary, on futility and on
    negligible intervals keeps it at the rate, and futility spends fewer models than seeding every cell."""
    import explorer.relatedness.adaptive as adaptive
    slack = 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)
    share, models = _null_share()
    assert share <= slack
    assert models < 0.8 * 13 * 21  # every combination taken from 3 to 16 seeds would be 273
    # Stop at the first verdict: with each cell's own few seeds the check sees the inflation. (With
    # the pooled variance a stopped cell's interval keeps being re-estimated from its task's other
    # models, which takes most of the bite out of a lucky stop.)
    monkeypatch.setattr(adaptive, "EARLY_P", 1.0)
    assert _null_share(100, pooled=False)[0] > 0.05 + 2 * np.sqrt(0.05 * 0.95 / 100)  # measured: 14 %


def test_futility_projects_the_seed_variance_to_max_seeds():
    from explorer.relatedness.gains import gain_stats
    small = gain_stats([0.601, 0.62, 0.59], [0.60, 0.61, 0.6], row_var=1e-6)
    large = gain_stats([0.70, 0.74, 0.68], [0.60, 0.63, 0.59], row_var=1e-6)
    assert power_at(small, 10) < 0.2 < power_at(large, 10)
    assert power_at(large, 3) < power_at(large, 10)  # more seeds, more power


def test_a_round_that_would_overrun_shrinks_to_the_most_promising_combinations():
    import time as _time
    train, calls = make_train()
    runs, t0 = start(train)
    calls.clear()
    # 1 s a model, 8 s left: the full round (two open combinations and three baselines, 2 seeds each:
    # 10 models) would overrun; the most promising combination and its two baselines (6 models) fit
    budget = Budget(max_seeds=16, seconds=8.0, start=_time.perf_counter(), cost=float, unit=1.0)
    _, _, record = adapt(runs, t0, train, lambda r: transfer_from_runs(r, TASKS), budget)
    assert record["rounds"] >= 1
    first = [tuple(c) for c in calls[0][0]]  # a round trains its seeds in one call
    assert ("a", "c") in first and ("b", "c") not in first  # a+c has a real effect, b+c none
    assert len(calls[0][0]) * len(calls[0][1]) == 6


def test_progress_reaches_the_end_of_its_share_when_the_cells_are_decided_early():
    """The share of the bar is spread over the most rounds there can be; rounds not needed are skipped
    over, so the bar does not stall short of the end (a sweep's last phase ended at 49 % before)."""
    train, _ = make_train()
    runs, t0 = start(train)
    events = []
    _, _, record = adapt(runs, t0, train, lambda r: transfer_from_runs(r, TASKS), Budget(max_seeds=16),
                         progress=events.append)
    assert record["rounds"] < math.ceil((16 - 3) / 2)  # decided before the last possible round
    assert events and events[-1].done == pytest.approx(events[-1].total)
