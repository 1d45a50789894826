"""Feature ablation: how much the output drops when one source column is set to its baseline.

A whole one-hot group is ablated at once (``feature_mask``), so a categorical
column gets one score, comparable with a numeric column's. Not additive: the
scores need not sum to f(x) - f(baseline), so no delta is reported.
"""
from __future__ import annotations

import torch
from captum.attr import FeatureAblation

from explorer.attributions import Attributions, head_forward, register
from models import MultiTaskModel


def first_of_groups(groups: torch.Tensor) -> torch.Tensor:
    """Column index of each group's first member (the group's shared score sits in every member)."""
    first = torch.full((int(groups.max()) + 1,), -1, dtype=torch.long)
    for i, g in reversed(list(enumerate(groups.tolist()))):
        first[g] = i
    return first


def perturbations(x: torch.Tensor, groups: torch.Tensor | None, batch_size: int | None) -> int:
    """Perturbed copies per forward pass: all of them, unless rows x copies exceeds ``batch_size``."""
    n = int(groups.max()) + 1 if groups is not None else x[0].numel()
    return max(1, min(n, (batch_size or 4096) // max(1, len(x))))


@register("ablation", "Feature ablation", ("tabular", "image"),
          "Change in the output when a column (all of a category's levels) is replaced by the baseline.")
def attribute(model: MultiTaskModel, task: str, x: torch.Tensor, target: torch.Tensor, *,
              groups: torch.Tensor | None = None, batch_size: int | None = None, **_) -> Attributions:
    mask = groups.unsqueeze(0) if groups is not None else None
    scores = FeatureAblation(head_forward(model, task)).attribute(
        x, baselines=0.0, target=target, feature_mask=mask,
        perturbations_per_eval=perturbations(x, groups, batch_size)).detach()
    if groups is not None:
        scores = scores[:, first_of_groups(groups)]
    return Attributions(scores, None)
