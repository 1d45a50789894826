"""Cheap relatedness estimates from one joint training run, instead of training every pair.

One model is trained on all the chosen tasks together. Every ``every`` steps,
on the current batch and with dropout off (so "before" and "after" differ only
by the step being measured):

- lookahead affinity (TAG, Fifty et al. 2021): for each task j, take a
  look-ahead SGD step on the shared parameters with task j's loss alone and
  measure every task i's loss on the same batch:
  Z(j→i) = 1 − L_i(after) / L_i(before). Positive: j's update also lowers
  i's loss. The step uses the training learning rate (``config.lr``), as TAG
  uses the optimiser's own rate; to first order Z(j→i) ≈ lr·⟨g_j, g_i⟩ / L_i,
  so the ranking of pairs does not depend on that choice.
- gradient cosine: the cosine similarity of the two tasks' gradients on the
  shared parameters, and the share of measured steps on which their dot
  product is negative (the tasks pull the shared layers in conflicting
  directions).

Each is averaged over the measured steps. Matrices follow the transfer
matrix's orientation: row i is the task being affected, column j the partner,
so ``lookahead[i][j] = Z(j→i)`` sits where ``pair_gain[i][j]`` (i's gain when
trained with j) sits. The diagonal is None; the self-affinities Z(i→i) are
returned separately as ``lookahead_self``.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch
from scipy.stats import spearmanr
from torch.func import functional_call

from explorer.data.dataset import Dataset
from explorer.training.device import describe, resolve_device
from explorer.errors import Cancelled, ExplorerError
from explorer.methods import get_method
from explorer.training.trainer import (Prepared, Progress, TrainConfig, batch_losses, evaluate_losses, model_spec,
                               prepare, task_loss)
from models import MultiTaskModel

ESTIMATES = ("lookahead", "grad_cosine", "conflict_share")


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


def _joint_model(prepared: Prepared, tasks: list[str], config: TrainConfig) -> MultiTaskModel:
    spec = model_spec(prepared, config)
    spec = dataclasses.replace(spec, heads={t: spec.heads[t] for t in tasks})
    return MultiTaskModel(spec)


def _double(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t


def _measure(model: MultiTaskModel, tasks, x: torch.Tensor, y: dict[str, torch.Tensor], lr: float,
             lookahead: _Averages, cosine: _Averages, conflict: _Averages) -> None:
    """One measurement of all three estimates on one batch."""
    shared = dict(model.encoder.named_parameters())
    was_training = model.training
    model.eval()
    try:
        outputs = model(x)
        losses = {k: loss for k, t in enumerate(tasks)
                  if (loss := task_loss(t, outputs[t.name], y[t.name])) is not None}
        grads = {}
        for k, loss in losses.items():
            g = torch.autograd.grad(loss, list(shared.values()), retain_graph=True, allow_unused=True)
            grads[k] = [torch.zeros_like(p) if gi is None else gi for p, gi in zip(shared.values(), g)]
        with torch.no_grad():
            # A look-ahead step of size lr changes a loss by about lr * |g|^2, often below float32's
            # resolution of the loss itself: before and after are compared in float64.
            params = {n: _double(p) for n, p in model.named_parameters()}
            x64, y64 = _double(x), {k: _double(v) for k, v in y.items()}

            def loss_of(i: int, out: dict) -> torch.Tensor:
                return task_loss(tasks[i], out[tasks[i].name], y64[tasks[i].name])

            start = functional_call(model, params, (x64,))
            before = {i: loss_of(i, start) for i in losses}
            for j, g in grads.items():  # j: the task whose step is taken
                stepped = dict(params)
                for (name, p), gi in zip(shared.items(), g):
                    stepped[f"encoder.{name}"] = params[f"encoder.{name}"] - lr * gi.double()
                after = functional_call(model, stepped, (x64,))
                for i in losses:  # i: the task whose loss is measured
                    lookahead.add(i, j, float(1.0 - loss_of(i, after) / before[i].clamp_min(1e-12)))
            flat = {k: torch.cat([gi.reshape(-1) for gi in g]).double() for k, g in grads.items()}
            for i in flat:
                for j in flat:
                    if i == j:
                        continue
                    dot = float(flat[i] @ flat[j])
                    norm = float(flat[i].norm() * flat[j].norm())
                    if norm > 0:
                        cosine.add(i, j, dot / norm)
                        conflict.add(i, j, float(dot < 0))
    finally:
        model.train(was_training)


def one_run_affinity(dataset: Dataset, tasks: Sequence[str], config: TrainConfig | None = None,
                     prepared: Prepared | None = None, every: int = 5,
                     progress: Progress | None = None) -> dict:
    """Train one joint model on ``tasks`` and estimate every pair's affinity along the way.

    ``prepared`` (from ``explorer.training.trainer.prepare``) may hold more tasks than
    ``tasks``; it is reused to save preprocessing in a sweep. ``progress``
    receives ``{"done", "total", "label", "epoch", "epochs"}`` (steps); returning
    False cancels with ``Cancelled``.
    """
    config = (config or TrainConfig()).resolve(dataset.modality)
    names = dataset.check_tasks(list(tasks))
    if len(names) < 2:
        raise ExplorerError("Affinity needs at least two tasks: it measures how tasks affect each other.")
    if not isinstance(every, int) or every < 1:
        raise ExplorerError(f"every must be a whole number of steps >= 1, got {every!r}.")
    prepared = prepared or prepare(dataset, names, config)
    by_name = {t.name: t for t in prepared.tasks}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ExplorerError(f"The prepared data lacks task(s) {', '.join(missing)}: prepare it with all the tasks.")
    task_list = [by_name[n] for n in names]
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = _joint_model(prepared, names, config).to(device)
    method = get_method(config.method, names, device)
    optimiser = torch.optim.Adam(list(model.parameters()) + method.parameters(), lr=config.lr)
    x_train = prepared.x["train"].to(device)
    y_train = {n: prepared.y["train"][n].to(device) for n in names}
    n_rows = len(x_train)
    steps_per_epoch = max(1, -(-n_rows // config.batch_size))
    total = steps_per_epoch * config.epochs
    order = torch.Generator().manual_seed(config.seed)
    n = len(names)
    lookahead, cosine, conflict = _Averages(n), _Averages(n), _Averages(n)
    sub = dataclasses.replace(prepared, tasks=task_list)  # validation losses of these tasks only
    best, stale, step, measured, epochs_run = float("inf"), 0, 0, 0, 0
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        for batch in torch.randperm(n_rows, generator=order).split(config.batch_size):
            x = x_train[batch]
            y = {k: v[batch] for k, v in y_train.items()}
            if step % every == 0:
                _measure(model, task_list, x, y, config.lr, lookahead, cosine, conflict)
                measured += 1
            features = model.encode(x)
            losses = batch_losses(task_list, model.decode(features), y)
            step += 1
            if losses:
                optimiser.zero_grad(set_to_none=True)
                method.backward(losses, features, model.shared_parameters())
                optimiser.step()
                method.after_step(lambda: batch_losses(task_list, model(x), y))
            if progress is not None and progress({"done": step, "total": total, "label": "affinity run",
                                                  "epoch": epoch, "epochs": config.epochs}) is False:
                raise Cancelled("affinity run cancelled")
        epochs_run = epoch
        # Stop where the ground-truth models would: the estimate describes training up to that point.
        val = sum(evaluate_losses(model, sub, "val", device).values())
        if val < best - 1e-6:
            best, stale = val, 0
        else:
            stale += 1
            if config.patience and stale >= config.patience:
                break
    self_affinity = lookahead.matrix(diagonal=True)
    # _measure stores Z(j→i) at [i][j]: row = affected task, column = the task whose step was taken.
    return {"tasks": names, "lookahead": lookahead.matrix(),
            "lookahead_self": [self_affinity[i][i] for i in range(n)],
            "grad_cosine": cosine.matrix(), "conflict_share": conflict.matrix(),
            "steps_measured": measured, "every": every, "lookahead_lr": config.lr,
            "epochs": epochs_run, "seconds": time.perf_counter() - start, "device": describe(device)}


# How each estimate should relate to the trained gains if it were a good proxy.
EXPECTED_SIGN = {"lookahead": 1, "grad_cosine": 1, "conflict_share": -1}


def compare_with_gains(affinity: dict | None, pair_gain: list[list]) -> tuple[dict, dict]:
    """Spearman rank correlation of each estimate with the trained pair gains, over off-diagonal cells.

    Both matrices share one orientation (row i = affected task, column j =
    partner), so cell (i, j) pairs i's trained gain with j on the estimate of
    j's effect on i. Returns ``({estimate: rho or None}, {estimate: details})``;
    details give the number of pairs, the p-value, the sign a useful proxy
    should have, and the reason when rho is None.
    """
    values, details = {}, {}
    for name in ESTIMATES:
        rho, info = None, {"expected_sign": EXPECTED_SIGN[name], "n_pairs": 0, "p_value": None, "reason": None}
        matrix = (affinity or {}).get(name)
        if matrix is None:
            info["reason"] = "no affinity run in this sweep"
        else:
            cells = [(pair_gain[i][j], matrix[i][j]) for i in range(len(pair_gain)) for j in range(len(pair_gain))
                     if i != j and pair_gain[i][j] is not None and matrix[i][j] is not None]
            info["n_pairs"] = len(cells)
            if len(cells) < 3:
                info["reason"] = ("fewer than 3 trained (task, partner) cells: train the pairs of at least "
                                  "3 tasks to rank them")
            elif len({c[0] for c in cells}) < 2 or len({c[1] for c in cells}) < 2:
                info["reason"] = "one side is constant, so ranks cannot be compared"
            else:
                result = spearmanr([c[0] for c in cells], [c[1] for c in cells])
                rho, info["p_value"] = float(result.statistic), float(result.pvalue)
        values[name] = rho
        details[name] = {"value": rho, **info}
    return values, details
