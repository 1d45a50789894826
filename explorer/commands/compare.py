"""`python -m explorer compare`: train one combination under several methods and compare their gains."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from explorer.commands._common import (ProgressBar, add_data_arguments, add_train_arguments, config_from_args,
                                       load_from_args, print_json, split_list)
from explorer.compare import compare_methods
from explorer.errors import ExplorerError

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
    add_data_arguments(p)
    add_train_arguments(p, seed=False)


def run(args: argparse.Namespace) -> int:
    tasks = split_list(args.tasks, "--tasks")
    methods = split_list(args.methods, "--methods")
    dataset = load_from_args(args, tasks)
    config = config_from_args(args)
    bar = ProgressBar("compare")
    try:
        result = compare_methods(dataset, tasks, methods, seeds=args.seeds, config=config,
                                 progress=lambda e: bar.update(e["fraction"], 1.0, f"{e['run']}/{e['runs']} {e['label']}"))
    finally:
        bar.close()
    data = result.to_dict()
    if args.out:
        _write_atomic(args.out, json.dumps(data, indent=1))
    if args.html:
        from explorer.plots.methods import comparison_html
        _write_atomic(args.html, comparison_html(data))
    if args.json:
        print_json(data)
    else:
        print(result.table())
    return 0


def _write_atomic(path: str, text: str) -> None:
    target = Path(path)
    if not target.parent.is_dir():
        raise ExplorerError(f"Cannot write {path}: folder {target.parent} does not exist. Create it or pick another path.")
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)  # a reader never sees half a file
