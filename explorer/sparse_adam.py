"""Adam for big embedding tables of which each step touches a few rows, equal to dense Adam.

``torch.optim.Adam`` on an embedding updates every row at every step: a row
with no gradient still moves, by its decaying momentum. For the stacked text
models of a sweep (a [vocab, combinations x dim] table) that full pass is most
of the work. Here the frequent rows (a prefix of the vocabulary, which is
ordered by frequency) are updated densely, and every other row only when a
batch uses it, after first applying the zero-gradient steps it missed in closed
form: with g = 0 for n steps, m and v decay as beta1^n and beta2^n and the
parameter moves by

    lr * m0 / (sqrt(v0) + c) * sum_{j=1..n} r^j * sqrt(1 - beta2^(t0+j)) / (1 - beta1^(t0+j)),
    r = beta1 / sqrt(beta2),

where the sum depends only on the steps (kept in a small table) and c stands
for Adam's epsilon term. That term changes a little from one missed step to the
next; using its weighted mean plus a variance correction makes the catch-up
exact for one missed step and leaves a third-order error otherwise, so the
table follows dense Adam to about float32 rounding, even for the tiny gradients of
rare words (tests/test_sparse_adam.py compares the two). This is dense Adam,
not a different optimiser such as SparseAdam, whose untouched rows just wait.
"""
from __future__ import annotations

import math

import torch

WINDOW = 512          # missed steps beyond this weigh r^512 < 1e-23: nothing in float32
FLUSH_ROWS = 1024      # rows per block of a flush, small enough to stay in cache
LAZY_COST = 12.0      # a lazily updated row's cost relative to a dense one (measured on CPU)


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


def hot_rows(token_frequency: torch.Tensor, rows: int, batch_size: int) -> int:
    """How many leading rows to update densely: the prefix minimising the expected cost per step.

    ``token_frequency`` is each row's share of training documents containing it;
    a row is in a batch with probability 1 - (1 - f)^batch_size.
    """
    touched = 1 - (1 - token_frequency.double().clamp(0, 1)) ** batch_size
    lazy_after = torch.cat([touched.flip(0).cumsum(0).flip(0), touched.new_zeros(1)])  # sum over r >= H
    cost = torch.arange(rows + 1, dtype=torch.float64) + LAZY_COST * lazy_after
    return int(cost.argmin())


class EmbeddingAdam:
    """Adam on ``table`` [groups, V, W]; rows [0, hot) dense, the rest lazily (see the module doc)."""

    def __init__(self, table: torch.Tensor, hot: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.table, self.hot, self.lr, self.betas, self.eps = table, hot, lr, betas, eps
        self.m = torch.zeros_like(table)
        self.v = torch.zeros_like(table)
        self.hot_grad = torch.zeros_like(table[0, :hot])  # one group at a time; non-zero in these rows:
        self.hot_touched = torch.zeros(0, dtype=torch.long, device=table.device)
        groups, vocab, _ = table.shape
        self.last = torch.zeros(groups, vocab, dtype=torch.long, device=table.device)
        self.t = 0                                       # completed steps
        self.r = betas[0] / math.sqrt(betas[1])
        self.sums = torch.zeros(1024, dtype=torch.float64)  # sums[t0]: the closed-form sum from t0 to t
        self.eps_sums = torch.zeros(1024, dtype=torch.float64)  # the same sum weighting each step's epsilon
        self.eps2_sums = torch.zeros(1024, dtype=torch.float64)  # ... and its square

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
    def gather(self, group: int, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cold ``rows`` (all >= hot) of a group brought up to date: (param, m, v) copies for ``step``."""
        p = self.table[group].index_select(0, rows)
        m = self.m[group].index_select(0, rows)
        v = self.v[group].index_select(0, rows)
        self._catch_up_(p, m, v, self.last[group, rows])
        return p, m, v

    def step(self, updates: list[tuple]) -> None:
        """One Adam step of every row.

        ``updates`` holds per group: the batch's hot rows and their gradient, its
        cold rows, what ``gather`` returned for them, and their gradient.
        """
        self.t += 1
        for group, (hot_rows_, hot_grad, cold_rows, cold, cold_grad) in enumerate(updates):
            if self.hot:
                grad = self.hot_grad
                grad.index_fill_(0, self.hot_touched, 0.0)  # cheaper than zeroing all hot rows
                grad.index_copy_(0, hot_rows_, hot_grad)
                self.hot_touched = hot_rows_
                adam_(self.table[group, :self.hot], grad, self.m[group, :self.hot], self.v[group, :self.hot],
                      self.t, self.lr, self.betas, self.eps)
            if len(cold_rows):
                p, m, v = cold
                adam_(p, cold_grad, m, v, self.t, self.lr, self.betas, self.eps)
                self.table[group].index_copy_(0, cold_rows, p)
                self.m[group].index_copy_(0, cold_rows, m)
                self.v[group].index_copy_(0, cold_rows, v)
                self.last[group, cold_rows] = self.t
        self._advance()

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every cold row up to date (before the table is read as a whole)."""
        vocab = self.table.shape[1]
        for group in range(self.table.shape[0]):
            for start in range(self.hot, vocab, FLUSH_ROWS):
                rows = slice(start, min(start + FLUSH_ROWS, vocab))
                self._catch_up_(self.table[group, rows], self.m[group, rows], self.v[group, rows],
                                self.last[group, rows])
        self.last[:, self.hot:] = self.t
