"""UPGrad (Quinton & Rey 2024), torchjd's implementation with a scipy projection.

Each task's gradient on the shared encoder is projected onto the dual cone of all
task gradients (the directions that do not increase any task's loss), and the
projections are averaged. Weights are the coefficients of the task gradients.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import lsq_linear
from torchjd.aggregation import UPGrad
from torchjd.linalg import DualConeProjector

from explorer.methods import register
from explorer.methods._aggregator import GradientAggregator


class ScipyProjector(DualConeProjector):
    """The dual-cone projection, solved with scipy instead of quadprog.

    The only code here that a library does not provide: torchjd's default
    projector needs the optional ``qpsolvers`` and ``quadprog`` packages, which this
    project does not install. The problem (min vᵀGv subject to v ≥ u, Proposition 1
    of the UPGrad paper) is a bounded least-squares problem with A = G^½, which
    ``scipy.optimize.lsq_linear`` solves exactly (BVLS).
    """

    def __call__(self, U: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        g = G.detach().cpu().double().numpy()
        u = U.detach().cpu().double().numpy()
        trace = float(np.trace(g))
        if trace <= 1e-12:  # every gradient is zero: any v >= u is optimal, take u itself
            return U.clone()
        values, vectors = np.linalg.eigh(g / trace)  # scaling G does not move the minimiser
        a = np.sqrt(np.clip(values, 0.0, None))[:, None] * vectors.T  # aᵀa = G / trace
        zero = np.zeros(len(g))
        w = np.apply_along_axis(
            lambda row: lsq_linear(a, zero, bounds=(row, np.full_like(row, np.inf)), method="bvls").x, -1, u)
        return torch.as_tensor(w, device=G.device, dtype=G.dtype)


@register
class UPGradMethod(GradientAggregator):
    name = "upgrad"
    description = ("UPGrad (Quinton & Rey 2024): projects each task's shared gradient onto the cone "
                   "of directions that harm no task, then averages.")

    def build(self):
        return UPGrad(projector=ScipyProjector())
