"""Nash-MTL (Navon et al. 2022), torchjd's implementation.

The shared update d maximises Σ log(gᵢ·d), the Nash bargaining solution between
the tasks, so no task's gradient dominates; its weights α solve Gα = 1/α for the
Gram matrix G of the task gradients (a short sequence of convex problems, solved
with cvxpy/ECOS and warm-started from the previous step's α). Settings are
torchjd's defaults, which are those of the paper's code: the update's norm is
clipped to ``max_norm`` = 1, and α is re-solved every step
(``update_weights_every`` = 1) with at most 20 solver iterations.

Nash-MTL is stateful and built for a fixed number of tasks, while a batch here
can lack a task's labels. Padding the missing task with a zero gradient does not
work: the bargaining problem has no solution when a task cannot gain (log 0).
So each set of tasks present gets its own instance: the full set's warm start is
never touched by incomplete batches, and an incomplete batch is bargained over
the tasks it has, the missing task getting no weight and no update. An instance
for a subset only sees those batches, so its warm start is older. torchjd cannot
solve a one-task problem (cvxpy rejects the 1×1 case), so a batch with a single
task takes that problem's closed-form solution, g/‖g‖ (weight 1/‖g‖, norm 1).
"""
from __future__ import annotations

import warnings

import torch
from torchjd.aggregation import Aggregator, NashMTL, WeightedAggregator, Weighting

from explorer.methods import register
from explorer.methods._aggregator import GradientAggregator

# torchjd's problem is not in cvxpy's parametrised form, so every solve is compiled
# afresh and cvxpy warns about it. That costs speed only (0.1-0.2 s a step with
# two tasks on a CPU), and the warning would otherwise reach every CLI user.
warnings.filterwarnings("ignore", message="You are solving a parameterized problem that is not DPP",
                        module=r"torchjd\.aggregation\._nash_mtl")


class _OneTask(Weighting):
    """Nash-MTL with one task: maximise log(g·d) with ‖d‖ ≤ 1 gives d = g/‖g‖."""

    def forward(self, matrix: torch.Tensor, /) -> torch.Tensor:
        norm = matrix.norm()
        return torch.where(norm > 0, 1 / norm, torch.zeros_like(norm)).reshape(1)


@register
class NashMTLMethod(GradientAggregator):
    name = "nashmtl"
    description = ("Nash-MTL (Navon et al. 2022): task weights from a bargaining game on the shared "
                   "gradients, so no task dominates; update norm clipped to 1.")
    max_norm = 1.0
    update_weights_every = 1
    optim_niter = 20

    def build(self) -> Aggregator:
        self.by_subset: dict[tuple[str, ...], Aggregator] = {}
        return self._new(len(self.tasks))

    def _new(self, n_tasks: int) -> Aggregator:
        if n_tasks == 1:
            return WeightedAggregator(_OneTask())
        return NashMTL(n_tasks, max_norm=self.max_norm, update_weights_every=self.update_weights_every,
                       optim_niter=self.optim_niter)

    def aggregator_for(self, present: list[str]) -> Aggregator:
        if len(present) == len(self.tasks):
            return self.aggregator
        key = tuple(present)
        if key not in self.by_subset:
            self.by_subset[key] = self._new(len(present))
        return self.by_subset[key]
