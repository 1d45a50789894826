"""Integrated gradients on the model's input vector (tabular features, image pixels).

The baseline is all zeros: for standardised numeric columns that is the
training mean, for one-hot columns "no category", for images a blank image.
With ``groups`` the scores of a source column's one-hot levels are summed, which
keeps completeness (the sum over groups still equals f(x) - f(baseline)).
"""
from __future__ import annotations

import torch
from captum.attr import IntegratedGradients

from explorer.attributions import Attributions, head_forward, register, sum_groups
from models import MultiTaskModel


@register("ig", "Integrated gradients", ("tabular", "image"),
          "Integrated gradients from the all-zero input (training means; blank image).")
def attribute(model: MultiTaskModel, task: str, x: torch.Tensor, target: torch.Tensor, *,
              groups: torch.Tensor | None = None, n_steps: int = 50, batch_size: int | None = None,
              **_) -> Attributions:
    ig = IntegratedGradients(head_forward(model, task))
    scores, delta = ig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=n_steps,
                                 internal_batch_size=batch_size, return_convergence_delta=True)
    scores = scores.detach()
    if groups is not None:
        scores = sum_groups(scores, groups)
    return Attributions(scores, delta.detach())
