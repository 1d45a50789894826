"""`python -m explorer export`: write a saved run as a self-contained bundle zip."""
from __future__ import annotations

import argparse
import sys

from explorer.commands._common import print_json
from explorer.errors import ExplorerError
from explorer.store.atomic import check_writable
from explorer.store.runs import load_run

NAME = "export"
HELP = "export a saved run as a bundle zip (safetensors, config, ONNX, model card)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    # dest is not "run": the CLI keeps the command function in args.run
    p.add_argument("--run", dest="run_id", required=True, metavar="RUN",
                   help="run id (see `python -m explorer runs`)")
    p.add_argument("--out", metavar="FILE.zip", help="where to write the bundle (default: RUN.zip)")


def run(args: argparse.Namespace) -> int:
    # A bad run id or path is refused before the slow import of the exporter (torch.onnx and onnxscript).
    run_ = load_run(args.run_id)
    out = args.out or f"{args.run_id}.zip"
    if not out.lower().endswith(".zip"):
        raise ExplorerError(f"The bundle path must end in .zip, got '{out}'.")
    check_writable(out)
    from explorer.store.export import export_bundle

    print(f"exporting {args.run_id} ...", file=sys.stderr)
    result = export_bundle(run_, out)
    print_json({"bundle": str(result.path), "files": result.files,
                "onnx_max_error": result.onnx_max_error, "seconds": round(result.seconds, 2)})
    return 0
