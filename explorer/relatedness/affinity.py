"""Cheap relatedness estimates from one joint training run, instead of training every pair.

One model is trained on all the chosen tasks together (``explorer.training.trainer.train``,
the one training loop); an ``AffinityCallback`` measures, every ``every`` steps,
before the optimiser's update and with dropout off (so "before" and "after"
differ only by the update being measured):

- ``lookahead``: TAG's inter-task affinity (Fifty et al. 2021). For each task j,
  the optimiser's own update of the shared parameters from task j's loss alone
  (Adam's actual step from its current moments, not a plain gradient step), and
  every task i's loss on the same batch before and after it:
  Z(j→i) = 1 − L_i(after) / L_i(before). Positive: j's update also lowers i's loss.
- ``grad_dot``: ⟨g_i, g_j⟩ / L_i, the loss-normalised gradient dot product. It is
  what a plain SGD look-ahead step of size lr measures to first order
  (Z ≈ lr·⟨g_i, g_j⟩ / L_i), so it ranks pairs exactly as that step would.
- ``grad_cosine``: the cosine of the two tasks' gradients on the shared parameters.
- ``conflict_share``: the share of measured steps on which that dot product is
  negative (the tasks pull the shared layers in conflicting directions).

Each is averaged over the measured steps. Matrices follow the transfer
matrix's orientation: row i is the task being affected, column j the partner,
so ``lookahead[i][j] = Z(j→i)`` sits where ``pair_gain[i][j]`` (i's gain when
trained with j) sits. The diagonal is None; the self-affinities Z(i→i) are
returned separately as ``lookahead_self``.

``score_estimates`` checks every estimate against the trained pair gains: its
Spearman rank correlation over the (task, partner) cells, with a bootstrap
interval over those cells.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import rankdata, spearmanr
from torch.func import functional_call

from explorer.data.dataset import Dataset
from explorer.data.tasks import Task
from explorer.errors import ExplorerError
from explorer.training.hooks import Callback, Step
from explorer.training.progress import Progress, within
from explorer.training.trainer import Prepared, TrainConfig, prepare, task_loss, train

ESTIMATES = ("lookahead", "grad_dot", "grad_cosine", "conflict_share")
# What each estimate is, in one line (the report and the page show it).
DESCRIPTIONS = {
    "lookahead": "TAG lookahead: relative change of the task's loss after the optimiser's own (Adam) "
                 "update from the partner's loss",
    "grad_dot": "loss-normalised gradient dot product <g_task, g_partner>/L_task (a plain SGD "
                "look-ahead to first order)",
    "grad_cosine": "cosine of the two tasks' gradients on the shared layers",
    "conflict_share": "share of measured steps on which the two gradients point apart",
    "surrogate": "linear surrogate fitted on trained random task subsets (size >= 3): the partner's "
                 "coefficient in the task's gain",
}
# How each estimate should relate to the trained gains if it were a good proxy.
EXPECTED_SIGN = {"lookahead": 1, "grad_dot": 1, "grad_cosine": 1, "conflict_share": -1, "surrogate": 1}
BOOTSTRAP_RESAMPLES = 2000


class _Averages:
    """Running sums of an n x n statistic, counting only steps where both tasks had labels."""

    def __init__(self, n: int):
        self.sum = torch.zeros(n, n, dtype=torch.float64)
        self.count = torch.zeros(n, n, dtype=torch.float64)

    def add(self, i: int, j: int, value: float) -> None:
        self.sum[i, j] += value
        self.count[i, j] += 1

    def matrix(self, diagonal: bool = False) -> list[list[float | None]]:
        n = len(self.sum)
        return [[None if (i == j and not diagonal) or self.count[i, j] == 0
                 else float(self.sum[i, j] / self.count[i, j]) for j in range(n)] for i in range(n)]


def optimiser_update(optimiser: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter],
                     grads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``params`` after one step of ``optimiser`` with gradients ``grads``; nothing real is touched.

    The step is the optimiser's own (same class, same hyperparameters, a copy of
    its state: for Adam the moments and step count), taken on copies, so the
    trained parameters, their autograd versions and the optimiser's state stay as
    they were. Parameters the optimiser has no state for yet step as its first step would.
    """
    group_of = {id(p): g for g in optimiser.param_groups for p in g["params"]}
    groups: dict[int, dict] = {}
    copies = []
    for p, g in zip(params, grads):
        group = group_of.get(id(p))
        if group is None:
            raise ExplorerError("The optimiser does not train one of the shared parameters; "
                                "build it over the model's parameters.")
        c = p.detach().clone().requires_grad_(True)
        c.grad = g.detach().clone()
        copies.append((p, c))
        groups.setdefault(id(group), {**{k: v for k, v in group.items() if k != "params"}, "params": []})
        groups[id(group)]["params"].append(c)
    shadow = type(optimiser)(list(groups.values()))
    for p, c in copies:
        state = optimiser.state.get(p)
        if state:
            shadow.state[c] = {k: v.clone() if torch.is_tensor(v) else v for k, v in state.items()}
    shadow.step()
    return [c.detach() for _, c in copies]


