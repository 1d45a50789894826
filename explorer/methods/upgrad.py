"""UPGrad (Quinton & Rey 2024), torchjd's implementation with its default quadprog projection.

Each task's gradient on the shared encoder is projected onto the dual cone of all
task gradients (the directions that do not increase any task's loss), and the
projections are averaged. Weights are the coefficients of the task gradients.
"""
from __future__ import annotations

from torchjd.aggregation import UPGrad

from explorer.methods import register
from explorer.methods._aggregator import GradientAggregator


@register
class UPGradMethod(GradientAggregator):
    name = "upgrad"
    description = ("UPGrad (Quinton & Rey 2024): projects each task's shared gradient onto the cone "
                   "of directions that harm no task, then averages.")

    def build(self):
        return UPGrad()
