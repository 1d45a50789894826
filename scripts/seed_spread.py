"""Seed spread and best epochs of the single-task models of a built-in dataset (issue 14 item 5).

    nice python -m scripts.seed_spread news --seeds 5 [--lr 0.005 --dropout 0.1 --embed-dim 64 ...]

Trains every task alone with ``--seeds`` seeds (batched mode, which equals
sequential) at the given settings (default: the trainer's defaults) and prints,
per task, the mean and seed std of the test score and the best epochs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from explorer.datasets import load_dataset
from explorer.training.batched import train_combinations
from explorer.training.metrics import primary
from explorer.training.trainer import TrainConfig


def spread(dataset_name: str, seeds: int, tasks: list[str] | None = None, **overrides) -> dict:
    dataset = load_dataset(dataset_name)
    tasks = tasks or list(dataset.tasks)
    config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    start = time.perf_counter()
    runs = train_combinations(dataset, [(t,) for t in tasks], config, list(range(seeds)))
    out = {"dataset": dataset_name, "config": config.resolve(dataset.modality).to_dict(), "tasks": {},
           "seconds": round(time.perf_counter() - start, 1)}
    for task in tasks:
        mine = [r for r in runs if r.tasks == (task,)]
        scores = [primary(r.metrics[task]) for r in mine]
        out["tasks"][task] = {"mean": statistics.mean(scores), "std": statistics.stdev(scores) if seeds > 1 else 0.0,
                              "best_epochs": [r.best_epoch for r in mine]}
    out["mean_std"] = statistics.mean(t["std"] for t in out["tasks"].values())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--tasks", help="comma-separated (default: all)")
    for name, kind in (("lr", float), ("dropout", float), ("embed_dim", int), ("hidden", int), ("epochs", int),
                       ("patience", int), ("train_size", float), ("batch_size", int)):
        p.add_argument(f"--{name.replace('_', '-')}", type=kind)
    args = vars(p.parse_args())
    name, seeds, tasks = args.pop("dataset"), args.pop("seeds"), args.pop("tasks")
    args = {k: v for k, v in args.items() if v is not None}
    if "train_size" in args and args["train_size"] > 1:
        args["train_size"] = int(args["train_size"])
    result = spread(name, seeds, tasks.split(",") if tasks else None, **args)
    for task, r in result["tasks"].items():
        print(f"{name:9s} {task:14s} {r['mean']:.4f} ± {r['std']:.4f}  best epochs {r['best_epochs']}")
    print(f"{name}: mean seed std {result['mean_std']:.4f} ({result['seconds']} s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
