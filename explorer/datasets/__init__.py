"""Registry of built-in datasets: one module per dataset, each registering a loader.

Adding a dataset is adding one file here that calls ``register``. A loader takes
keyword options (e.g. ``mask_outlets`` for news) and returns a ``Dataset``.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError

DEFAULT = "news"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    modality: str
    description: str
    loader: Callable[..., Dataset]


REGISTRY: dict[str, DatasetInfo] = {}


def register(name: str, modality: str, description: str):
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        REGISTRY[name] = DatasetInfo(name, modality, description, fn)
        return fn
    return deco


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_discover()
_CACHE: dict[tuple, Dataset] = {}


def names() -> list[str]:
    return [n for n in REGISTRY if n != "csv"]


def load_dataset(name: str = DEFAULT, **options) -> Dataset:
    """Load a built-in dataset by name (``csv`` takes ``path=`` and column options).

    Built-in datasets are cached per process (they are read-only); CSV files are not.
    """
    if name not in REGISTRY:
        raise ExplorerError(f"Unknown dataset '{name}'. Built-in datasets: {', '.join(names())}; "
                            "or use 'csv' with a file.")
    key = (name, tuple(sorted(options.items())))
    if name == "csv":
        return REGISTRY[name].loader(**options)
    if key not in _CACHE:
        _CACHE[key] = REGISTRY[name].loader(**options)
    return _CACHE[key]
