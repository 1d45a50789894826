"""Does early stopping on the summed validation loss under-train one task of a pair? (issue 14 item 5)

    nice python -m scripts.joint_stopping news --seeds 2 [--tasks a,b,c] [--lr ...]

Trains every pair with early stopping off (all epochs, batched) and compares,
per (pair, task, seed), the epoch where the task's own validation loss is
lowest with the epoch the summed loss picks (what early stopping keeps), and
how much higher the task's validation loss is at the joint epoch.
"""
from __future__ import annotations

import argparse
import itertools
import statistics

from explorer.datasets import load_dataset
from explorer.training.batched import train_combinations
from explorer.training.trainer import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--tasks")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float)
    p.add_argument("--train-size", type=float, default=1.0)
    args = p.parse_args()
    dataset = load_dataset(args.dataset)
    tasks = args.tasks.split(",") if args.tasks else list(dataset.tasks)[:4]
    config = TrainConfig(epochs=args.epochs, patience=0, lr=args.lr,
                         train_size=int(args.train_size) if args.train_size > 1 else args.train_size)
    runs = train_combinations(dataset, list(itertools.combinations(tasks, 2)), config, list(range(args.seeds)))
    later, excess = [], []
    for run in runs:
        totals = [sum(h["val"].values()) for h in run.history]
        joint = min(range(len(totals)), key=totals.__getitem__)
        for task in run.tasks:
            own = [h["val"][task] for h in run.history]
            best = min(range(len(own)), key=own.__getitem__)
            later.append(best - joint)
            excess.append(own[joint] / own[best] - 1)
            print(f"{'+'.join(run.tasks):24s} seed {run.seed} {task:12s} own best epoch {best + 1:2d}, "
                  f"joint {joint + 1:2d}, val loss +{100 * (own[joint] / own[best] - 1):.1f}% at the joint epoch")
    print(f"{args.dataset}: {len(later)} (pair, task, seed): own best epoch after the joint one in "
          f"{sum(d > 0 for d in later)}, before in {sum(d < 0 for d in later)}; val loss at the joint epoch "
          f"+{100 * statistics.mean(excess):.1f}% on average, +{100 * max(excess):.1f}% at most")


if __name__ == "__main__":
    main()
