"""Task relatedness explorer: which tasks help each other when a shared network learns them together.

The package is a plain library (no Streamlit). Public entry points are imported
lazily, so ``explorer.load_bundle`` works in a process that never loads the
training code.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "ExplorerError": "explorer.errors",
    "Cancelled": "explorer.errors",
    "load_dataset": "explorer.datasets",
    "TrainConfig": "explorer.training",
    "train": "explorer.training",
    "save_run": "explorer.runs",
    "load_run": "explorer.runs",
    "list_runs": "explorer.runs",
    "load_bundle": "explorer.bundle",
    "export_bundle": "explorer.export",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
