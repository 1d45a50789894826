"""Pooled against per-cell seed variance on trained models, and how alike a task's models are in noise.

    nice python -m scripts.pooled_power news --seeds 8 [--tasks a,b,...] [--subset 3]

Trains every single task and pair of the first six tasks (or ``--tasks``) with ``--seeds`` seeds
(batched, default settings), then prints per task the seed std of each of its models and Bartlett's
test of one variance for them all (what ``gains.pooled_seed_variance`` assumes), and the resolved
cells at a 5 % false discovery rate, pooled and per cell, on all the seeds and on consecutive
``--subset``-seed slices of them. Test-row noise is left out (no bootstrap), so the counts are upper
bounds of what a sweep with the same seeds reports.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from explorer.datasets import load_dataset
from explorer.relatedness.sweep import combinations_for
from explorer.relatedness.transfer import transfer_from_runs
from explorer.training.batched import train_combinations
from explorer.training.metrics import primary
from explorer.training.trainer import TrainConfig


def resolved(runs, tasks, seeds, pooled: bool) -> int:
    t = transfer_from_runs([r for r in runs if r.seed in seeds], tasks, pooled=pooled)
    return sum(g.verdict != "unclear" for per in t.gains.values() for g in per.values())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--tasks", help="comma-separated (default: the first six)")
    p.add_argument("--subset", type=int, default=3)
    args = p.parse_args()
    dataset = load_dataset(args.dataset)
    tasks = args.tasks.split(",") if args.tasks else list(dataset.tasks)[:6]
    runs = train_combinations(dataset, combinations_for(tasks, 2), TrainConfig(), list(range(args.seeds)))
    for t in tasks:
        by_model = [[primary(r.metrics[t]) for r in runs if r.tasks == c] for c in {r.tasks for r in runs if t in r.tasks}]
        sds = [np.std(v, ddof=1) for v in by_model]
        print(f"{t:16s} seed std {np.sqrt(np.mean(np.square(sds))):.4f} (models {min(sds):.4f}-{max(sds):.4f}), "
              f"Bartlett p {stats.bartlett(*by_model).pvalue:.2f}")
    everything = list(range(args.seeds))
    slices = [everything[i:i + args.subset] for i in range(0, args.seeds - args.subset + 1, args.subset)]
    for seeds in [everything, *slices]:
        print(f"seeds {seeds}: resolved pooled {resolved(runs, tasks, seeds, True)}, "
              f"per cell {resolved(runs, tasks, seeds, False)} of {len(tasks) * (len(tasks) - 1)}")


if __name__ == "__main__":
    main()
