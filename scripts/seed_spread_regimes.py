"""Seed spread under training regimes the trainers do not offer (a measurement, not a feature).

    nice python -m scripts.seed_spread_regimes news --seeds 10 [--first-seed 10]
        [--average ema --decay 0.5 | --average swa --start 2] [--schedule cosine|linear]
        [--balance 0.5] [--mode batched|sequential] [--lr X --batch-size N ...] [--out FILE.json]

Like ``scripts.seed_spread``, plus each task's per-class test F1 (mean and seed std: which classes
flip). The regimes are put into the trainers by subclassing their steps (``install``, only for
the run), so nothing in ``explorer`` changes:

- ``--average``: at every epoch end an average of the epoch-end weights (``ema``: decay
  ``--decay`` per epoch; ``swa``: uniform from epoch ``--start``) is loaded for validation,
  per-task checkpointing and early stopping; the live weights train on. Both modes give the same
  numbers (tests/test_seed_spread_regimes.py).
- ``--schedule``: the rate is constant within an epoch and changes only after the epoch-end
  flush of the lazy embedding Adam, so its closed-form catch-up (one fixed rate) stays exact.
- ``--balance b``: class-weighted cross-entropy, w_c = (n / (k n_c)) ** b (weighted mean), in
  the training and validation losses; batched mode and classification tasks only.

Measured (news, seeds 0-19, README "Default regime"): EMA 0.5 alone cut the mean seed std by
11 %, balance 0.5 alone by 17 %, both together by 36 % with a higher mean macro-F1.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import torch

import explorer.training.batched as batched
import explorer.training.trainer as trainer
from explorer.datasets import load_dataset
from explorer.training.batched import train_combinations
from explorer.training.metrics import primary
from explorer.training.trainer import TrainConfig
from sklearn.metrics import f1_score

OPT = {"average": "none", "decay": 0.5, "start": 1, "schedule": "none", "balance": 0.0}


def _rate(epoch: int, epochs: int) -> float:
    """Multiplier of the base rate for ``epoch`` (1-based)."""
    if OPT["schedule"] == "cosine":
        f = 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
    elif OPT["schedule"] == "linear":
        f = 1 - (epoch - 1) / epochs
    else:
        return 1.0
    return f


class _Avg:
    def __init__(self):
        self.avg, self.live, self.n = None, None, 0

    @torch.no_grad()
    def end_epoch(self, params: list[torch.Tensor], epoch: int) -> None:
        if OPT["average"] == "none" or epoch < OPT["start"]:
            return
        self.n += 1
        if self.avg is None:
            self.avg = [p.detach().clone() for p in params]
        elif OPT["average"] == "swa":
            for a, p in zip(self.avg, params):
                a.add_(p.detach() - a, alpha=1 / self.n)
        else:  # ema
            for a, p in zip(self.avg, params):
                a.lerp_(p.detach(), 1 - OPT["decay"])
        self.live = [p.detach().clone() for p in params]
        for a, p in zip(self.avg, params):
            p.data.copy_(a)

    @torch.no_grad()
    def restore(self, params: list[torch.Tensor]) -> None:
        if self.live is not None:
            for l, p in zip(self.live, params):
                p.data.copy_(l)
            self.live = None


class ModelSteps(trainer.ModelSteps):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._avg = _Avg()
        self._base = self.optimiser.param_groups[0]["lr"]

    def batches(self, epoch: int):
        self._avg.restore(list(self.model.parameters()))
        for g in self.optimiser.param_groups:
            g["lr"] = self._base * _rate(epoch, self.config.epochs)
        return super().batches(epoch)

    def end_epoch(self, epoch: int, epochs: int):
        self._avg.end_epoch(list(self.model.parameters()), epoch)
        return super().end_epoch(epoch, epochs)


class StackSteps(batched.StackSteps):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._avg = _Avg()
        self._base = self.config.lr

    def batches(self, epoch: int):
        self._avg.restore(list(self.model.parameters()))
        rate = self._base * _rate(epoch, self.config.epochs)
        for g in self.optimiser.param_groups:
            g["lr"] = rate
        if isinstance(self.step_fn, batched._TextStep):
            self.step_fn.adam.lr = rate  # every row was flushed at the last epoch end
        return super().batches(epoch)

    def end_epoch(self, epoch: int, epochs: int):
        self.step_fn.flush()
        self._avg.end_epoch(list(self.model.parameters()), epoch)
        return super().end_epoch(epoch, epochs)


class Losses(batched._Losses):
    """Class-weighted cross-entropy (batched only): w_c = (n / (k n_c)) ** balance, the weighted mean."""

    def __init__(self, prepared, stack, combinations, device):
        super().__init__(prepared, stack, combinations, device)
        self.weights = {}
        for t in self.tasks:
            if t.is_classification:
                y = prepared.y["train"][t.name]
                n = torch.bincount(y[y >= 0], minlength=len(t.classes)).float().clamp(min=1)
                self.weights[t.name] = ((n.sum() / (len(n) * n)) ** OPT["balance"]).to(device)

    def __call__(self, outputs, targets):
        if not OPT["balance"]:
            return super().__call__(outputs, targets)
        sums, counts = [], []
        c, b = outputs.shape[:2]
        for task, sl, target in zip(self.tasks, self.slices, targets):
            out = outputs[:, :, sl].view(self.groups, self.per_group, b, -1)
            tgt = target.unsqueeze(1)
            if not task.is_classification:
                raise SystemExit(f"--balance weights classes; task {task.name!r} is a regression: "
                                 "leave it out with --tasks.")
            keep = (tgt >= 0).float() * self.weights[task.name][tgt.clamp(min=0)]
            logp = torch.nn.functional.log_softmax(out, -1)
            picked = logp.gather(-1, tgt.clamp(min=0).expand(-1, self.per_group, -1).unsqueeze(-1))
            sums.append((-(picked.squeeze(-1) * keep).sum(-1)).reshape(c))
            counts.append(keep.sum(-1).expand(-1, self.per_group).reshape(c).to(outputs.dtype))
        return torch.stack(sums, 1), torch.stack(counts, 1)


def install() -> None:
    """Put the regime's steps and losses into both trainers (for this process)."""
    trainer.ModelSteps, batched.StackSteps, batched._Losses = ModelSteps, StackSteps, Losses


