"""The multi-task model: a shared encoder and a ModuleDict of per-task heads."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from models.encoders import ENCODERS


@dataclass
class ModelSpec:
    """Everything needed to rebuild the network (saved in a run's config.json).

    ``input`` holds the modality's sizes: vocab_size for text, n_features for
    tabular, height/width for images. ``heads`` maps task name to output width.
    """
    modality: str
    input: dict
    heads: dict[str, int]
    hidden: int = 64
    embed_dim: int = 64
    dropout: float = 0.1
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        return cls(**d)


class MultiTaskModel(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        if spec.modality == "text":
            self.encoder = ENCODERS["text"](spec.input["vocab_size"], spec.embed_dim, spec.hidden, spec.dropout)
        elif spec.modality == "tabular":
            self.encoder = ENCODERS["tabular"](spec.input["n_features"], spec.hidden, spec.dropout)
        elif spec.modality == "image":
            self.encoder = ENCODERS["image"](spec.input["height"], spec.input["width"], spec.hidden, spec.dropout)
        else:
            raise ValueError(f"unknown modality {spec.modality!r}")
        self.heads = nn.ModuleDict({name: nn.Linear(spec.hidden, width) for name, width in spec.heads.items()})

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(features) for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x))
