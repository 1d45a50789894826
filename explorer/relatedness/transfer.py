"""The transfer matrix: per-task gains of every trained combination against single-task models.

Standley et al. (2020) call this the ground truth of task relatedness: train
every single task and every pair (and optionally larger groups), then compare.
Here each cell keeps its seed noise (``explorer.relatedness.gains.gain_stats``,
seed-paired where that lowers the variance), and a gain is called positive or
negative transfer only when its Benjamini–Hochberg q-value over the matrix is
at most the false discovery rate (5 % by default).

Matrix orientation, used everywhere in the explorer: ``G[i][j]`` is the gain of
task ``i`` (the row) when trained together with task ``j`` (the column). The
diagonal is ``None``: a task is not its own partner.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from explorer.relatedness.bootstrap import row_variance
from explorer.relatedness.gains import (Gain, delta_m, difference_variance, fdr_verdicts, gain_stats,
                                        pooled_seed_variance, variances)
from explorer.training.metrics import primary

Matrix = list[list["float | None"]]


def combo_key(combo: Iterable[str]) -> str:
    """The name of a combination in reports: its tasks joined by '+', in the given order.

    A '+' or '\\' inside a task name (a spreadsheet allows both) is escaped with
    '\\', so ``combo_tasks`` gives the names back; names without them (all that
    earlier reports hold) are joined unchanged.
    """
    return "+".join(t.replace("\\", "\\\\").replace("+", "\\+") for t in combo)


def combo_tasks(key: str) -> tuple[str, ...]:
    """The task names of a ``combo_key``."""
    names, current, chars = [], [], iter(key)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == "+":
            names.append("".join(current))
            current = []
        else:
            current.append(ch)
    names.append("".join(current))
    return tuple(names)


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
    pair_q: Matrix = field(default_factory=list)                 # Benjamini–Hochberg q-value per cell
    pair_seeds: list[list[int | None]] = field(default_factory=list)  # seeds of the multi-task model per cell
    pair_mde: Matrix = field(default_factory=list)               # minimum detectable gain at 80 % power
    pairing: dict = field(default_factory=dict)                  # paired or Welch, and the measured ratio
    at_chance: list[str] = field(default_factory=list)           # tasks whose single model is not above chance

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


def _seeded(runs: Sequence) -> dict[str, dict[str, dict[int, float]]]:
    """combo key -> task -> seed -> primary test score (NaN without test labels)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for run in runs:
        per_task = out.setdefault(combo_key(run.tasks), {})
        for task in run.tasks:
            m = run.metrics[task]
            per_task.setdefault(task, {})[run.seed] = primary(m) if m["primary"] in m else float("nan")
    return out


def _resolution(metrics: dict) -> float:
    """The smallest change a classification score can show on its test rows: one row."""
    if metrics.get("primary") in ("macro_f1", "accuracy") and metrics.get("n"):
        return 1.0 / int(metrics["n"])
    return 0.0


def _predictions(runs: Sequence) -> dict[str, dict[str, dict[int, np.ndarray]]]:
    """combo key -> task -> seed -> test predictions, for the runs that carry them."""
    out: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    for run in runs:
        for task, pred in (getattr(run, "test_pred", None) or {}).items():
            out.setdefault(combo_key(run.tasks), {}).setdefault(task, {})[run.seed] = pred
    return out


