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
    "TrainConfig": "explorer.training.trainer",
    "train": "explorer.training.trainer",
    "save_run": "explorer.store.runs",
    "load_run": "explorer.store.runs",
    "list_runs": "explorer.store.runs",
    "load_bundle": "explorer.store.bundle",
    "export_bundle": "explorer.store.export",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
