"""Registry of multi-task architectures: how the tasks of one model share parameters.

An architecture decides what sits between the input and each task's head, for
the model trained alone (``models.multitask.MultiTaskModel``) and for the same
model as one slot of the batched trainer (``models.stacked.StackedModel``).
Adding one is adding one file in this folder that subclasses ``Architecture``
and decorates it with ``@register``; ``ModelSpec.arch`` names it.

Every architecture keeps the ``MultiTaskModel`` layout the rest of the code
relies on: ``encoder`` (everything shared, for text with ``encoder.embedding``),
``heads`` (one ``nn.Linear`` per task on a ``hidden``-wide input), ``encode`` /
``decode``, and ``shared_parameters``. What varies is what ``encode`` returns
(one feature row per example, or one per example and task) and what ``decode``
puts before the heads.
"""
from __future__ import annotations

import importlib
import pkgutil

import torch
from torch import nn

DEFAULT = "hps"


class Architecture:
    """One way of sharing. Stateless: ``MultiTaskModel`` and ``StackedModel`` call it with themselves."""
    name: str = ""
    description: str = ""

    def settings(self, config) -> dict[str, int]:
        """This architecture's own settings from a training config, for ``ModelSpec.extra`` (none by default)."""
        return {}

    # -- the model trained alone -------------------------------------------------------------------
    def build(self, model: nn.Module, spec) -> None:
        """Create ``model.encoder`` and anything per task but the heads (``model.heads`` comes after)."""
        model.encoder = modality_encoder(spec)

    def decode(self, model: nn.Module, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Shared features [B, hidden] -> each head's outputs."""
        return {name: head(features) for name, head in model.heads.items()}

    # -- the same model as a slot of the batched trainer ----------------------------------------------
    def stack_build(self, stack: nn.Module, template: nn.Module) -> None:
        """Create the stacked encoder body (and per-task parts) of ``stack`` from a model shaped like it."""
        stack.body = StackedMLP(template.encoder.mlp, stack.slots)

    def stack_features(self, stack: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """Encoder input [C, B, ...] (text: the pooled embeddings) -> features ``stack_decode`` takes."""
        return stack.body(h, stack.dropout)

    def stack_decode(self, stack: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """Features -> outputs [C, B, n_outputs] (``stack.head_slices`` names the columns)."""
        return shared_heads(stack, features)

    def stack_set(self, stack: nn.Module, slot: int, model: nn.Module) -> None:
        """Copy ``model``'s encoder body and per-task parts (not embedding, not heads) into ``slot``."""
        stack.body.set(slot, model.encoder.mlp)

    def stack_state(self, stack: nn.Module, slot: int, tasks: list[str]) -> dict[str, torch.Tensor]:
        """Slot ``slot``'s encoder body and per-task parts of ``tasks`` as MultiTaskModel state entries."""
        return stack.body.state(slot, "encoder.mlp.")


def modality_encoder(spec) -> nn.Module:
    """The shared encoder of ``spec``'s modality (``models.encoders``)."""
    from models.encoders import ENCODERS
    if spec.modality == "text":
        return ENCODERS["text"](spec.input["vocab_size"], spec.embed_dim, spec.hidden, spec.dropout)
    if spec.modality == "tabular":
        return ENCODERS["tabular"](spec.input["n_features"], spec.hidden, spec.dropout)
    if spec.modality == "image":
        return ENCODERS["image"](spec.input["height"], spec.input["width"], spec.hidden, spec.dropout)
    raise ValueError(f"unknown modality {spec.modality!r}")


class StackedMLP(nn.Module):
    """An ``nn.Sequential`` of Linear/ReLU/Dropout/Flatten layers, one copy per slot (and per ``lead``).

    Weights are [slots, *lead, out, in]: the slot axis comes first so the batched
    trainer's per-slot checkpointing indexes every parameter the same way. The
    input is [slots * prod(lead), B, ...], slot-major.
    """

    def __init__(self, mlp: nn.Sequential, slots: int, lead: tuple[int, ...] = ()):
        super().__init__()
        self.lead = tuple(lead)
        self.ops: list[tuple] = []
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for i, layer in enumerate(mlp):
            if isinstance(layer, nn.Linear):
                self.ops.append(("linear", len(self.weights), i))
                self.weights.append(nn.Parameter(torch.zeros(slots, *self.lead, *layer.weight.shape)))
                self.biases.append(nn.Parameter(torch.zeros(slots, *self.lead, *layer.bias.shape)))
            elif isinstance(layer, nn.ReLU):
                self.ops.append(("relu",))
            elif isinstance(layer, nn.Dropout):
                self.ops.append(("dropout", layer.p))
            elif isinstance(layer, nn.Flatten):
                self.ops.append(("flatten",))
            else:
                raise ValueError(f"cannot stack encoder layer {type(layer).__name__}")

    def forward(self, h: torch.Tensor, dropout) -> torch.Tensor:
        for op in self.ops:
            if op[0] == "linear":
                w, b = self.weights[op[1]], self.biases[op[1]]
                w, b = w.reshape(-1, *w.shape[-2:]), b.reshape(-1, b.shape[-1])
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            elif op[0] == "relu":
                h = torch.relu(h)
            elif op[0] == "dropout":
                h = dropout(h, op[1])
            else:  # flatten everything after (copy, batch)
                h = h.flatten(2)
        return h

    @torch.no_grad()
    def set(self, slot: int, mlp: nn.Sequential, index: tuple[int, ...] = ()) -> None:
        for op in self.ops:
            if op[0] == "linear":
                self.weights[op[1]][(slot, *index)] = mlp[op[2]].weight
                self.biases[op[1]][(slot, *index)] = mlp[op[2]].bias

    def state(self, slot: int, prefix: str, index: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
        out = {}
        for op in self.ops:
            if op[0] == "linear":
                out[f"{prefix}{op[2]}.weight"] = self.weights[op[1]].detach()[(slot, *index)].clone()
                out[f"{prefix}{op[2]}.bias"] = self.biases[op[1]].detach()[(slot, *index)].clone()
        return out


def shared_heads(stack: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Every head on the same features [C, B, hidden] -> [C, B, n_outputs]."""
    return torch.baddbmm(stack.head_bias.unsqueeze(1), features, stack.head_weight.transpose(1, 2))


def task_heads(stack: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Each head on its own task's features [C, T, B, hidden] (T in ``stack.heads`` order) -> [C, B, n_outputs]."""
    outs = []
    for t, sl in enumerate(stack.head_slices.values()):
        outs.append(torch.baddbmm(stack.head_bias[:, sl].unsqueeze(1), features[:, t],
                                  stack.head_weight[:, sl].transpose(1, 2)))
    return torch.cat(outs, -1)


REGISTRY: dict[str, Architecture] = {}


def register(cls: type[Architecture]) -> type[Architecture]:
    REGISTRY[cls.name] = cls()
    return cls


for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")


def names() -> list[str]:
    """The default first, then the others by name."""
    return sorted(REGISTRY, key=lambda n: (n != DEFAULT, n))


def describe() -> dict[str, str]:
    return {name: REGISTRY[name].description for name in names()}


def get_architecture(name: str) -> Architecture:
    from explorer.errors import ExplorerError
    if name not in REGISTRY:
        raise ExplorerError(f"Unknown architecture '{name}'. Available: {', '.join(names())}.")
    return REGISTRY[name]
