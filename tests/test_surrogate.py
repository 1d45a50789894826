"""The task-subset surrogate on gains generated from a known linear model."""
import itertools

import numpy as np
import pytest

from explorer.errors import ExplorerError
from explorer.relatedness.surrogate import fit_surrogate, held_out_error, subsets_for
from explorer.relatedness.transfer import combo_key

TASKS = ["a", "b", "c", "d", "e"]
# planted effects: b helps a a lot, e (an unrelated task) does nothing, d hurts c
TRUE = {("a", "b"): 8.0, ("a", "c"): 1.0, ("a", "d"): 0.0, ("a", "e"): 0.0,
        ("b", "a"): 3.0, ("b", "c"): -1.0, ("b", "d"): 0.5, ("b", "e"): 0.0,
        ("c", "a"): 0.0, ("c", "b"): 2.0, ("c", "d"): -6.0, ("c", "e"): 0.0,
        ("d", "a"): 1.0, ("d", "b"): 0.0, ("d", "c"): 1.5, ("d", "e"): 0.0,
        ("e", "a"): 0.0, ("e", "b"): 0.0, ("e", "c"): 0.0, ("e", "d"): 0.0}


def gains_of(subsets, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return {combo_key(s): {t: sum(TRUE[(t, p)] for p in s if p != t) + noise * rng.normal() for t in s}
            for s in subsets}


def test_subsets_are_random_groups_of_three_or_more():
    picked = subsets_for(TASKS, 6, seed=1)
    assert len(picked) == len(set(picked)) == 6 and all(len(s) >= 3 for s in picked)
    assert {len(s) for s in picked} >= {3, 4}  # sizes spread, not only the smallest
    assert picked == subsets_for(TASKS, 6, seed=1) and picked != subsets_for(TASKS, 6, seed=2)
    assert len(subsets_for(["a", "b", "c", "d"], 50)) == 5  # every subset of 3+ of 4 tasks
    assert subsets_for(["a", "b"], 3) == []
    with pytest.raises(ExplorerError, match="whole number"):
        subsets_for(TASKS, -1)


def test_fit_recovers_planted_effects_from_groups_only():
    subsets = [s for k in (3, 4, 5) for s in itertools.combinations(TASKS, k)]
    model = fit_surrogate(TASKS, gains_of(subsets), ridge=1e-6)
    w = model.pair_matrix()
    assert w[0][1] == pytest.approx(8.0, abs=1e-3)   # b -> a, never trained as a pair
    assert w[2][3] == pytest.approx(-6.0, abs=1e-3)  # d -> c
    assert abs(w[0][4]) < 1e-3 and w[4][0] == pytest.approx(0.0, abs=1e-3)  # the unrelated task
    assert w[0][0] is None
    # groups larger than pairs, including ones never trained
    assert model.predict(("a", "b", "c"), "a") == pytest.approx(9.0, abs=1e-3)
    assert model.predictions(min_size=3)["a+b+d"]["a"] == pytest.approx(8.0, abs=1e-3)


def test_surrogate_predicts_a_held_out_combination_better_than_a_constant():
    subsets = subsets_for(TASKS, 10, seed=0)
    err = held_out_error(TASKS, gains_of(subsets, noise=0.5))
    assert err["n_cells"] > 20
    assert err["mae"] < 0.5 * err["constant_mae"]
    # with no structure at all (pure noise) it does not claim to beat the constant by much
    rng = np.random.default_rng(3)
    noise = {combo_key(s): {t: float(rng.normal()) for t in s} for s in subsets}
    err = held_out_error(TASKS, noise)
    assert err["mae"] > 0.8 * err["constant_mae"]


def test_a_task_in_no_subset_is_not_predicted():
    model = fit_surrogate(["a", "b", "c", "z"], gains_of([("a", "b", "c")]))
    assert model.predict(("z", "a"), "z") is None and model.pair_matrix()[3] == [None] * 4
    assert model.predict(("a", "b"), "a") is not None
