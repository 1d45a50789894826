"""Uncertainty weighting (Kendall, Gal & Cipolla 2018), using torchjd's ``UW`` scalarizer.

Each task has a learnable log-variance s; the total is Σ ½·exp(−s)·L + ½·s, so a
task whose loss stays high is down-weighted and the ½·s term stops the weights
from collapsing to zero. The log-variances are trained by the model's optimiser.
"""
from __future__ import annotations

from torchjd.scalarization import UW

from explorer.methods import Method, register, scalarize, stack_losses


@register
class UncertaintyWeights(Method):
    name = "uw"
    description = ("Uncertainty weighting (Kendall et al. 2018): learned per-task log-variances "
                   "scale each loss by exp(-s)/2.")

    def __init__(self, tasks, device="cpu"):
        super().__init__(tasks, device)
        self.scalarizer = UW(len(self.tasks)).to(self.device)

    def parameters(self):
        return list(self.scalarizer.parameters())

    def backward(self, losses, features, shared) -> dict[str, float]:
        log_var = self.scalarizer.log_var
        # With L = exp(s) the term's derivative in s, −½·exp(−s)·L + ½, is exactly 0:
        # a task absent from the batch leaves its log-variance where it is.
        stand_in = {t: log_var[i].exp() for i, t in enumerate(self.tasks)}
        values = stack_losses(losses, self.tasks, stand_in)
        return scalarize(self.scalarizer, values, list(losses), self.tasks)
