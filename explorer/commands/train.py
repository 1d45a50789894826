"""`python -m explorer train`: train one model on some tasks, save it as a run, print its metrics."""
from __future__ import annotations

import argparse

from explorer.commands._common import (ProgressBar, add_data_arguments, add_train_arguments, config_from_args,
                                       load_from_args, print_json, split_list)
from explorer.methods import DEFAULT as DEFAULT_METHOD
from explorer.store.runs import check_store_writable, save_run
from explorer.training.trainer import train

NAME = "train"
HELP = "train one shared model on a combination of tasks; prints per-task test metrics as JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", required=True, metavar="A,B,..", help="comma-separated tasks to train together")
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help="loss weighting / gradient method (see `python -m explorer methods`; default: ew)")
    p.add_argument("--no-save", action="store_true", help="do not save the run in the run store")
    add_data_arguments(p)
    add_train_arguments(p)


def run(args: argparse.Namespace) -> int:
    tasks = split_list(args.tasks, "--tasks")
    config = config_from_args(args)  # bad settings are one line before the data loads (or is embedded)
    dataset = load_from_args(args, tasks)
    if not args.no_save:
        check_store_writable()  # before training: a model trained for nothing is the worst outcome
    with ProgressBar(f"train {'+'.join(tasks)}") as bar:
        result = train(dataset, tasks, config, progress=bar)
    out = {"dataset": dataset.name, "tasks": tasks, "metrics": result.metrics, "baseline": result.baseline,
           "best_epoch": result.best_epoch, "seconds": round(result.seconds, 2), "device": result.device}
    if not args.no_save:
        out["run"] = save_run(result).id
    print_json(out)
    return 0