def transfer_from_runs(runs: Sequence, tasks: Sequence[str], *, baselines: dict[str, float] | None = None,
                       fdr: float = 0.05, row_var: dict[tuple[str, str], float] | None = None,
                       pairing: bool | None = None, truth: dict | None = None,
                       keep_at_chance: bool = False, pooled: bool = True) -> Transfer:
    """Gains of every multi-task combination in ``runs`` against the singles in ``runs``.

    Each multi-task model is paired with the single-task model of the same seed.
    ``pairing`` None measures whether that helps: summed over the cells, the
    paired variance of the difference against Welch's; the smaller wins for the
    whole matrix (one choice, so it is not picked cell by cell to suit each
    cell). ``baselines`` (task -> chance-level score, ``explorer.training.metrics.chance_score``) turns the
    relative gain into a share of the headroom above chance; ``row_var``
    ((combo key, task) -> variance) adds test-row sampling noise. Verdicts are
    made at false discovery rate ``fdr`` over all multi-task cells. ``truth`` (task -> (Task, test
    labels)) turns on the paired test-row bootstrap (``explorer.relatedness.bootstrap``) for every
    cell whose runs carry their test predictions; ``row_var`` overrides it per cell.
    ``keep_at_chance`` gives tasks at chance a gain relative to their raw score (``gain_stats``), so they
    count in Δm; they stay in ``at_chance`` and their verdicts stay unclear. ``pooled`` (the default)
    gives each cell its task's seed variance pooled over all the task's models
    (``gains.pooled_seed_variance``); False: each cell's own seeds only.
    """
    tasks = list(tasks)
    scores, metric = collect_scores(runs)
    seeded = _seeded(runs)
    resolution = {}
    for run in runs:
        for t in run.tasks:
            resolution[t] = max(resolution.get(t, 0.0), _resolution(run.metrics[t]))
    single: dict[str, dict] = {}
    for t in tasks:
        vals = scores.get(t, {}).get(t)
        if vals is not None:
            arr = np.asarray(vals, float)
            single[t] = {"mean": float(np.nanmean(arr)) if np.isfinite(arr).any() else None,
                         "std": float(np.nanstd(arr, ddof=1)) if np.isfinite(arr).sum() > 1 else 0.0,
                         "scores": [float(v) for v in vals]}
            if baselines and t in baselines:
                single[t]["baseline"] = baselines[t]
    # (key, task, multi scores, single scores, seed-matched multi, seed-matched single)
    cells = []
    for key, per_task in seeded.items():
        if len(combo_tasks(key)) < 2:
            continue
        for t, by_seed in per_task.items():
            ref = seeded.get(t, {}).get(t, {})
            multi = {s: v for s, v in by_seed.items() if np.isfinite(v)}
            base = {s: v for s, v in ref.items() if np.isfinite(v)}
            if multi and base:
                common = sorted(set(multi) & set(base))
                cells.append((key, t, [multi[s] for s in sorted(multi)], [base[s] for s in sorted(base)],
                              [multi[s] for s in common], [base[s] for s in common]))
    # each task's seed variance from all its models (gains.pooled_seed_variance), where they give one
    pools = {t: pooled_seed_variance({key: per_task[t] for key, per_task in seeded.items() if t in per_task})
             for t in {t for _, t, *_ in cells}} if pooled else {}
    summed = {"welch": 0.0, "paired": 0.0, "cells": 0}
    for _, t, m, s, pm, ps in cells:
        pool = pools.get(t, {})
        if "welch" in pool and "paired" in pool and len(m) >= 2 and len(s) >= 2 and len(pm) >= 2:
            w = difference_variance(pool["welch"][0], len(m), len(s), paired=False)
            pv = difference_variance(pool["paired"][0], len(pm), len(ps), paired=True)
        else:
            w, pv = variances(m, s)[0], variances(pm, ps)[1]
        if np.isfinite(w) and pv is not None:
            summed["welch"] += w
            summed["paired"] += pv
            summed["cells"] += 1
    use_pair = (summed["cells"] > 0 and summed["paired"] < summed["welch"]) if pairing is None else bool(pairing)
    preds = _predictions(runs) if truth else {}
    bootstrapped = 0
    gains: dict[str, dict[str, Gain]] = {}
    for key, t, m, s, pm, ps in cells:
        paired_here = use_pair and len(pm) >= 2
        noise = (row_var or {}).get((key, t))
        if noise is None and truth and t in truth:
            noise = _row_noise(preds, key, t, truth[t], len(pm) if paired_here else None)
            bootstrapped += noise is not None
        gains.setdefault(key, {})[t] = gain_stats(
            pm if paired_here else m, ps if paired_here else s, paired=paired_here,
            baseline=(baselines or {}).get(t), resolution=resolution.get(t, 0.0),
            row_var=noise or 0.0, keep_at_chance=keep_at_chance,
            pooled=pools.get(t, {}).get("paired" if paired_here else "welch"))
    fdr_verdicts([g for per_task in gains.values() for g in per_task.values()], fdr)
    dm = {key: delta_m([g.mean for g in per_task.values()]) for key, per_task in gains.items() if per_task}
    result = Transfer(tasks, metric, scores, single, gains, dm)
    result.pairing = {"paired": use_pair, "cells": summed["cells"],
                      "variance_ratio": (summed["paired"] / summed["welch"]) if summed["welch"] > 0 else None,
                      "row_bootstrap_cells": bootstrapped,
                      # each task's pooled seed degrees of freedom (gains.pooled_seed_variance), where pooled
                      "pooled_df": {t: pool[kind][1] for t, pool in sorted(pools.items())
                                    if (kind := "paired" if use_pair else "welch") in pool}}
    result.at_chance = [t for t in tasks if any(per_task.get(t) is not None and per_task[t].at_chance
                                                for per_task in gains.values())]
    (result.pair_gain, result.pair_gain_std, result.pair_verdict, result.pair_interval,
     result.pair_q, result.pair_seeds, result.pair_mde) = pair_matrices(result)
    return result


def _row_noise(preds, key: str, task: str, truth, paired_n: int | None) -> float | None:
    """The paired test-row bootstrap variance of one cell, or None when a side lacks its predictions."""
    multi, single = preds.get(key, {}).get(task, {}), preds.get(task, {}).get(task, {})
    if not multi or not single:
        return None
    if paired_n is not None:  # the seed-matched pairs the interval uses
        common = sorted(set(multi) & set(single))
        multi, single = {s: multi[s] for s in common}, {s: single[s] for s in common}
    spec, y = truth
    return row_variance(spec, y, [multi[s] for s in sorted(multi)], [single[s] for s in sorted(single)])


def _number(x: float) -> float | None:
    """NaN as None, as ``Gain.to_dict`` writes it (matrices are built on every adaptive round: no deep copy)."""
    return None if math.isnan(x) else x


def pair_matrices(transfer: Transfer) -> tuple:
    """Mean gain, its seed std, verdict, 95 % interval, q-value, seeds and minimum detectable effect per pair."""
    n = len(transfer.tasks)
    mean: Matrix = [[None] * n for _ in range(n)]
    std: Matrix = [[None] * n for _ in range(n)]
    verdict: list[list[str | None]] = [[None] * n for _ in range(n)]
    interval: list = [[None] * n for _ in range(n)]
    q: Matrix = [[None] * n for _ in range(n)]
    seeds: list = [[None] * n for _ in range(n)]
    mde: Matrix = [[None] * n for _ in range(n)]
    for i, a in enumerate(transfer.tasks):
        for j, b in enumerate(transfer.tasks):
            g = transfer.pair(a, b) if i != j else None
            if g is None:
                continue
            mean[i][j], std[i][j], verdict[i][j] = _number(g.mean), _number(g.std), g.verdict
            interval[i][j] = [_number(g.low), _number(g.high)]
            q[i][j], seeds[i][j], mde[i][j] = _number(g.q_value), g.n_multi, _number(g.mde)
    return mean, std, verdict, interval, q, seeds, mde


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
