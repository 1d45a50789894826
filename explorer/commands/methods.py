"""`python -m explorer methods`: the multi-task optimisation methods that --method accepts."""
from __future__ import annotations

import argparse

from explorer.commands._common import print_json
from explorer.methods import REGISTRY, describe

NAME = "methods"
HELP = "list the loss weightings and gradient aggregators that --method / --methods accept"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = [{"name": name, "kind": "gradient aggregator" if REGISTRY[name].needs_shared else "loss weighting",
             "description": text} for name, text in describe().items()]
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['name']:<8} {r['description']}")
    return 0
