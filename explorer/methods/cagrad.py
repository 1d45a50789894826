"""CAGrad, conflict-averse gradient descent (Liu et al. 2021), torchjd's implementation.

The shared update maximises the worst task's improvement while staying within a
ball of radius c·‖g₀‖ around the average gradient g₀: c = 0 is plain averaging,
larger c moves towards MGDA. c = 0.5 is LibMTL's default (``calpha``), not tuned
here. torchjd solves the small convex problem with cvxpy/Clarabel and does not
rescale the update (the official code and LibMTL divide it by 1 + c² by default),
so the reported weights sum to more than 1.

Needs no state, so a batch missing a task's labels is aggregated over the tasks
present, as for the other aggregators.
"""
from __future__ import annotations

from torchjd.aggregation import CAGrad

from explorer.methods import register
from explorer.methods._aggregator import GradientAggregator


@register
class CAGradMethod(GradientAggregator):
    name = "cagrad"
    description = ("CAGrad (Liu et al. 2021, c=0.5): the update near the average shared gradient "
                   "that most improves the worst-off task.")
    c = 0.5

    def build(self):
        return CAGrad(c=self.c)