def measure(model: torch.nn.Module, optimiser: torch.optim.Optimizer, tasks: Sequence[Task], x: torch.Tensor,
            y: dict[str, torch.Tensor], sums: dict[str, _Averages],
            weights: dict[str, torch.Tensor] | None = None) -> bool:
    """One measurement of every estimate on one batch, added to ``sums``; False when no task had labels.
    ``weights``: task -> class weights, the loss the model trains on (``Prepared.class_weights``)."""
    weights = weights or {}
    shared = dict(model.encoder.named_parameters())
    was_training = model.training
    model.eval()
    try:
        outputs = model(x)
        losses = {k: loss for k, t in enumerate(tasks)
                  if (loss := task_loss(t, outputs[t.name], y[t.name], weights.get(t.name))) is not None}
        if not losses:
            return False
        grads = {}
        for k, loss in losses.items():
            g = torch.autograd.grad(loss, list(shared.values()), retain_graph=True, allow_unused=True)
            grads[k] = [torch.zeros_like(p) if gi is None else gi for p, gi in zip(shared.values(), g)]
        with torch.no_grad():
            before = {i: float(loss) for i, loss in losses.items()}
            params = dict(model.named_parameters())
            for j, g in grads.items():  # j: the task whose update is taken
                stepped = optimiser_update(optimiser, list(shared.values()), g)
                after = functional_call(model, {**params, **{f"encoder.{n}": p for n, p in zip(shared, stepped)}},
                                        (x,))
                for i in losses:  # i: the task whose loss is measured
                    loss_after = float(task_loss(tasks[i], after[tasks[i].name], y[tasks[i].name],
                                                 weights.get(tasks[i].name)))
                    sums["lookahead"].add(i, j, 1.0 - loss_after / max(before[i], 1e-12))
            flat = {k: torch.cat([gi.reshape(-1) for gi in g]).double() for k, g in grads.items()}
            for i in flat:
                for j in flat:
                    if i == j:
                        continue
                    dot = float(flat[i] @ flat[j])
                    sums["grad_dot"].add(i, j, dot / max(before[i], 1e-12))
                    norm = float(flat[i].norm() * flat[j].norm())
                    if norm > 0:
                        sums["grad_cosine"].add(i, j, dot / norm)
                        sums["conflict_share"].add(i, j, float(dot < 0))
        return True
    finally:
        model.train(was_training)


