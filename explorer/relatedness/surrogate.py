"""A surrogate of the transfer matrix fitted on a few trained task subsets (task modeling).

Following the task-modeling line of work (Li et al. 2023, "Identification of
negative transfers in multitask learning using surrogate models"), a handful of
random task subsets S (3 tasks or more) are trained, and for every task i a
linear model of its gain is fitted over subset indicators:

    gain_i(S) ≈ Σ_{j ∈ S, j ≠ i} w_ij

No intercept: trained alone (S = {i}) a task's gain is 0 by definition. The
coefficient w_ij is partner j's estimated effect on task i, so the surrogate
predicts every pair (w_ij) and every larger group (the sum), including groups
that were never trained. Fitted on subsets of 3 or more tasks only, its pair
predictions are out of sample: the sweep scores them against the trained pairs
like any other estimate. A small ridge penalty pulls coefficients that the
subsets do not pin down towards 0 (no transfer).
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from explorer.errors import ExplorerError
from explorer.relatedness.transfer import combo_key, combo_tasks

RIDGE = 0.1
MIN_SIZE = 3


def subsets_for(tasks: Sequence[str], count: int | None = None, seed: int = 0,
                min_size: int = MIN_SIZE) -> list[tuple[str, ...]]:
    """``count`` random subsets of ``min_size`` .. all tasks (all of them when fewer exist), in the tasks' order.

    Sizes are drawn evenly so that small and large groups both inform the fit;
    ``count=None`` asks for the default, 2 × the number of tasks.
    """
    tasks = list(tasks)
    pool = [c for size in range(min_size, len(tasks) + 1) for c in itertools.combinations(tasks, size)]
    count = 2 * len(tasks) if count is None else count
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ExplorerError(f"The number of surrogate subsets must be a whole number >= 0, got {count!r}.")
    if count >= len(pool):
        return pool
    rng = np.random.default_rng(seed)
    by_size = {size: [c for c in pool if len(c) == size] for size in range(min_size, len(tasks) + 1)}
    picked: list[tuple[str, ...]] = []
    sizes = itertools.cycle(sorted(by_size))
    while len(picked) < count:
        size = next(sizes)
        left = [c for c in by_size[size] if c not in picked]
        if left:
            picked.append(left[int(rng.integers(len(left)))])
    return sorted(picked, key=pool.index)


@dataclass
class Surrogate:
    tasks: list[str]
    weights: list[list[float | None]]          # [i][j]: partner j's effect on task i's gain (percent)
    fitted_on: list[str] = field(default_factory=list)   # combination keys the fit used
    n_cells: list[int] = field(default_factory=list)     # per task: how many gains informed its row

    def predict(self, group: Sequence[str], task: str) -> float | None:
        """The predicted gain (percent) of ``task`` trained in ``group``; None for a task it knows nothing of."""
        i = self.tasks.index(task)
        if not self.n_cells[i]:
            return None
        return float(sum(self.weights[i][self.tasks.index(p)] or 0.0 for p in group if p != task))

    def pair_matrix(self) -> list[list[float | None]]:
        return [[w if self.n_cells[i] else None for w in row] for i, row in enumerate(self.weights)]

    def predictions(self, min_size: int = 2) -> dict[str, dict[str, float | None]]:
        """Predicted gains of every group of ``min_size`` or more tasks: key -> task -> gain."""
        return {combo_key(c): {t: self.predict(c, t) for t in c}
                for size in range(min_size, len(self.tasks) + 1) for c in itertools.combinations(self.tasks, size)}


def fit_surrogate(tasks: Sequence[str], gains: Mapping[str, Mapping[str, float | None]],
                  ridge: float = RIDGE) -> Surrogate:
    """Fit the linear surrogate on trained gains: combination key -> task -> gain (percent)."""
    tasks = list(tasks)
    n = len(tasks)
    weights: list[list[float | None]] = [[None] * n for _ in range(n)]
    counts = []
    used = sorted({key for key, per in gains.items() if any(v is not None for v in per.values())})
    for i, task in enumerate(tasks):
        others = [j for j in range(n) if j != i]
        rows, targets = [], []
        for key, per_task in gains.items():
            members = set(combo_tasks(key))
            value = per_task.get(task)
            if task not in members or len(members) < 2 or value is None or not np.isfinite(value):
                continue
            rows.append([1.0 if tasks[j] in members else 0.0 for j in others])
            targets.append(float(value))
        counts.append(len(rows))
        if not rows:
            continue
        x, y = np.asarray(rows), np.asarray(targets)
        w = np.linalg.solve(x.T @ x + ridge * np.eye(len(others)), x.T @ y)
        for k, j in enumerate(others):
            weights[i][j] = float(w[k])
    return Surrogate(tasks, weights, used, counts)


def held_out_error(tasks: Sequence[str], gains: Mapping[str, Mapping[str, float | None]],
                   ridge: float = RIDGE) -> dict:
    """Leave one trained combination out, fit on the rest, predict its gains; against a constant.

    The constant predicts each task's mean gain over the combinations left in
    (the overall mean for a task seen nowhere else): a surrogate that does not
    beat it has learned nothing about which partners matter. Returns mean
    absolute errors (percent points) over the held-out (combination, task) cells.
    """
    errors, constant = [], []
    keys = [k for k in gains if len(combo_tasks(k)) >= 2]
    for key in keys:
        rest = {k: v for k, v in gains.items() if k != key}
        model = fit_surrogate(tasks, rest, ridge)
        pooled = [v for per in rest.values() for v in per.values() if v is not None and np.isfinite(v)]
        for task, value in gains[key].items():
            if value is None or not np.isfinite(value):
                continue
            predicted = model.predict(combo_tasks(key), task)
            seen = [per[task] for k, per in rest.items() if per.get(task) is not None and np.isfinite(per[task])]
            base = np.mean(seen) if seen else (np.mean(pooled) if pooled else 0.0)
            if predicted is None:
                predicted = base
            errors.append(abs(predicted - value))
            constant.append(abs(base - value))
    if not errors:
        return {"mae": None, "constant_mae": None, "n_cells": 0}
    return {"mae": float(np.mean(errors)), "constant_mae": float(np.mean(constant)), "n_cells": len(errors)}
