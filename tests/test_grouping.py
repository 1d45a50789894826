"""Exact task grouping: known optima on hand-made matrices, budgets, trained groups, bad input."""
import itertools

import pytest

from explorer.errors import ExplorerError
from explorer.relatedness.grouping import best_grouping, groupings_for_budgets, set_partitions

TASKS = ["a", "b", "c", "d"]
# a and b help each other a lot, c and d a little; every cross pair hurts.
G = [[None, 10.0, -5.0, -6.0],
     [8.0, None, -4.0, -3.0],
     [-5.0, -7.0, None, 2.0],
     [-2.0, -9.0, 1.0, None]]


def brute_force(matrix, tasks, k):
    """Reference: every assignment of tasks to k labels, scored with the same rule."""
    best = None
    for labels in itertools.product(range(k), repeat=len(tasks)):
        total = 0.0
        for t, lab in zip(tasks, labels):
            mates = [u for u, m in zip(tasks, labels) if m == lab and u != t]
            if mates:
                i = tasks.index(t)
                total += sum(matrix[i][tasks.index(u)] for u in mates) / len(mates)
        best = total if best is None else max(best, total)
    return best


@pytest.mark.parametrize("n, bell", [(1, 1), (3, 5), (4, 15), (8, 4140)])
def test_partitions_are_all_enumerated_once(n, bell):
    items = [str(i) for i in range(n)]
    parts = list(set_partitions(items, n))
    assert len(parts) == bell
    assert len({frozenset(frozenset(g) for g in p) for p in parts}) == bell
    assert all(sorted(x for g in p for x in g) == sorted(items) for p in parts)


def test_known_optimum():
    g = best_grouping(G, TASKS, 2)
    assert sorted(map(sorted, g.groups)) == [["a", "b"], ["c", "d"]]
    assert g.per_task == {"a": 10.0, "b": 8.0, "c": 2.0, "d": 1.0}
    assert g.score == pytest.approx(21.0)
    assert set(g.source.values()) == {"estimate"}


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_matches_brute_force(k):
    assert best_grouping(G, TASKS, k).score == pytest.approx(brute_force(G, TASKS, k))


def test_one_model_puts_everything_together():
    g = best_grouping(G, TASKS, 1)
    assert g.groups == [TASKS]
    # a's estimate in the full group is the mean of its three pair gains
    assert g.per_task["a"] == pytest.approx((10 - 5 - 6) / 3)


def test_with_enough_models_negative_tasks_stay_alone():
    hurt = [[None if i == j else -1.0 for j in range(4)] for i in range(4)]
    g = best_grouping(hurt, TASKS, 4)
    assert sorted(g.groups) == [["a"], ["b"], ["c"], ["d"]]
    assert g.score == 0.0 and set(g.source.values()) == {"single"}
    # with k = n and the mixed matrix, the pairs that help are still grouped
    assert sorted(map(sorted, best_grouping(G, TASKS, 4).groups)) == [["a", "b"], ["c", "d"]]


def test_trained_group_overrides_estimate():
    # Trained: the triple a+b+c is far better than the pairs suggest.
    trained = {"a+b+c": {"a": 20.0, "b": 20.0, "c": 20.0}}
    g = best_grouping(G, TASKS, 2, trained=trained)
    assert sorted(map(sorted, g.groups)) == [["a", "b", "c"], ["d"]]
    assert g.source == {"a": "trained", "b": "trained", "c": "trained", "d": "single"}


def test_dict_of_gain_records_is_accepted():
    gains = {"a+b": {"a": {"mean": 5.0}, "b": {"mean": 4.0}}, "a+c": {"a": -1.0, "c": -1.0},
             "b+c": {"b": -2.0, "c": 3.0}}
    g = best_grouping(gains, ["a", "b", "c"], 2)
    assert sorted(map(sorted, g.groups)) == [["a", "b"], ["c"]]
    assert g.per_task["a"] == 5.0 and g.source["a"] == "trained"


def test_ties_prefer_fewer_models():
    zero = [[None, 0.0], [0.0, None]]
    assert best_grouping(zero, ["a", "b"], 2).groups == [["a", "b"]]


