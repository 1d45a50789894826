"""Dynamic weight average (Liu, Johns & Davison 2019).

A task's weight grows when its loss fell less than the others' over the last
two epochs: λ_k = K · softmax_k(r_k / T), r_k = L_k(t−1) / L_k(t−2), T = 2 as in
the paper; weights are 1 for the first two epochs.

Written here rather than taken from ``torchjd.scalarization.DWA``: that class
averages the full loss vector of every batch itself, while batches here can lack
a task's labels, and the trainer already passes the per-task epoch means that
the rule needs (``end_epoch``). The rule is the three lines in ``end_epoch``.
"""
from __future__ import annotations

import torch

from explorer.methods import Method, register


@register
class DynamicWeightAverage(Method):
    name = "dwa"
    description = ("Dynamic weight average (Liu et al. 2019): up-weights the tasks whose training "
                   "loss is falling slowest, updated each epoch.")
    temperature = 2.0

    def __init__(self, tasks, device="cpu"):
        super().__init__(tasks, device)
        self.weights = dict.fromkeys(self.tasks, 1.0)
        self.epochs: list[dict[str, float]] = []

    def backward(self, losses, features, shared) -> dict[str, float]:
        sum(self.weights[t] * loss for t, loss in losses.items()).backward()
        return {t: self.weights[t] for t in losses}

    def end_epoch(self, epoch_losses: dict[str, float]) -> None:
        self.epochs = (self.epochs + [dict(epoch_losses)])[-2:]
        if len(self.epochs) < 2 or any(t not in e for e in self.epochs for t in self.tasks):
            return  # keep the current weights until two full epochs of every task exist
        older, newer = self.epochs
        rates = torch.tensor([newer[t] / max(older[t], 1e-12) for t in self.tasks])
        weights = len(self.tasks) * torch.softmax(rates / self.temperature, dim=0)
        self.weights = dict(zip(self.tasks, weights.tolist()))
