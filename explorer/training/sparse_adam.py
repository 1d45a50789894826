"""Adam for big embedding tables of which each step touches a few rows, equal to dense Adam.

``torch.optim.Adam`` on an embedding updates every row at every step: a row
with no gradient still moves, by its decaying momentum. For the stacked text
models of a sweep (a [vocab, combinations x dim] table) that full pass is most
of the work. Here a row is updated only when a batch uses it: just before the
batch reads it, ``refresh`` applies the zero-gradient steps it missed, in
closed form: with g = 0 for n steps, m and v decay as beta1^n and beta2^n and
the parameter moves by

    lr * m0 / (sqrt(v0) + c) * sum_{j=1..n} r^j * sqrt(1 - beta2^(t0+j)) / (1 - beta1^(t0+j)),
    r = beta1 / sqrt(beta2),

where the sum depends only on the steps (kept in a small table) and c stands
for Adam's epsilon term. That term changes a little from one missed step to the
next; using its weighted mean plus a variance correction makes the catch-up
exact for one missed step and leaves a third-order error otherwise, so the
table follows dense Adam to about float32 rounding, even for the tiny gradients of
rare words (tests/test_sparse_adam.py compares the two). This is dense Adam,
not a different optimiser such as SparseAdam, whose untouched rows just wait.

On the CPU both updates run as one-pass kernels (``explorer.training.row_kernels``);
elsewhere, or without numba, as torch ops on gathered copies of the rows.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from explorer.training import row_kernels

WINDOW = 512          # missed steps beyond this weigh r^512 < 1e-23: nothing in float32
FLUSH_ROWS = 4096     # rows per block of a flush


def adam_(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int, lr: float,
          betas: tuple[float, float], eps: float) -> None:
    """One Adam step in place, with torch.optim.Adam's arithmetic (fused kernel where there is one)."""
    beta1, beta2 = betas
    fused = getattr(torch, "_fused_adam_", None)
    if fused is not None and p.device.type in ("cpu", "cuda"):
        fused([p], [g], [m], [v], [], [torch.tensor(float(step), device=p.device)], lr=lr, beta1=beta1,
              beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
        return
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = (v.sqrt() / math.sqrt(1 - beta2 ** step)).add_(eps)
    p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** step))


