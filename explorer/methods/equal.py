"""Equal weighting: the plain sum of task losses, the baseline every method is compared with."""
from __future__ import annotations

import torch

from explorer.methods import Method, register


@register
class EqualWeights(Method):
    name = "ew"
    description = "Equal weights: minimise the sum of the task losses (the default)."

    def backward(self, losses, features, shared) -> dict[str, float]:
        torch.stack(list(losses.values())).sum().backward()
        return {t: 1.0 for t in losses}