class AffinityCallback(Callback):
    """Measures the estimates during training (``explorer.training.hooks``): every ``every`` steps, at most ``limit``.

    Runs in ``before_update``: the parameters and the optimiser's state are those
    the batch's losses were computed with. It changes nothing the training sees
    (its forward passes run in eval mode, so no dropout mask is drawn; its
    look-ahead steps are taken on copies).
    """

    def __init__(self, tasks: Sequence[Task], every: int = 5, limit: int | None = None,
                 weights: dict[str, torch.Tensor] | None = None):
        self.tasks = list(tasks)
        self.weights = dict(weights or {})  # moved to the model's device at the first measurement
        self.every, self.limit = every, limit
        self.sums = {name: _Averages(len(self.tasks)) for name in ESTIMATES}
        self.measured = 0

    def before_update(self, step: Step) -> None:
        if (step.index - 1) % self.every or (self.limit is not None and self.measured >= self.limit):
            return
        device = step.x.device
        if any(w.device != device for w in self.weights.values()):
            self.weights = {k: w.to(device) for k, w in self.weights.items()}
        if measure(step.model, step.optimiser, self.tasks, step.x, step.targets, self.sums, self.weights):
            self.measured += 1

    def result(self) -> dict:
        n = len(self.tasks)
        self_affinity = self.sums["lookahead"].matrix(diagonal=True)
        return {"tasks": [t.name for t in self.tasks],
                **{name: self.sums[name].matrix() for name in ESTIMATES},
                "lookahead_self": [self_affinity[i][i] for i in range(n)],
                "steps_measured": self.measured, "every": self.every}


def measurement_interval(every: int, total_steps: int, max_measurements: int | None) -> int:
    """``every``, widened so that at most ``max_measurements`` fall in ``total_steps`` (spread over training)."""
    if max_measurements is None:
        return every
    return max(every, math.ceil(total_steps / max(1, max_measurements)))