def spread(dataset_name: str, seeds: int, tasks, mode: str, first_seed: int = 0, **overrides) -> dict:
    if OPT["balance"] and mode != "batched":
        raise SystemExit("--balance is measured in batched mode only: drop --mode sequential.")
    install()
    dataset = load_dataset(dataset_name)
    tasks = tasks or list(dataset.tasks)
    config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    start = time.perf_counter()
    runs = train_combinations(dataset, [(t,) for t in tasks], config,
                              list(range(first_seed, first_seed + seeds)), mode=mode)
    out = {"dataset": dataset_name, "opt": dict(OPT), "mode": mode,
           "config": config.resolve(dataset.modality).to_dict(), "tasks": {},
           "seconds": round(time.perf_counter() - start, 1)}
    prepared = trainer.prepare(dataset, tasks, config.resolve(dataset.modality))
    for task in tasks:
        mine = [r for r in runs if r.tasks == (task,)]
        scores = [primary(r.metrics[task]) for r in mine]
        t = dataset.tasks[task]
        entry = {"mean": statistics.mean(scores), "std": statistics.stdev(scores) if seeds > 1 else 0.0,
                 "scores": scores, "best_epochs": [r.best_epoch for r in mine]}
        if t.is_classification:
            y = prepared.y_raw["test"][task]
            keep = y >= 0
            per_class = np.array([f1_score(y[keep], np.asarray(r.test_pred[task])[keep], average=None,
                                           labels=np.arange(len(t.classes)), zero_division=0) for r in mine])
            entry["class_f1_mean"] = per_class.mean(0).round(3).tolist()
            entry["class_f1_std"] = per_class.std(0, ddof=1).round(3).tolist() if seeds > 1 else []
        out["tasks"][task] = entry
    out["mean_std"] = statistics.mean(t["std"] for t in out["tasks"].values())
    out["mean_score"] = statistics.mean(t["mean"] for t in out["tasks"].values())
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--tasks")
    p.add_argument("--mode", default="batched", choices=["batched", "sequential"])
    p.add_argument("--average", default="none", choices=["none", "swa", "ema"])
    p.add_argument("--decay", type=float, default=0.5)
    p.add_argument("--start", type=int, default=1)
    p.add_argument("--schedule", default="none", choices=["none", "cosine", "linear"])
    p.add_argument("--balance", type=float, default=0.0)
    p.add_argument("--out")
    for name, kind in (("lr", float), ("dropout", float), ("embed_dim", int), ("hidden", int), ("epochs", int),
                       ("patience", int), ("train_size", float), ("batch_size", int)):
        p.add_argument(f"--{name.replace('_', '-')}", type=kind)
    args = vars(p.parse_args())
    for k in OPT:
        OPT[k] = args.pop(k)
    name, seeds, tasks, mode, first, out = (args.pop(k) for k in ("dataset", "seeds", "tasks", "mode",
                                                                  "first_seed", "out"))
    args = {k: v for k, v in args.items() if v is not None}
    if "train_size" in args and args["train_size"] > 1:
        args["train_size"] = int(args["train_size"])
    result = spread(name, seeds, tasks.split(",") if tasks else None, mode, first, **args)
    for task, r in result["tasks"].items():
        print(f"{name:9s} {task:10s} {r['mean']:.4f} ± {r['std']:.4f}  best {r['best_epochs']}")
    print(f"{name} {OPT} {args}: mean std {result['mean_std']:.4f} mean score {result['mean_score']:.4f} "
          f"({result['seconds']} s)")
    if out:
        with open(out, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
