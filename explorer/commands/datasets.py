"""`python -m explorer datasets`: the built-in datasets and their tasks."""
from __future__ import annotations

import argparse

from explorer.datasets import REGISTRY, load_dataset, names

NAME = "datasets"
HELP = "list the built-in datasets with their tasks (kind, classes, label coverage)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json
    out = []
    for name in names():
        ds = load_dataset(name)
        out.append({"name": name, "modality": ds.modality, "rows": len(ds),
                    "description": REGISTRY[name].description, "tasks": ds.summary()})
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for d in out:
        print(f"{d['name']} ({d['modality']}, {d['rows']} rows): {d['description']}")
        for t in d["tasks"]:
            classes = f"{t['n_classes']} classes" if t["n_classes"] else "regression"
            print(f"  {t['task']:<22} {t['kind']:<11} {classes:<12} coverage {t['coverage']:.0%}")
    return 0
