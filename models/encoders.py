"""Shared encoders, one per modality. Each maps a batch of inputs to (batch, hidden)."""
from __future__ import annotations

import torch
from torch import nn


class TextEncoder(nn.Module):
    """Token embedding, masked mean pooling, then a small MLP.

    ``nn.Embedding`` (not ``EmbeddingBag``) keeps one vector per token, so Captum's
    LayerIntegratedGradients can attribute the prediction to each word.
    Token id 0 is padding and is excluded from the mean.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, hidden), nn.ReLU())

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # ``mask`` (batch, seq, 1) may be given to keep the pooling fixed while the
        # tokens change: integrated gradients pass the real input's mask with an
        # all-padding baseline, so the baseline is scored with the same denominator.
        if mask is None:
            mask = (tokens != 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        summed = (self.embedding(tokens) * mask).sum(1)
        pooled = summed / mask.sum(1).clamp(min=1.0)
        return self.mlp(pooled)


class TabularEncoder(nn.Module):
    """MLP on the standardised numeric plus one-hot categorical feature vector."""

    def __init__(self, n_features: int, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class ImageEncoder(nn.Module):
    """MLP on the flattened pixels; 8x8 digits need no convolutions to be learned well."""

    def __init__(self, height: int = 8, width: int = 8, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(height * width, hidden), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


ENCODERS = {"text": TextEncoder, "tabular": TabularEncoder, "image": ImageEncoder}
