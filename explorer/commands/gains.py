"""`python -m explorer gains`: train some tasks together and each alone over seeds; per-task gain and Δm."""
from __future__ import annotations

import argparse

from explorer.commands._common import (ProgressBar, add_data_arguments, add_keep_at_chance, add_train_arguments,
                                       config_from_args, load_from_args, print_json, split_list)
from explorer.methods import DEFAULT as DEFAULT_METHOD
from explorer.relatedness.together import train_together

NAME = "gains"
HELP = ("train tasks together (one method) and each alone, over seeds; print each task's gain with its "
        "95-percent interval and verdict, and Δm; the first seed's models are kept in the run store")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", required=True, metavar="A,B,..", help="comma-separated tasks to train together (2+)")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds per model, --seed .. --seed+N-1 (default: 3; 1 shows no noise)")
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help="loss weighting / gradient method of the combination (see `python -m explorer methods`; "
                        "default: ew); each task alone always trains with ew")
    p.add_argument("--no-save", action="store_true",
                   help="keep nothing in the run store (stored single-task baselines are still reused)")
    p.add_argument("--no-reuse", action="store_true", help="train every single-task baseline, even when stored")
    add_keep_at_chance(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    add_data_arguments(p)
    add_train_arguments(p)


def run(args: argparse.Namespace) -> int:
    tasks = split_list(args.tasks, "--tasks")
    dataset = load_from_args(args, tasks)
    config = config_from_args(args)
    with ProgressBar(f"gains {'+'.join(tasks)}") as bar:
        result = train_together(dataset, tasks, args.seeds, args.method, config, progress=bar,
                                save=not args.no_save, reuse_store=not args.no_reuse,
                                keep_at_chance=args.keep_at_chance)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.table())
    return 0
