"""MGDA (Désidéri 2012; Sener & Koltun 2018), torchjd's Frank-Wolfe implementation.

The shared update is the minimum-norm convex combination of the task gradients,
a direction that decreases every task's loss when one exists. Weights sum to 1
and often put almost everything on the task with the smallest gradient.
"""
from __future__ import annotations

from torchjd.aggregation import MGDA

from explorer.methods import register
from explorer.methods._aggregator import GradientAggregator


@register
class MGDAMethod(GradientAggregator):
    name = "mgda"
    description = ("MGDA (Sener & Koltun 2018): the minimum-norm convex combination of the task "
                   "gradients on the shared encoder.")

    def build(self):
        return MGDA()
