"""The transfer matrix from trained combinations: orientation, verdicts against intervals, Standley's estimate."""
import math

import pytest

from explorer.relatedness.combos import ComboRun
from explorer.relatedness.transfer import combo_key, higher_order, standley_estimate, transfer_from_runs

TASKS = ["a", "b", "c"]
BASE = {"a": 0.50, "b": 0.70, "c": 0.60}
# (task, partner) -> absolute change of the task's score when trained with the partner
EFFECT = {("a", "b"): +0.10, ("b", "a"): -0.20, ("a", "c"): 0.0, ("c", "a"): +0.002,
          ("b", "c"): -0.01, ("c", "b"): +0.05}
NOISE = [0.0, 0.004, -0.004]


def fake_runs(combos, seeds, noise=NOISE, effect=EFFECT):
    runs = []
    for s, seed in enumerate(seeds):
        for combo in combos:
            metrics = {}
            for t in combo:
                shift = sum(effect.get((t, p), 0.0) for p in combo if p != t)
                value = BASE[t] + shift + noise[s % len(noise)] * (1 + len(combo))
                metrics[t] = {"primary": "macro_f1", "macro_f1": value, "n": 100}
            runs.append(ComboRun(tuple(combo), seed, metrics, 1, []))
    return runs


def all_combos(order=2):
    from explorer.relatedness.sweep import combinations_for
    return combinations_for(TASKS, order)


def test_matrix_orientation_and_null_diagonal():
    t = transfer_from_runs(fake_runs(all_combos(), [0, 1, 2]), TASKS)
    assert all(t.pair_gain[i][i] is None and t.pair_verdict[i][i] is None for i in range(3))
    # row = the task measured, column = its partner: a gains 20 % (0.1 / 0.5) with b, b loses ~28.6 % with a
    assert t.pair_gain[0][1] == pytest.approx(20.0, abs=1.0)
    assert t.pair_gain[1][0] == pytest.approx(-0.2 / 0.7 * 100, abs=1.0)
    assert t.metric == {"a": "macro_f1", "b": "macro_f1", "c": "macro_f1"}
    assert t.single["a"]["mean"] == pytest.approx(0.5, abs=0.01) and len(t.single["a"]["scores"]) == 3
    assert set(t.gains) == {"a+b", "a+c", "b+c"}
    assert t.delta_m["a+b"] == pytest.approx((t.pair_gain[0][1] + t.pair_gain[1][0]) / 2)


def test_verdicts_agree_with_q_values():
    t = transfer_from_runs(fake_runs(all_combos(), [0, 1, 2]), TASKS)
    seen = set()
    for i in range(3):
        for j in range(3):
            if i == j:
                continue
            low, high = t.pair_interval[i][j]
            verdict = t.pair_verdict[i][j]
            seen.add(verdict)
            q = t.pair_q[i][j]
            # verdicts are made at a 5 % false discovery rate over the matrix; the interval is the cell's own
            assert verdict == ("unclear" if q > 0.05 else "positive" if t.pair_gain[i][j] > 0 else "negative")
            assert q >= t.gains[combo_key(sorted([TASKS[i], TASKS[j]]))][TASKS[i]].p_value
            if verdict != "unclear":
                assert low > 0 or high < 0
            assert low <= t.pair_gain[i][j] <= high
            assert t.pair_seeds[i][j] == 3 and t.pair_mde[i][j] > 0
    assert seen == {"positive", "negative", "unclear"}
    assert t.pair_verdict[1][0] == "negative" and t.pair_verdict[0][1] == "positive"
    assert t.pair_verdict[0][2] == "unclear"  # no effect at all


def test_one_seed_is_never_clear_of_noise():
    t = transfer_from_runs(fake_runs(all_combos(), [0]), TASKS)
    assert {t.pair_verdict[i][j] for i in range(3) for j in range(3) if i != j} == {"unclear"}
    assert t.pair_gain_std[0][1] == 0.0


def test_noise_hides_a_small_effect():
    loud = [0.0, 0.05, -0.05]
    t = transfer_from_runs(fake_runs(all_combos(), [0, 1, 2], noise=loud), TASKS)
    assert t.pair_verdict[2][1] == "unclear"  # +0.05 effect drowned by ±0.05 seed noise
    quiet = transfer_from_runs(fake_runs(all_combos(), [0, 1, 2]), TASKS)
    assert quiet.pair_verdict[2][1] == "positive"


def test_scores_are_ordered_by_seed():
    runs = fake_runs(all_combos(), [2, 0, 1])
    t = transfer_from_runs(list(reversed(runs)), TASKS)
    expected = [BASE["a"] + NOISE[k] * 2 for k in (1, 2, 0)]  # seeds 0, 1, 2 were positions 1, 2, 0
    assert t.scores["a"]["a"] == pytest.approx(expected)


def test_untrained_pairs_stay_empty():
    combos = [("a",), ("b",), ("c",), ("a", "b")]
    t = transfer_from_runs(fake_runs(combos, [0, 1]), TASKS)
    assert t.pair_gain[0][2] is None and t.pair_verdict[0][2] is None and t.pair_gain[0][1] is not None


def test_higher_order_is_compared_with_standley_estimate():
    t = transfer_from_runs(fake_runs(all_combos(3), [0, 1, 2]), TASKS)
    ho = higher_order(t)
    assert list(ho) == ["a+b+c"]
    a = ho["a+b+c"]["a"]
    assert a["estimate"] == pytest.approx((t.pair_gain[0][1] + t.pair_gain[0][2]) / 2)
    # the fake effects are additive, so a's trained gain in the triple is the sum of its pair gains
    assert a["trained"] == pytest.approx(t.pair_gain[0][1] + t.pair_gain[0][2], abs=1.0)
    assert a["error"] == pytest.approx(a["trained"] - a["estimate"])
    assert standley_estimate(t.pair_gain, TASKS, ["a"], "a") is None


def test_missing_test_labels_do_not_crash():
    runs = fake_runs(all_combos(), [0, 1])
    for r in runs:
        if r.tasks == ("a", "b"):
            r.metrics["a"] = {"primary": "macro_f1", "n": 0}
    t = transfer_from_runs(runs, TASKS)
    assert "a" not in t.gains["a+b"] and t.pair_gain[0][1] is None
    assert math.isfinite(t.pair_gain[1][0])
    assert combo_key(("x", "y")) == "x+y"
