"""The transfer matrix: per-task gains of every trained combination against single-task models.

Standley et al. (2020) call this the ground truth of task relatedness: train
every single task and every pair (and optionally larger groups), then compare.
Here each cell keeps its seed noise (``explorer.relatedness.gains.gain_stats``), so a
gain is called positive or negative transfer only when its 95 % interval
excludes 0.

Matrix orientation, used everywhere in the explorer: ``G[i][j]`` is the gain of
task ``i`` (the row) when trained together with task ``j`` (the column). The
diagonal is ``None``: a task is not its own partner.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from explorer.relatedness.gains import Gain, delta_m, gain_stats
from explorer.training.metrics import primary

Matrix = list[list["float | None"]]


def combo_key(combo: Iterable[str]) -> str:
    """The name of a combination in reports: its tasks joined by '+', in the given order."""
    return "+".join(combo)


def combo_tasks(key: str) -> tuple[str, ...]:
    return tuple(key.split("+"))


@dataclass
class Transfer:
    """Everything the sweep derives from the trained combinations of one training-set size."""
    tasks: list[str]
    metric: dict[str, str]                         # task -> primary metric name
    scores: dict[str, dict[str, list[float]]]      # combo key -> task -> primary score per seed
    single: dict[str, dict]                        # task -> {mean, std, scores}
    gains: dict[str, dict[str, Gain]]              # multi-task combo key -> task -> Gain
    delta_m: dict[str, float]                      # multi-task combo key -> mean gain over its tasks
    pair_gain: Matrix = field(default_factory=list)
    pair_gain_std: Matrix = field(default_factory=list)
    pair_verdict: list[list[str | None]] = field(default_factory=list)
    pair_interval: list[list[list[float] | None]] = field(default_factory=list)

    def pair(self, task: str, partner: str) -> Gain | None:
        """The gain of ``task`` when trained with ``partner``, or None when that pair was not trained."""
        for key, per_task in self.gains.items():
            if set(combo_tasks(key)) == {task, partner} and task in per_task:
                return per_task[task]
        return None


def collect_scores(runs: Sequence) -> tuple[dict[str, dict[str, list[float]]], dict[str, str]]:
    """Per-seed primary test scores of each combination, ordered by seed.

    ``runs`` are ``explorer.training.batched.ComboRun``: one trained model (a
    combination and a seed) each.
    """
    scores: dict[str, dict[str, list[tuple[int, float]]]] = {}
    metric: dict[str, str] = {}
    for run in runs:
        per_task = scores.setdefault(combo_key(run.tasks), {})
        for task in run.tasks:
            m = run.metrics[task]
            metric[task] = m["primary"]
            # A task without test labels has no primary value; NaN keeps the seed count honest.
            value = primary(m) if m["primary"] in m else float("nan")
            per_task.setdefault(task, []).append((run.seed, value))
    ordered = {key: {t: [v for _, v in sorted(vals)] for t, vals in per_task.items()}
               for key, per_task in scores.items()}
    return ordered, metric


def transfer_from_runs(runs: Sequence, tasks: Sequence[str]) -> Transfer:
    """Gains of every multi-task combination in ``runs`` against the singles in ``runs``."""
    tasks = list(tasks)
    scores, metric = collect_scores(runs)
    single: dict[str, dict] = {}
    for t in tasks:
        vals = scores.get(t, {}).get(t)
        if vals is not None:
            arr = np.asarray(vals, float)
            single[t] = {"mean": float(np.nanmean(arr)) if np.isfinite(arr).any() else None,
                         "std": float(np.nanstd(arr, ddof=1)) if np.isfinite(arr).sum() > 1 else 0.0,
                         "scores": [float(v) for v in vals]}
    gains: dict[str, dict[str, Gain]] = {}
    for key, per_task in scores.items():
        if len(combo_tasks(key)) < 2:
            continue
        gains[key] = {}
        for t, vals in per_task.items():
            base = single.get(t)
            multi = [v for v in vals if np.isfinite(v)]
            ref = [v for v in (base or {}).get("scores", []) if np.isfinite(v)]
            if multi and ref:
                gains[key][t] = gain_stats(multi, ref)
    dm = {key: delta_m([g.mean for g in per_task.values()]) for key, per_task in gains.items() if per_task}
    result = Transfer(tasks, metric, scores, single, gains, dm)
    result.pair_gain, result.pair_gain_std, result.pair_verdict, result.pair_interval = pair_matrices(result)
    return result


def pair_matrices(transfer: Transfer) -> tuple[Matrix, Matrix, list[list[str | None]], list]:
    """Mean gain, its seed std, verdict and 95 % interval for every (task, partner) pair."""
    n = len(transfer.tasks)
    mean: Matrix = [[None] * n for _ in range(n)]
    std: Matrix = [[None] * n for _ in range(n)]
    verdict: list[list[str | None]] = [[None] * n for _ in range(n)]
    interval: list = [[None] * n for _ in range(n)]
    for i, a in enumerate(transfer.tasks):
        for j, b in enumerate(transfer.tasks):
            g = transfer.pair(a, b) if i != j else None
            if g is None:
                continue
            d = g.to_dict()
            mean[i][j], std[i][j], verdict[i][j] = d["mean"], d["std"], d["verdict"]
            interval[i][j] = [d["low"], d["high"]]
    return mean, std, verdict, interval


def standley_estimate(pair_gain: Matrix, tasks: Sequence[str], group: Iterable[str], task: str) -> float | None:
    """Standley's higher-order approximation: the mean of ``task``'s pair gains inside ``group``.

    Returns None when none of those pairs was trained.
    """
    i = list(tasks).index(task)
    vals = [pair_gain[i][list(tasks).index(p)] for p in group if p != task]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def higher_order(transfer: Transfer) -> dict[str, dict[str, dict]]:
    """For every trained group of 3 or more tasks: each task's trained gain next to Standley's estimate."""
    out: dict[str, dict[str, dict]] = {}
    for key, per_task in transfer.gains.items():
        group = combo_tasks(key)
        if len(group) < 3:
            continue
        out[key] = {}
        for t, g in per_task.items():
            d = g.to_dict()
            est = standley_estimate(transfer.pair_gain, transfer.tasks, group, t)
            out[key][t] = {"trained": d["mean"], "trained_std": d["std"], "verdict": d["verdict"],
                           "estimate": est,
                           "error": None if est is None or d["mean"] is None else d["mean"] - est}
    return out
