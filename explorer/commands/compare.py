"""`python -m explorer compare`: train one combination under several methods and compare their gains."""
from __future__ import annotations

import argparse
import json

from explorer.store.atomic import check_writable, write_atomic
from explorer.commands._common import (ProgressBar, add_data_arguments, add_keep_at_chance, add_train_arguments,
                                       config_from_args, load_from_args, print_json, split_list)
from explorer.relatedness.compare import compare_methods

NAME = "compare"
HELP = ("train a combination of tasks with several multi-task methods (and each task alone once) and "
        "report each method's per-task gain and Δm over seeds")
DEFAULT_METHODS = "ew,uw,pcgrad,upgrad"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", required=True, metavar="A,B,..", help="comma-separated tasks to train together (2+)")
    p.add_argument("--methods", default=DEFAULT_METHODS, metavar="M1,M2,..",
                   help=f"methods to compare (see `python -m explorer methods`; default: {DEFAULT_METHODS})")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model, 0..N-1 (default: 3; 1 shows no noise)")
    p.add_argument("--out", metavar="FILE.json", help="write the full comparison (with per-step weights) as JSON")
    p.add_argument("--html", metavar="FILE.html", help="write the gain and task-weight charts as one HTML page")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    add_keep_at_chance(p, "every method's Δm")
    add_data_arguments(p)
    add_train_arguments(p, seed=False)


def run(args: argparse.Namespace) -> int:
    tasks = split_list(args.tasks, "--tasks")
    methods = split_list(args.methods, "--methods")
    for path in (args.out, args.html):
        if path:
            check_writable(path)  # before the training, not after it
    config = config_from_args(args)  # bad settings are one line before the data loads (or is embedded)
    dataset = load_from_args(args, tasks)
    with ProgressBar("compare") as bar:
        result = compare_methods(dataset, tasks, methods, seeds=args.seeds, config=config, progress=bar,
                                 keep_at_chance=args.keep_at_chance)
    data = result.to_dict()
    if args.out:
        write_atomic(args.out, json.dumps(data, indent=1))
    if args.html:
        from explorer.plots.methods import comparison_html
        write_atomic(args.html, comparison_html(data))
    if args.json:
        print_json(data)
    else:
        print(result.table())
    return 0

