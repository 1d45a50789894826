"""CLI commands, one module each: ``NAME`` (the subcommand), ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Adding a command is adding one file here."""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def discover() -> dict[str, ModuleType]:
    found = {}
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        found[module.NAME] = module
    return found
