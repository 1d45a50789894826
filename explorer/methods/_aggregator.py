"""Shared plumbing for gradient aggregators: torchjd's Jacobian descent on the shared encoder.

``torchjd.autojac.mtl_backward`` gives every head its own task's plain gradient and
stores one gradient row per task on each shared parameter; ``jac_to_grad`` then
combines those rows with the aggregator. The weights it returns are the
coefficients of each task's gradient in the shared update: the honest "task
weights" of an aggregator, which change every step.
"""
from __future__ import annotations

from torchjd.aggregation import Aggregator
from torchjd.autojac import jac_to_grad, mtl_backward

from explorer.errors import ExplorerError
from explorer.methods import Method


class GradientAggregator(Method):
    needs_shared = True

    def __init__(self, tasks, device="cpu"):
        super().__init__(tasks, device)
        if len(self.tasks) < 2:
            raise ExplorerError(
                f"Method '{self.name}' combines the gradients of several tasks and needs at least two tasks "
                f"(got {len(self.tasks)}: {', '.join(self.tasks) or 'none'}). Choose two or more tasks, "
                "or use 'ew' to train a single task.")
        try:
            self.aggregator = self.build()
        except ImportError as e:  # torchjd checks its optional solvers when an aggregator is built
            raise ExplorerError(f"Method '{self.name}' needs a solver that is not installed ({e}). "
                                "Install the pinned dependencies with `pip install -r requirements.txt`, "
                                "or choose another method.") from e

    def build(self) -> Aggregator:
        raise NotImplementedError

    def aggregator_for(self, present: list[str]) -> Aggregator:
        """The aggregator for a batch where only ``present`` tasks have labels (rows in task order)."""
        return self.aggregator

    def backward(self, losses, features, shared) -> dict[str, float]:
        shared = [p for p in shared if p.requires_grad]
        if not shared:
            raise ExplorerError(f"Method '{self.name}' acts on the shared encoder's gradients, but this model "
                                "has no trainable shared parameters. Use a loss weighting such as 'ew' or 'uw'.")
        # Task order, whatever the dict's order: stateful aggregators tie their state to row positions.
        present = [t for t in self.tasks if t in losses]
        mtl_backward([losses[t] for t in present], features=features, shared_params=shared)
        weights = jac_to_grad(shared, self.aggregator_for(present))
        return dict(zip(present, weights.tolist()))
