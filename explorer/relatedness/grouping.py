"""Task grouping: the best way to serve the tasks with at most k jointly trained models.

Two definitions:

- ``overlapping`` (the default; Standley et al. 2020, Fifty et al. 2021 "TAG"):
  choose at most k groups (any subsets, a single task is a group too) that
  together contain every task; each task is served by the best chosen group
  that contains it. A task may be trained in several models, and the best
  choice is often not a partition (3 tasks, k = 2: {a,b},{b,c} can beat every
  split). Exact depth-first search with an upper bound (``best_overlapping``).
- ``partition``: every task in exactly one group (``best_grouping``).

The search is exact: every set partition of the tasks into at most k groups is
scored (Bell(8) = 4140 partitions for 8 tasks, so brute force is instant).
A partition's score is the sum over tasks of the task's gain in its group:

- the trained gain of the task in that exact group, when that group was trained;
- otherwise Standley et al.'s approximation, the mean of the task's pair gains
  with the other members of the group;
- 0 for a task alone (it is its own single-task baseline).

Ties go to the partition with fewer groups (fewer models to train and serve).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from explorer.errors import ExplorerError
from explorer.relatedness.transfer import combo_tasks

MAX_TASKS = 8
DEFINITIONS = ("overlapping", "partition")
MAX_NODES = 20_000  # search nodes before the overlapping search settles for its best so far (exact: False)


@dataclass
class Grouping:
    groups: list[list[str]]
    score: float                 # summed expected gain over all tasks, percentage points
    per_task: dict[str, float]   # expected gain of each task in its group, percent
    source: dict[str, str]       # task -> "trained", "estimate" or "single"
    definition: str = "partition"
    serves: dict[str, int] | None = None  # overlapping: task -> index of the group that serves it
    exact: bool = True                    # False when the search stopped at MAX_NODES
    stability: float | None = None        # share of resampled gain matrices with the same best groups

    @property
    def mean_gain(self) -> float:
        return self.score / max(1, len(self.per_task))

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_gain": self.mean_gain}

    @classmethod
    def from_dict(cls, d: dict) -> "Grouping":
        return cls(d["groups"], d["score"], d["per_task"], d.get("source", {}), d.get("definition", "partition"),
                   d.get("serves"), d.get("exact", True), d.get("stability"))


def set_partitions(items: Sequence[str], max_groups: int) -> Iterator[list[list[str]]]:
    """Every partition of ``items`` into at most ``max_groups`` non-empty groups (restricted growth strings)."""
    n = len(items)
    labels = [0] * n

    def extend(pos: int, used: int) -> Iterator[list[list[str]]]:
        if pos == n:
            groups: list[list[str]] = [[] for _ in range(used)]
            for item, g in zip(items, labels):
                groups[g].append(item)
            yield groups
            return
        for g in range(min(used + 1, max_groups)):
            labels[pos] = g
            yield from extend(pos + 1, max(used, g + 1))

    if n:
        yield from extend(0, 0)


class _Scorer:
    """Expected gain of one task inside one group, from pair gains and any trained groups."""

    def __init__(self, tasks: Sequence[str], pairs, trained: Mapping[str, Mapping[str, float]] | None):
        self.tasks = list(tasks)
        self.index = {t: i for i, t in enumerate(self.tasks)}
        self.pairs = pairs
        # Trained gains keyed by the group's task set, so task order in the key does not matter.
        self.trained = {frozenset(combo_tasks(k)): dict(v) for k, v in (trained or {}).items()}

    def __call__(self, task: str, group: Sequence[str]) -> tuple[float, str]:
        if len(group) == 1:
            return 0.0, "single"
        known = self.trained.get(frozenset(group), {})
        if known.get(task) is not None:
            return float(known[task]), "trained"
        i = self.index[task]
        vals = [self.pairs[i][self.index[p]] for p in group if p != task]
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        # An untrained, unestimable pairing counts as no effect rather than blocking the group.
        return (float(np.mean(vals)) if vals else 0.0), "estimate"


def _as_inputs(score, tasks: Sequence[str]):
    """Accept a pair matrix, or a dict of combination key -> task -> gain (pairs and larger groups)."""
    n = len(tasks)
    if isinstance(score, Mapping):
        pairs = [[None] * n for _ in range(n)]
        index = {t: i for i, t in enumerate(tasks)}
        for key, per_task in score.items():
            members = list(combo_tasks(key))
            if len(members) == 2 and all(m in index for m in members):
                a, b = members
                for t, other in ((a, b), (b, a)):
                    value = per_task.get(t)
                    if isinstance(value, Mapping):  # a Gain.to_dict()
                        value = value.get("mean")
                    pairs[index[t]][index[other]] = value
        trained = {k: {t: (v.get("mean") if isinstance(v, Mapping) else v) for t, v in per_task.items()}
                   for k, per_task in score.items()}
        return pairs, trained
    pairs = np.asarray(score, dtype=object)
    if pairs.shape != (n, n):
        raise ExplorerError(f"The score matrix is {pairs.shape}, but there are {n} tasks: "
                            "give one row and one column per task.")
    return [[None if v is None else float(v) for v in row] for row in pairs.tolist()], {}


def best_grouping(score, tasks: Sequence[str], k: int,
                  trained: Mapping[str, Mapping[str, float]] | None = None) -> Grouping:
    """The partition of ``tasks`` into at most ``k`` groups with the largest summed expected gain.

    ``score`` is either a matrix (rows = task, columns = partner, percent,
    diagonal ignored), e.g. a report's ``pair_gain`` or an affinity estimate,
    or a dict ``{"a+b": {"a": gain, "b": gain}, "a+b+c": {...}}`` of trained
    gains (plain numbers or ``Gain.to_dict()``). ``trained`` adds trained
    gains of larger groups to a matrix.
    """
    tasks = list(tasks)
    _check(tasks, k)
    pairs, from_score = _as_inputs(score, tasks)
    scorer = _Scorer(tasks, pairs, {**from_score, **(trained or {})})
    best: tuple[float, int] | None = None
    best_groups: list[list[str]] = []
    for groups in set_partitions(tasks, int(k)):
        total = sum(scorer(t, g)[0] for g in groups for t in g)
        key = (round(total, 9), -len(groups))  # rounding: float noise must not break ties
        if best is None or key > best:
            best, best_groups = key, groups
    per_task, source = {}, {}
    for g in best_groups:
        for t in g:
            per_task[t], source[t] = scorer(t, g)
    return Grouping(best_groups, float(sum(per_task.values())), per_task, source)


def _check(tasks: list[str], k) -> None:
    if not tasks:
        raise ExplorerError("No task to group: give at least one task.")
    if len(set(tasks)) != len(tasks):
        raise ExplorerError("Each task may appear only once in a grouping.")
    if len(tasks) > MAX_TASKS:
        raise ExplorerError(f"Exact grouping is limited to {MAX_TASKS} tasks; got {len(tasks)}.")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ExplorerError(f"The number of groups k must be a whole number >= 1, got {k!r}.")


def best_overlapping(score, tasks: Sequence[str], k: int,
                     trained: Mapping[str, Mapping[str, float]] | None = None) -> Grouping:
    """At most ``k`` groups covering every task, each task served by its best chosen group (Standley/TAG).

    Same inputs and gain rule as ``best_grouping``. Ties go to fewer groups.
    """
    tasks = list(tasks)
    _check(tasks, k)
    pairs, from_score = _as_inputs(score, tasks)
    scorer = _Scorer(tasks, pairs, {**from_score, **(trained or {})})
    n = len(tasks)
    candidates = [tuple(tasks[i] for i in range(n) if mask >> i & 1) for mask in range(1, 2 ** n)]
    value = {g: [scorer(t, g)[0] if t in g else -math.inf for t in tasks] for g in candidates}
    best_of = [max(value[g][i] for g in candidates) for i in range(n)]
    by_task = [sorted((g for g in candidates if tasks[i] in g), key=lambda g: -value[g][i]) for i in range(n)]
    state = {"best": (-math.inf, 0), "groups": [], "nodes": 0}

    def search(chosen: list[tuple[str, ...]], current: list[float]) -> None:
        state["nodes"] += 1
        if state["nodes"] > MAX_NODES:
            return
        uncovered = [i for i in range(n) if current[i] == -math.inf]
        if not uncovered:
            key = (round(sum(current), 9), -len(chosen))
            if key > state["best"]:
                state["best"], state["groups"] = key, list(chosen)
        if len(chosen) >= k:
            return
        bound = sum(max(c, b) for c, b in zip(current, best_of))
        if round(bound, 9) < state["best"][0] or (round(bound, 9) == state["best"][0] and uncovered == []):
            return
        # Branch on the first uncovered task (every cover must contain a group with it); when all are covered,
        # a further group can still raise some task's value.
        pool = by_task[uncovered[0]] if uncovered else candidates
        for g in pool:
            if g in chosen:
                continue
            nxt = [max(c, v) for c, v in zip(current, value[g])]
            if not uncovered and sum(nxt) <= sum(current) + 1e-12:
                continue
            search(chosen + [g], nxt)

    search([], [-math.inf] * n)
    groups = [list(g) for g in state["groups"]]
    per_task, source, serves = {}, {}, {}
    for t in tasks:
        best_i = max((i for i, g in enumerate(groups) if t in g), key=lambda i: (scorer(t, groups[i])[0], -i))
        per_task[t], source[t] = scorer(t, groups[best_i])
        serves[t] = best_i
    return Grouping(groups, float(sum(per_task.values())), per_task, source, "overlapping", serves,
                    exact=state["nodes"] <= MAX_NODES)


def best_for(definition: str):
    if definition not in DEFINITIONS:
        raise ExplorerError(f"Unknown grouping definition '{definition}'. Use one of: {', '.join(DEFINITIONS)}.")
    return best_overlapping if definition == "overlapping" else best_grouping


def groupings_for_budgets(score, tasks: Sequence[str],
                          trained: Mapping[str, Mapping[str, float]] | None = None,
                          definition: str = "overlapping") -> dict[int, Grouping]:
    """The best grouping for every budget k = 1 .. number of tasks."""
    best = best_for(definition)
    return {k: best(score, tasks, k, trained) for k in range(1, len(tasks) + 1)}


def stability(gains: Mapping[str, Mapping[str, Mapping]], tasks: Sequence[str], k: int,
              definition: str = "overlapping", draws: int = 100, seed: int = 0) -> float | None:
    """How often the best grouping stays best when every trained gain is redrawn from its own uncertainty.

    ``gains`` is a report's ``gains`` (combo key -> task -> Gain.to_dict()); each
    gain is drawn from a normal with its mean and the standard error implied by
    its 95 % interval. None when no gain has an interval.
    """
    best = best_for(definition)
    rng = np.random.default_rng(seed)
    means = {key: {t: g.get("mean") for t, g in per.items()} for key, per in gains.items()}
    ses = {key: {t: (None if g.get("low") is None or g.get("high") is None or g.get("mean") is None
                     else (g["high"] - g["low"]) / 3.92) for t, g in per.items()} for key, per in gains.items()}
    if not any(v for per in ses.values() for v in per.values()):
        return None

    def canon(grouping: Grouping):
        return frozenset(frozenset(g) for g in grouping.groups)

    reference = canon(best(means, tasks, k))
    same = 0
    for _ in range(draws):
        drawn = {key: {t: (None if means[key][t] is None else
                           means[key][t] + (ses[key][t] or 0.0) * rng.standard_normal())
                       for t in per} for key, per in gains.items()}
        same += canon(best(drawn, tasks, k)) == reference
    return same / draws
