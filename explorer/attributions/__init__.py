"""Attribution methods, one module per method, registered by name.

Every method explains one task head at a time: it wraps the shared model so the
forward returns only that task's outputs, and attributes the chosen output
(``target``: a class index per row, 0 for a regression head) to the inputs.

A method is a function ``(model, task, x, target, *, groups, n_steps,
batch_size) -> Attributions`` where ``x`` is the preprocessed batch (token ids,
standardised feature vectors or images). Scores come back per token (text),
per source column when ``groups`` is given (tabular), or per pixel (image).
Adding a method is adding one module here that calls ``register``.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass
from typing import Callable

import torch

from explorer.errors import ExplorerError
from models import MultiTaskModel

DEFAULTS = {"text": "lig", "tabular": "ig", "image": "ig"}
# Captum hooks into the model's modules while it works; a model shared between app
# sessions must not be explained by two threads at once.
_LOCK = threading.RLock()


@dataclass(frozen=True)
class Attributions:
    """Scores for a batch: (rows, tokens), (rows, groups or features) or (rows, h, w).

    ``delta`` is the completeness error of integrated gradients per row,
    sum(scores) - (f(x) - f(baseline)); None for methods without that property.
    """
    scores: torch.Tensor
    delta: torch.Tensor | None


@dataclass(frozen=True)
class MethodInfo:
    name: str
    label: str
    modalities: tuple[str, ...]
    description: str
    fn: Callable[..., Attributions]

    def __call__(self, model: MultiTaskModel, task: str, x: torch.Tensor, target: torch.Tensor,
                 **options) -> Attributions:
        with _LOCK, torch.enable_grad():
            model.eval()  # dropout off: attributions must explain the deterministic prediction
            return self.fn(model, task, x, target, **options)


REGISTRY: dict[str, MethodInfo] = {}


def register(name: str, label: str, modalities: tuple[str, ...], description: str):
    def deco(fn: Callable[..., Attributions]) -> Callable[..., Attributions]:
        REGISTRY[name] = MethodInfo(name, label, tuple(modalities), description, fn)
        return fn
    return deco


def names(modality: str | None = None) -> list[str]:
    return [n for n, m in REGISTRY.items() if modality is None or modality in m.modalities]


def get_method(name: str | None, modality: str) -> MethodInfo:
    name = name or DEFAULTS[modality]
    if name not in REGISTRY or modality not in REGISTRY[name].modalities:
        raise ExplorerError(f"Attribution method '{name}' does not apply to {modality} data. "
                            f"Choose one of: {', '.join(names(modality))}.")
    return REGISTRY[name]


def head_forward(model: MultiTaskModel, task: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model seen through one head: inputs -> that task's outputs (rows, width)."""
    # through decode, not the head alone: towers and gates (models.architectures) sit before it
    return lambda x: model.decode(model.encode(x))[task]


def group_index(groups: list[str]) -> tuple[torch.Tensor, list[str]]:
    """Each feature's group number (in order of first appearance) and the group names."""
    order = list(dict.fromkeys(groups))
    position = {g: i for i, g in enumerate(order)}
    return torch.tensor([position[g] for g in groups], dtype=torch.long), order


def sum_groups(scores: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Add the scores of a group's columns (one-hot levels) into one score per group.

    Exact for additive methods (integrated gradients): the group's share of the
    completeness sum is the sum of its columns' shares.
    """
    out = torch.zeros(scores.shape[0], int(groups.max()) + 1 if len(groups) else 0, dtype=scores.dtype)
    return out.index_add_(1, groups, scores)


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_discover()
