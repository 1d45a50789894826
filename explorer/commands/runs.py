"""`python -m explorer runs`: list or delete saved runs."""
from __future__ import annotations

import argparse

from explorer.commands._common import print_json
from explorer.store.runs import delete_run, home, list_runs

NAME = "runs"
HELP = "list the runs in the run store (EXPLORER_HOME, default ./runs), or delete one"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--delete", metavar="RUN", help="delete this run")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    if args.delete:
        delete_run(args.delete)
        print(f"deleted {args.delete}")
        return 0
    runs = [r.summary() for r in list_runs()]
    if args.json:
        print_json(runs)
    elif not runs:
        print(f"no runs in {home()}; train one with `python -m explorer train --tasks ...`")
    for r in runs if not args.json else []:
        scores = ", ".join(f"{t}={v:.3f}" for t, v in r["metrics"].items() if v is not None)
        print(f"{r['id']}  {r['dataset']}  [{r['method']}]  {scores}")
    return 0
