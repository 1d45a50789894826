"""The multi-task model: a shared encoder and a ModuleDict of per-task heads.

How the tasks share what lies between input and heads is the architecture's
(``models.architectures``, named by ``ModelSpec.arch``); hard sharing is the default.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from models.architectures import DEFAULT as DEFAULT_ARCH, get_architecture


@dataclass
class ModelSpec:
    """Everything needed to rebuild the network (saved in a run's config.json).

    ``input`` holds the modality's sizes: vocab_size for text, n_features for
    tabular, height/width for images. ``heads`` maps task name to output width.
    ``arch`` names the architecture (``models.architectures``); ``extra`` holds its settings.
    """
    modality: str
    input: dict
    heads: dict[str, int]
    hidden: int = 64
    embed_dim: int = 64
    dropout: float = 0.1
    extra: dict = field(default_factory=dict)
    arch: str = DEFAULT_ARCH

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        return cls(**d)


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def head_key(name: str) -> str:
    """The ModuleDict key of a task's head.

    A user's column name may hold '.', '+', '/', spaces or thousands of
    characters, or clash with a ModuleDict attribute ('keys', 'type'); such a
    name gets a key made from its hash. Plain names keep themselves as the key,
    so the state dicts of earlier runs still load.
    """
    if _PLAIN.fullmatch(name) and not hasattr(nn.ModuleDict, name):
        return name
    return "t_" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:20]


class TaskHeads(nn.ModuleDict):
    """A ModuleDict addressed by task name; the modules are stored under ``head_key(name)``."""

    def __init__(self, heads: dict[str, nn.Module] | None = None):
        super().__init__()
        self._names: dict[str, str] = {}  # key -> task name
        for name, module in (heads or {}).items():
            self[name] = module

    def __setitem__(self, name: str, module: nn.Module) -> None:
        key = head_key(name)
        self._names[key] = name
        self.add_module(key, module)

    def __getitem__(self, name: str) -> nn.Module:
        return self._modules[head_key(name)]

    def __delitem__(self, name: str) -> None:
        key = head_key(name)
        del self._modules[key]
        del self._names[key]

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and head_key(name) in self._modules

    def __iter__(self):
        return iter([self._names[k] for k in self._modules])

    def keys(self):
        return list(self)

    def items(self):
        return [(self._names[k], m) for k, m in self._modules.items()]

    def values(self):
        return list(self._modules.values())


class MultiTaskModel(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.arch = get_architecture(spec.arch)
        self.arch.build(self, spec)  # self.encoder, and any per-task layers before the heads
        self.heads = TaskHeads({name: nn.Linear(spec.hidden, width) for name, width in spec.heads.items()})

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.arch.decode(self, features)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x))
