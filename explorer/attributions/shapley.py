"""Shapley value sampling over source columns (one-hot groups move together).

Averages each column's marginal contribution over random column orders, so
interactions are shared out fairly; ``n_samples`` orders (default 25) trade
time for noise. Sums to f(x) - f(baseline) only in expectation: no delta.
"""
from __future__ import annotations

import torch
from captum.attr import ShapleyValueSampling

from explorer.attributions import Attributions, head_forward, register
from explorer.attributions.ablation import first_of_groups, perturbations
from models import MultiTaskModel


@register("shapley", "Shapley value sampling", ("tabular",),
          "Average contribution of each column over random column orders (slower, fairer to interactions).")
def attribute(model: MultiTaskModel, task: str, x: torch.Tensor, target: torch.Tensor, *,
              groups: torch.Tensor | None = None, n_samples: int = 25, batch_size: int | None = None,
              seed: int = 0, **_) -> Attributions:
    mask = groups.unsqueeze(0) if groups is not None else None
    with torch.random.fork_rng():  # captum draws the column orders from torch's global RNG
        torch.manual_seed(seed)
        scores = ShapleyValueSampling(head_forward(model, task)).attribute(
            x, baselines=0.0, target=target, feature_mask=mask, n_samples=n_samples,
            perturbations_per_eval=perturbations(x, groups, batch_size)).detach()
    if groups is not None:
        scores = scores[:, first_of_groups(groups)]
    return Attributions(scores, None)
