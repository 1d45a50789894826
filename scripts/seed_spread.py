"""Seed spread and best epochs of the single-task models of a built-in dataset (issue 14 item 5).

    nice python -m scripts.seed_spread news --seeds 5 [--first-seed 10] [--balance 0 --ema 0]
        [--lr 0.005 --dropout 0.1 --embed-dim 64 ...] [--out FILE.json]

Trains every task alone with ``--seeds`` seeds (batched mode, which equals sequential) at the
given settings (default: the trainer's defaults) and prints, per task, the mean and seed std of
the test score and the best epochs; the JSON adds each classification task's per-class test F1
(mean and seed std over the seeds: which classes flip from seed to seed).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from sklearn.metrics import f1_score

from explorer.datasets import load_dataset
from explorer.training.batched import train_combinations
from explorer.training.metrics import primary
from explorer.training.trainer import TrainConfig, prepare

SETTINGS = (("lr", float), ("dropout", float), ("embed_dim", int), ("hidden", int), ("epochs", int),
            ("patience", int), ("train_size", float), ("batch_size", int), ("balance", float), ("ema", float),
            ("max_len", int))


def spread(dataset_name: str, seeds: int, tasks: list[str] | None = None, first_seed: int = 0, **overrides) -> dict:
    dataset = load_dataset(dataset_name)
    tasks = tasks or list(dataset.tasks)
    config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None}).resolve(dataset.modality)
    start = time.perf_counter()
    runs = train_combinations(dataset, [(t,) for t in tasks], config, list(range(first_seed, first_seed + seeds)))
    out = {"dataset": dataset_name, "config": config.to_dict(), "tasks": {},
           "seconds": round(time.perf_counter() - start, 1)}
    truth = prepare(dataset, tasks, config).y_raw["test"]
    for task in tasks:
        mine = [r for r in runs if r.tasks == (task,)]
        scores = [primary(r.metrics[task]) for r in mine]
        entry = {"mean": statistics.mean(scores), "std": statistics.stdev(scores) if seeds > 1 else 0.0,
                 "best_epochs": [r.best_epoch for r in mine]}
        t = dataset.tasks[task]
        if t.is_classification:
            keep = truth[task] >= 0
            per_class = np.array([f1_score(truth[task][keep], np.asarray(r.test_pred[task])[keep], average=None,
                                           labels=np.arange(len(t.classes)), zero_division=0) for r in mine])
            entry["class_f1_mean"] = per_class.mean(0).round(3).tolist()
            entry["class_f1_std"] = per_class.std(0, ddof=1).round(3).tolist() if seeds > 1 else []
        out["tasks"][task] = entry
    out["mean_std"] = statistics.mean(t["std"] for t in out["tasks"].values())
    out["mean_score"] = statistics.mean(t["mean"] for t in out["tasks"].values())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--tasks", help="comma-separated (default: all)")
    p.add_argument("--out", help="also write the result as JSON to this file")
    for name, kind in SETTINGS:
        p.add_argument(f"--{name.replace('_', '-')}", type=kind)
    args = vars(p.parse_args())
    name, seeds, tasks, first, out = (args.pop(k) for k in ("dataset", "seeds", "tasks", "first_seed", "out"))
    args = {k: v for k, v in args.items() if v is not None}
    if "train_size" in args and args["train_size"] > 1:
        args["train_size"] = int(args["train_size"])
    result = spread(name, seeds, tasks.split(",") if tasks else None, first, **args)
    for task, r in result["tasks"].items():
        print(f"{name:9s} {task:14s} {r['mean']:.4f} ± {r['std']:.4f}  best epochs {r['best_epochs']}")
    print(f"{name}: mean seed std {result['mean_std']:.4f}, mean score {result['mean_score']:.4f} "
          f"({result['seconds']} s)")
    if out:
        with open(out, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
