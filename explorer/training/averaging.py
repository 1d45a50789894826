"""A moving average of the epoch-end weights: what each epoch validates, checkpoints and keeps.

Why: which of two neighbouring epochs early stopping picks, and a rare class flipping in the last
few steps, made much of the seed-to-seed spread of a score. Validating an average of the
epoch ends (``decay`` per epoch; the first epoch's weights as they are) steadies both, and the
live weights train on untouched (README "Default regime" has the measurement).

Both trainers call it the same way, so batched and sequential training stay equal: ``swap_in``
at the end of an epoch (before validation), ``restore`` before the next epoch's first batch.
The average is swapped in by exchanging the tensors the parameters hold (no copy of the live
weights is made), so the extra memory is one copy of the weights.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


class EpochAverage:
    def __init__(self, params: Iterable[torch.nn.Parameter], decay: float):
        self.params = list(params)
        self.decay = float(decay)
        self.average: list[torch.Tensor] | None = None
        self.live: list[torch.Tensor] | None = None   # the training weights while the average is swapped in

    @torch.no_grad()
    def swap_in(self) -> None:
        """Fold the current weights into the average and put the average into the parameters."""
        if not self.decay or self.live is not None:
            return
        if self.average is None:
            self.average = [p.detach().clone() for p in self.params]
        else:
            for a, p in zip(self.average, self.params):
                a.lerp_(p.detach(), 1 - self.decay)
        self.live = [p.data for p in self.params]
        for p, a in zip(self.params, self.average):
            p.data = a

    @torch.no_grad()
    def restore(self) -> None:
        """Put the training weights back (the average stays as it was)."""
        if self.live is None:
            return
        for p, live in zip(self.params, self.live):
            p.data = live
        self.live = None
