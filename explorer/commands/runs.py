"""`python -m explorer runs`: list saved runs, delete one (into the trash), or empty the trash."""
from __future__ import annotations

import argparse

from explorer.commands._common import print_json
from explorer.store.runs import delete_run, empty_trash, home, scan_store, trash_size

NAME = "runs"
HELP = "list the runs in the run store (EXPLORER_HOME, default ./runs), delete one, or empty the trash"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--delete", metavar="RUN", help="move this run (or a damaged entry) to the store's trash")
    p.add_argument("--empty-trash", action="store_true", help="remove the deleted runs for good")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    if args.delete:
        delete_run(args.delete)
        print(f"deleted {args.delete} (moved to the trash; `python -m explorer runs --empty-trash` clears it)")
        return 0
    if args.empty_trash:
        print(f"removed {empty_trash()} deleted run(s) for good")
        return 0
    good, damaged = scan_store()
    runs = [r.summary() for r in good]
    if args.json:
        print_json({"runs": runs, "damaged": [{"id": d.id, "reason": d.reason} for d in damaged],
                    "trash": trash_size()})
        return 0
    if not runs and not damaged:
        print(f"no runs in {home()}; train one with `python -m explorer train --tasks ...`")
    for r in runs:
        scores = ", ".join(f"{t}={v:.3f}" for t, v in r["metrics"].items() if isinstance(v, (int, float)))
        print(f"{r['id']}  {r['dataset']}  [{r['method']}]  {scores}")
    for d in damaged:
        print(f"{d.id}  damaged: {d.reason} (remove with `python -m explorer runs --delete {d.id}`)")
    if (n := trash_size()):
        print(f"{n} deleted run(s) in the trash; `python -m explorer runs --empty-trash` removes them")
    return 0
