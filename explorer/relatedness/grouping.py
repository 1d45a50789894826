"""Task grouping: the best way to split the tasks into at most k jointly trained models.

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

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from explorer.errors import ExplorerError

MAX_TASKS = 8


@dataclass
class Grouping:
    groups: list[list[str]]
    score: float                 # summed expected gain over all tasks, percentage points
    per_task: dict[str, float]   # expected gain of each task in its group, percent
    source: dict[str, str]       # task -> "trained", "estimate" or "single"

    @property
    def mean_gain(self) -> float:
        return self.score / max(1, len(self.per_task))

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_gain": self.mean_gain}

    @classmethod
    def from_dict(cls, d: dict) -> "Grouping":
        return cls(d["groups"], d["score"], d["per_task"], d.get("source", {}))


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
        self.trained = {frozenset(k.split("+")): dict(v) for k, v in (trained or {}).items()}

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
            members = key.split("+")
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
    if not tasks:
        raise ExplorerError("No task to group: give at least one task.")
    if len(set(tasks)) != len(tasks):
        raise ExplorerError("Each task may appear only once in a grouping.")
    if len(tasks) > MAX_TASKS:
        raise ExplorerError(f"Exact grouping is limited to {MAX_TASKS} tasks; got {len(tasks)}.")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ExplorerError(f"The number of groups k must be a whole number >= 1, got {k!r}.")
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


def groupings_for_budgets(score, tasks: Sequence[str],
                          trained: Mapping[str, Mapping[str, float]] | None = None) -> dict[int, Grouping]:
    """The best grouping for every budget k = 1 .. number of tasks."""
    return {k: best_grouping(score, tasks, k, trained) for k in range(1, len(tasks) + 1)}
