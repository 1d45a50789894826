"""Layer integrated gradients on the token embeddings (text).

Gradients are integrated from an all-padding baseline to the document's
embeddings and summed over the embedding dimension: one score per token.

The encoder's masked mean divides by the number of real tokens. A baseline of
padding ids would change that mask (and an empty mask pools to zero), so the
real input's mask is passed to the encoder as a fixed argument on every step,
the baseline included: f(baseline) is the prediction for a document whose
tokens are all the padding embedding, at the same length. The path then only
moves the embeddings, and completeness (sum of scores = f(x) - f(baseline))
holds up to the integral's approximation error, reported as ``delta``.
"""
from __future__ import annotations

import torch
from captum.attr import LayerIntegratedGradients

from explorer.attributions import Attributions, register
from models import MultiTaskModel


@register("lig", "Integrated gradients (token embeddings)", ("text",),
          "Integrated gradients from an all-padding document to the real one, summed per word.")
def attribute(model: MultiTaskModel, task: str, x: torch.Tensor, target: torch.Tensor, *,
              n_steps: int = 32, batch_size: int | None = None, **_) -> Attributions:
    encoder = model.encoder
    mask = (x != 0).unsqueeze(-1).to(encoder.embedding.weight.dtype)

    def forward(tokens: torch.Tensor, fixed_mask: torch.Tensor) -> torch.Tensor:
        return model.decode(encoder(tokens, fixed_mask))[task]  # towers/gates included

    lig = LayerIntegratedGradients(forward, encoder.embedding)
    scores, delta = lig.attribute(x, baselines=torch.zeros_like(x), target=target,
                                  additional_forward_args=(mask,), n_steps=n_steps,
                                  internal_batch_size=batch_size, return_convergence_delta=True)
    return Attributions(scores.sum(-1).detach(), delta.detach())
