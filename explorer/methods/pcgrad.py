"""PCGrad (Yu et al. 2020), torchjd's implementation.

Each task's gradient on the shared encoder loses its component along any other
task's gradient it conflicts with (negative dot product), in random order; the
projected gradients are summed. Weights are the resulting coefficients of the
original task gradients (1 each when nothing conflicts).
"""
from __future__ import annotations

from torchjd.aggregation import PCGrad

from explorer.methods import register
from explorer.methods._aggregator import GradientAggregator


@register
class PCGradMethod(GradientAggregator):
    name = "pcgrad"
    description = ("PCGrad (Yu et al. 2020): projects each task's shared gradient off the gradients "
                   "it conflicts with, then sums them.")

    def build(self):
        return PCGrad()