class EmbeddingAdam:
    """Adam on ``table`` [groups, V, W], updating the rows each step touches (see the module doc)."""

    def __init__(self, table: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 kernels: bool = True):
        self.table, self.lr, self.betas, self.eps = table, lr, betas, eps
        self.m = torch.zeros_like(table)
        self.v = torch.zeros_like(table)
        groups, vocab, _ = table.shape
        self.last = torch.zeros(groups, vocab, dtype=torch.long, device=table.device)  # rows current as of
        self.t = 0                                       # completed steps
        self.r = betas[0] / math.sqrt(betas[1])
        self.sums = torch.zeros(1024, dtype=torch.float64)  # sums[t0]: the closed-form sum from t0 to t
        self.eps_sums = torch.zeros(1024, dtype=torch.float64)  # the same sum weighting each step's epsilon
        self.eps2_sums = torch.zeros(1024, dtype=torch.float64)  # ... and its square
        on_cpu = table.device.type == "cpu" and table.dtype == torch.float32
        self.kernels = row_kernels.load() if kernels and on_cpu else None

    # -- the closed form ----------------------------------------------------------------------
    def _advance(self) -> None:
        """Completed one more step: extend the pending sums by the new step's term."""
        beta1, beta2 = self.betas
        k = self.t
        if k >= len(self.sums):
            self.sums = torch.cat([self.sums, torch.zeros_like(self.sums)])
            self.eps_sums = torch.cat([self.eps_sums, torch.zeros_like(self.eps_sums)])
            self.eps2_sums = torch.cat([self.eps2_sums, torch.zeros_like(self.eps2_sums)])
        low = max(0, k - WINDOW)  # older sums are final: later terms vanish in float32
        j = k - torch.arange(low, k, dtype=torch.float64)
        term = self.r ** j * (math.sqrt(1 - beta2 ** k) / (1 - beta1 ** k))
        self.sums[low:k] += term
        # Adam's epsilon as seen from the row's last moments: eps * sqrt(1 - beta2^k) / beta2^(j/2)
        eps_k = self.eps * math.sqrt(1 - beta2 ** k) * beta2 ** (-j / 2)
        self.eps_sums[low:k] += term * eps_k
        self.eps2_sums[low:k] += term * eps_k ** 2

    def _coefficients(self, last: torch.Tensor, dtype) -> tuple[torch.Tensor, ...]:
        """Per row: (lr * sum, mean epsilon term, its variance, beta1^n, beta2^n), rows current as of ``last``.

        Computed in float64 on the CPU (some accelerators have no float64), then cast.
        """
        beta1, beta2 = self.betas
        last_cpu = last.cpu()
        sums = self.sums[last_cpu]
        weight = sums.clamp(min=1e-300)
        mean = torch.where(sums > 0, self.eps_sums[last_cpu] / weight, self.eps)
        var = torch.where(sums > 0, self.eps2_sums[last_cpu] / weight - mean ** 2, 0.0).clamp(min=0)
        n = (self.t - last_cpu).to(torch.float64)
        return tuple(x.to(device=last.device, dtype=dtype).unsqueeze(-1)
                     for x in (self.lr * sums, mean, var, beta1 ** n, beta2 ** n))

    def _catch_up_(self, p, m, v, last) -> None:
        # sum_j w_j / (x + e_j) ~ W / (x + mean) + W * var / (x + mean)^3, x = sqrt(v): exact for one
        # missed step (var = 0), third order in the spread of e_j otherwise
        coef, mean, var, decay1, decay2 = self._coefficients(last, p.dtype)
        inv = v.sqrt().add_(mean).reciprocal_()
        scale = inv.square().mul_(var).add_(1.0).mul_(inv).mul_(coef)
        p.addcmul_(m, scale, value=-1.0)
        m.mul_(decay1)
        v.mul_(decay2)

    # -- per step -------------------------------------------------------------------------------
    def refresh(self, group: int, rows: torch.Tensor) -> None:
        """Bring ``rows`` of ``group`` up to date in place (before a batch reads them)."""
        last = self.last[group, rows]
        stale = last < self.t
        rows, last = rows[stale], last[stale]
        if len(rows):
            kernel_args = [x.view(-1).numpy() for x in self._coefficients(last, torch.float32)] \
                if self.kernels is not None else []
            self._update_rows(group, rows, "catch_up_rows", kernel_args,
                              lambda p, m, v: self._catch_up_(p, m, v, last))

    def step(self, updates: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """One Adam step of every row: ``updates`` holds per group the rows a batch touched (refreshed
        before it read them, in ascending order) and their gradient; every other row's step is owed."""
        self.t += 1
        beta1, beta2 = self.betas
        f = np.float32
        for group, (rows, grad) in enumerate(updates):
            if len(rows):
                kernel_args = [grad.contiguous().numpy(), f(self.lr / (1 - beta1 ** self.t)), f(1 - beta1),
                               f(1 - beta2), f(beta2), f(math.sqrt(1 - beta2 ** self.t)), f(self.eps)] \
                    if self.kernels is not None else []
                self._update_rows(group, rows, "adam_rows", kernel_args,
                                  lambda p, m, v: adam_(p, grad, m, v, self.t, self.lr, self.betas, self.eps))
        self._advance()

    def _update_rows(self, group: int, rows: torch.Tensor, kernel: str, kernel_args: list, update) -> None:
        """Update ``rows`` of the parameters and moments in place, then mark them current.

        With the row kernels, ``kernel`` (a name in ``explorer.training.row_kernels``) runs on the rows
        where they lie; otherwise ``update(p, m, v)`` runs on gathered copies, which are put back.
        """
        p, m, v = self.table[group], self.m[group], self.v[group]
        if self.kernels is not None:
            row_kernels.run(getattr(self.kernels, kernel), len(rows), p.numpy(), m.numpy(), v.numpy(),
                            rows.numpy(), *kernel_args)
        else:
            parts = [x.index_select(0, rows) for x in (p, m, v)]
            update(*parts)
            for x, part in zip((p, m, v), parts):
                x.index_copy_(0, rows, part)
        self.last[group, rows] = self.t

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row up to date (before the table is read as a whole)."""
        vocab = self.table.shape[1]
        for group in range(self.table.shape[0]):
            for start in range(0, vocab, FLUSH_ROWS):
                self.refresh(group, torch.arange(start, min(start + FLUSH_ROWS, vocab), device=self.table.device))