def one_run_affinity(dataset: Dataset, tasks: Sequence[str], config: TrainConfig | None = None,
                     prepared: Prepared | None = None, every: int = 5, max_measurements: int | None = None,
                     progress: Progress | None = None) -> dict:
    """Train one joint model on ``tasks`` and estimate every pair's affinity along the way.

    ``prepared`` (from ``explorer.training.trainer.prepare``) may hold more tasks than
    ``tasks``; it is reused to save preprocessing in a sweep. ``max_measurements``
    bounds the measurement cost (``every`` is widened to fit). ``progress``
    receives a ``ProgressEvent`` per step; returning False cancels with ``Cancelled``. The model trains exactly as ``train`` trains
    it (same loop, seed, early stopping): the estimates describe that run.
    """
    config = (config or TrainConfig()).resolve(dataset.modality)
    # with ``prepared`` its tasks were checked when it was prepared; one it lacks is named below
    names = dataset.check_tasks(list(tasks)) if prepared is None else list(dict.fromkeys(tasks))
    if len(names) < 2:
        raise ExplorerError("Affinity needs at least two tasks: it measures how tasks affect each other.")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ExplorerError(f"every must be a whole number of steps >= 1, got {every!r}.")
    if max_measurements is not None and (not isinstance(max_measurements, int) or max_measurements < 1):
        raise ExplorerError(f"max_measurements must be a whole number >= 1 or None, got {max_measurements!r}.")
    prepared = prepared or prepare(dataset, names, config)
    by_name = {t.name: t for t in prepared.tasks}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ExplorerError(f"The prepared data lacks task(s) {', '.join(missing)}: prepare it with all the tasks.")
    task_list = [by_name[n] for n in names]
    sub = dataclasses.replace(prepared, tasks=task_list)  # a joint model of these tasks only
    steps_per_epoch = max(1, -(-len(prepared.x["train"]) // config.batch_size))
    every = measurement_interval(every, steps_per_epoch * config.epochs, max_measurements)
    callback = AffinityCallback(task_list, every, weights=sub.class_weights)

    start = time.perf_counter()
    result = train(dataset, names, config, progress=within(progress, 0, 1, 1, "affinity", "affinity run"), prepared=sub,
                   callbacks=[callback])
    return {**callback.result(), "lookahead_optimiser": "Adam", "lookahead_lr": config.lr,
            "epochs": len(result.history), "seconds": time.perf_counter() - start, "device": result.device}


# --- how well each estimate tracks the trained gains -------------------------------------------------------

def _cells(estimate: list[list], pair_gain: list[list]) -> list[tuple[float, float, int]]:
    """(trained gain, estimate, row) of every off-diagonal cell where both are known."""
    n = len(pair_gain)
    return [(pair_gain[i][j], estimate[i][j], i) for i in range(n) for j in range(n)
            if i != j and pair_gain[i][j] is not None and estimate[i][j] is not None]


def within_task_spearman(cells: Sequence[tuple[float, float, int]]) -> float | None:
    """Spearman over the cells after subtracting each row's mean from both sides.

    It asks only "which partner helps this task most": a level shared by a whole
    row (e.g. a task whose single-task baseline came out low by seed luck, which
    raises all its trained gains and the gains a surrogate is fitted on alike)
    does not count.
    """
    rows: dict[int, list[tuple[float, float]]] = {}
    for gain, value, row in cells:
        rows.setdefault(row, []).append((gain, value))
    centred = [(g - np.mean([c[0] for c in r]), v - np.mean([c[1] for c in r]))
               for r in rows.values() if len(r) >= 2 for g, v in r]
    if len(centred) < 3 or len({c[0] for c in centred}) < 2 or len({c[1] for c in centred}) < 2:
        return None
    return float(spearmanr([c[0] for c in centred], [c[1] for c in centred]).statistic)


def bootstrap_spearman(x: Sequence[float], y: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                       confidence: float = 0.95, seed: int = 0) -> list[float] | None:
    """Percentile bootstrap interval of Spearman's rho over the (x, y) cells, resampled with replacement.

    Resamples in which one side is constant have no rank correlation and are
    left out; None when fewer than half the resamples have one.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    rx, ry = rankdata(x[idx], axis=1), rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    ok = denom > 0
    if ok.sum() < resamples / 2:
        return None
    rho = (rx * ry).sum(axis=1)[ok] / denom[ok]
    alpha = (1 - confidence) / 2
    return [float(np.quantile(rho, alpha)), float(np.quantile(rho, 1 - alpha))]


def score_estimate(estimate: list[list] | None, pair_gain: list[list], name: str = "",
                   missing: str = "no affinity run in this sweep") -> dict:
    """Spearman of one estimate matrix with the trained pair gains, its p-value and bootstrap interval."""
    info = {"spearman": None, "interval": None, "p_value": None, "spearman_within_task": None, "n_pairs": 0,
            "expected_sign": EXPECTED_SIGN.get(name, 1), "description": DESCRIPTIONS.get(name, ""), "reason": None}
    if estimate is None:
        info["reason"] = missing
        return info
    cells = _cells(estimate, pair_gain)
    info["n_pairs"] = len(cells)
    if len(cells) < 3:
        info["reason"] = ("fewer than 3 trained (task, partner) cells: train the pairs of at least "
                          "3 tasks to rank them")
    elif len({c[0] for c in cells}) < 2 or len({c[1] for c in cells}) < 2:
        info["reason"] = "one side is constant, so ranks cannot be compared"
    else:
        gains, values = [c[0] for c in cells], [c[1] for c in cells]
        result = spearmanr(gains, values)
        info["spearman"], info["p_value"] = float(result.statistic), float(result.pvalue)
        info["interval"] = bootstrap_spearman(gains, values)
        info["spearman_within_task"] = within_task_spearman(cells)
    return info


def agreement(scored: dict) -> float | None:
    """How far a scored estimate (``score_estimate``) agrees with the trained gains in the direction it
    predicts: its Spearman times its expected sign, so estimates rank the same way in every front end.
    None when it has no Spearman."""
    rho = scored.get("spearman")
    return None if rho is None else (scored.get("expected_sign") or 1) * rho


def compare_with_gains(affinity: dict | None, pair_gain: list[list]) -> tuple[dict, dict]:
    """Spearman rank correlation of each one-run estimate with the trained pair gains, over off-diagonal cells.

    Both matrices share one orientation (row i = affected task, column j =
    partner), so cell (i, j) pairs i's trained gain with j on the estimate of
    j's effect on i. Returns ``({estimate: rho or None}, {estimate: details})``;
    details give ``value`` (= ``spearman``), its bootstrap ``interval``, the
    number of pairs, the p-value, the sign a useful proxy should have, and the
    reason when rho is None.
    """
    values, details = {}, {}
    for name in ESTIMATES:
        info = score_estimate((affinity or {}).get(name), pair_gain, name)
        values[name] = info["spearman"]
        details[name] = {"value": info["spearman"], **info}
    return values, details
