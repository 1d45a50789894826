"""`python -m explorer`: the command-line front end. Each subcommand lives in explorer/commands/."""
from __future__ import annotations

import argparse
import os
import sys

from explorer.commands import discover
from explorer.errors import Cancelled, ExplorerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explorer",
        description="Task relatedness explorer: which tasks help each other in a shared network?")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in discover().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 1
    try:
        return args.run(args)
    except ExplorerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours, and no traceback either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was saved", file=sys.stderr)
        return 130
