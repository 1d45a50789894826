"""Registry of multi-task optimisation methods: loss weightings and gradient aggregators.

A method turns the per-task losses of one batch into gradients on the model.
Adding a method is adding one file in this folder that subclasses ``Method`` and
decorates it with ``@register``. The trainer only calls the interface below.

The maths comes from ``torchjd`` wherever it has the method (its scalarizers and
aggregators); the files here adapt it to this trainer: tasks missing from a batch,
learnable parameters, and reporting the task weights actually applied.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import torch
from torch import nn

from explorer.errors import ExplorerError

DEFAULT = "ew"

Losses = dict[str, torch.Tensor]


class Method:
    """One update rule. Instances live for one training run (they may keep state)."""
    name: str = ""
    description: str = ""
    needs_shared: bool = False  # True for aggregators acting on the shared parameters' gradients

    def __init__(self, tasks: list[str], device: torch.device | str = "cpu"):
        self.tasks = list(tasks)
        self.device = torch.device(device)

    def parameters(self) -> list[nn.Parameter]:
        """Extra learnable parameters (e.g. uncertainty weights), optimised with the model."""
        return []

    def backward(self, losses: Losses, features: torch.Tensor,
                 shared: list[nn.Parameter]) -> dict[str, float]:
        """Populate ``.grad`` of the model (and own) parameters; return the task weights used.

        ``losses`` holds the tasks that have labels in this batch (a task may be
        missing). ``features`` is the shared encoder's output for the batch and
        ``shared`` the encoder's parameters, which gradient aggregators need.
        The returned weight of a task is the factor its loss gradient gets in the
        update of the shared parameters.
        """
        raise NotImplementedError

    def after_step(self, recompute: Callable[[], Losses]) -> None:
        """Called after the optimiser step; ``recompute()`` gives the same batch's losses again.

        Only methods that learn from how the step changed the losses (FAMO) call it.
        """

    def end_epoch(self, epoch_losses: dict[str, float]) -> None:
        """Called with the mean training loss per task after each epoch."""


def stack_losses(losses: Losses, tasks: list[str], stand_in: dict[str, torch.Tensor]) -> torch.Tensor:
    """The losses as one vector in task order; a task without labels in the batch takes its stand-in.

    torchjd's scalarizers expect one value per task on every batch, but a batch
    can lack a task's labels. Each caller picks a stand-in that gives that task's
    entry no gradient, so a missing task neither moves the model nor the method.
    """
    return torch.stack([losses[t] if t in losses else stand_in[t].detach() for t in tasks])


def scalarize(scalarizer: nn.Module, values: torch.Tensor, present: list[str], tasks: list[str]) -> dict[str, float]:
    """Backpropagate ``scalarizer(values)``; return d(total)/d(loss) per present task.

    That derivative is the weight each task's loss gradient really gets, whatever
    the scalarizer's formula (a log for FAMO, exp(-s)/2 for uncertainty weighting).
    """
    values.retain_grad()
    scalarizer(values).backward()
    return {t: float(values.grad[i]) for i, t in enumerate(tasks) if t in present}


REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    REGISTRY[cls.name] = cls
    return cls


for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")


def names() -> list[str]:
    """The default first, then the loss weightings, then the gradient aggregators."""
    return sorted(REGISTRY, key=lambda n: (n != DEFAULT, REGISTRY[n].needs_shared))


def describe() -> dict[str, str]:
    """Name -> one-line description, in registry order."""
    return {name: REGISTRY[name].description for name in names()}


def get_method(name: str, tasks: list[str], device: torch.device | str = "cpu") -> Method:
    if name not in REGISTRY:
        raise ExplorerError(f"Unknown method '{name}'. Available: {', '.join(names())} "
                            "(see `python -m explorer methods`).")
    return REGISTRY[name](tasks, device)