def test_budgets_and_serialisation():
    out = groupings_for_budgets(G, TASKS)
    assert list(out) == [1, 2, 3, 4]
    scores = [out[k].score for k in out]
    assert scores == sorted(scores)  # a larger budget can never do worse
    d = out[2].to_dict()
    assert set(d) >= {"groups", "score", "per_task", "source", "mean_gain"}
    assert d["mean_gain"] == pytest.approx(d["score"] / 4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(score=G, tasks=TASKS, k=0), "k must be"),
    (dict(score=[[None]], tasks=TASKS, k=2), "matrix"),
    (dict(score=G, tasks=["a", "a", "b", "c"], k=2), "only once"),
    (dict(score={}, tasks=[str(i) for i in range(9)], k=2), "limited to 8"),
])
def test_bad_input_is_explained(kwargs, message):
    with pytest.raises(ExplorerError, match=message):
        best_grouping(**kwargs)


# --- overlapping groups (Standley / TAG) -------------------------------------------------------

from explorer.relatedness.grouping import best_overlapping, stability  # noqa: E402


def test_overlapping_beats_partition_on_the_issue_example():
    # b is helped by a only a little; a and c are each helped a lot by b: {a,b},{b,c} serves all three
    tasks = ["a", "b", "c"]
    m = [[None, 10.0, -20.0], [0.5, None, 0.5], [-20.0, 10.0, None]]
    part = best_grouping(m, tasks, 2)
    over = best_overlapping(m, tasks, 2)
    assert sorted(map(sorted, over.groups)) == [["a", "b"], ["b", "c"]] and over.definition == "overlapping"
    assert over.score == pytest.approx(20.5) and part.score < over.score
    assert over.per_task == {"a": 10.0, "b": 0.5, "c": 10.0} and over.exact


def brute_overlapping(m, tasks, k):
    from explorer.relatedness.grouping import _Scorer
    scorer = _Scorer(tasks, m, {})
    cands = [tuple(t for i, t in enumerate(tasks) if mask >> i & 1) for mask in range(1, 2 ** len(tasks))]
    best = None
    for r in range(1, k + 1):
        for chosen in itertools.combinations(cands, r):
            if {t for g in chosen for t in g} != set(tasks):
                continue
            total = sum(max(scorer(t, g)[0] for g in chosen if t in g) for t in tasks)
            best = total if best is None else max(best, total)
    return best


def test_overlapping_search_is_exact_on_random_matrices():
    import numpy as np
    rng = np.random.default_rng(0)
    for n in (3, 4):
        tasks = list("abcd")[:n]
        for _ in range(4):
            m = [[None if i == j else float(rng.normal(0, 10)) for j in range(n)] for i in range(n)]
            for k in (1, 2, 3):
                got = best_overlapping(m, tasks, k)
                assert got.score == pytest.approx(brute_overlapping(m, tasks, k))
                assert len(got.groups) <= k and {t for g in got.groups for t in g} == set(tasks)
                assert got.score >= best_grouping(m, tasks, k).score - 1e-9  # a partition is one choice


def test_stability_is_high_for_clear_gains_and_lower_for_noisy_ones():
    def gains(se):
        return {"a+b": {"a": {"mean": 10.0, "low": 10 - 1.96 * se, "high": 10 + 1.96 * se},
                        "b": {"mean": 8.0, "low": 8 - 1.96 * se, "high": 8 + 1.96 * se}},
                "a+c": {"a": {"mean": -1.0, "low": -1 - 1.96 * se, "high": -1 + 1.96 * se},
                        "c": {"mean": 1.0, "low": 1 - 1.96 * se, "high": 1 + 1.96 * se}},
                "b+c": {"b": {"mean": 0.5, "low": 0.5 - 1.96 * se, "high": 0.5 + 1.96 * se},
                        "c": {"mean": -0.5, "low": -0.5 - 1.96 * se, "high": -0.5 + 1.96 * se}}}
    clear = stability(gains(0.1), list("abc"), 2, draws=40)
    noisy = stability(gains(20.0), list("abc"), 2, draws=40)
    assert clear == 1.0 and noisy < 0.8
