"""Registry of multi-task optimisation methods: loss weightings and gradient aggregators.

A method turns the per-task losses of one batch into gradients on the model.
Adding a method is adding one file in this folder that subclasses ``Method`` and
decorates it with ``@register``. The trainer only calls the interface below.
"""
from __future__ import annotations

import importlib
import pkgutil

import torch
from torch import nn

from explorer.errors import ExplorerError

DEFAULT = "ew"


class Method:
    """One update rule. Instances live for one training run (they may keep state)."""
    name: str = ""
    description: str = ""
    needs_shared: bool = False  # True for aggregators acting on the shared parameters' gradients

    def __init__(self, tasks: list[str]):
        self.tasks = list(tasks)

    def parameters(self) -> list[nn.Parameter]:
        """Extra learnable parameters (e.g. uncertainty weights), optimised with the model."""
        return []

    def backward(self, losses: dict[str, torch.Tensor], features: torch.Tensor,
                 shared: list[nn.Parameter]) -> dict[str, float]:
        """Populate ``.grad`` of the model (and own) parameters; return the task weights used.

        ``features`` is the shared encoder's output for the batch and ``shared``
        the encoder's parameters, which gradient aggregators need.
        """
        raise NotImplementedError

    def end_epoch(self, epoch_losses: dict[str, float]) -> None:
        """Called with the mean training loss per task after each epoch."""


REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    REGISTRY[cls.name] = cls
    return cls


for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")


def names() -> list[str]:
    return list(REGISTRY)


def get_method(name: str, tasks: list[str]) -> Method:
    if name not in REGISTRY:
        raise ExplorerError(f"Unknown method '{name}'. Available: {', '.join(REGISTRY)} "
                            "(see `python -m explorer methods`).")
    return REGISTRY[name](tasks)
