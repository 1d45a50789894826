"""FAMO, fast adaptive multitask optimisation (Liu et al. 2023), using torchjd's ``FAMO`` scalarizer.

FAMO minimises Σ z_i log L_i with task weights z = softmax(w), rescaled so the
update is a convex combination of the task gradients. After each optimiser step
it looks at how much each loss fell on the same batch and moves w (with its own
internal Adam) towards the tasks that improved least, so all losses decrease
at about the same rate, using losses only, never per-task gradients.
"""
from __future__ import annotations

import torch
from torchjd.scalarization import FAMO

from explorer.methods import Method, register, scalarize, stack_losses


@register
class FastAdaptive(Method):
    name = "famo"
    description = ("FAMO (Liu et al. 2023): balances the rate at which each task's loss falls, "
                   "from loss values only (one extra forward pass per step).")

    def __init__(self, tasks, device="cpu"):
        super().__init__(tasks, device)
        self.scalarizer = FAMO(len(self.tasks)).to(self.device)
        # A task missing from a batch stands in with its last seen loss: a constant
        # gives it no gradient, and the same constant after the step gives it no change.
        self.last = {t: torch.tensor(1.0, device=self.device) for t in self.tasks}

    def backward(self, losses, features, shared) -> dict[str, float]:
        values = stack_losses(losses, self.tasks, self.last)
        weights = scalarize(self.scalarizer, values, list(losses), self.tasks)
        self.last.update({t: loss.detach() for t, loss in losses.items()})
        return weights

    def after_step(self, recompute) -> None:
        with torch.no_grad():
            losses = recompute()
        # Tasks missing from the batch are still missing here, so they take the same stand-in.
        self.scalarizer.update(stack_losses(losses, self.tasks, self.last))
