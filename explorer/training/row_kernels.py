"""One-pass CPU kernels for updating scattered rows of a big table in place (numba).

``explorer.training.sparse_adam`` updates, at every step, only the embedding rows a
batch touches. Written with torch ops that costs a gather, a dozen elementwise
passes and a scatter per row; these kernels read each touched row of the
parameter, its two moments and its gradient once and write them back once,
which is what makes the batched text sweep several times faster than the
sequential one. Rows are split between threads (the kernels release the GIL).

``load()`` returns None where numba is missing or cannot compile; the optimiser
then falls back to torch ops, which give the same numbers.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import torch

MIN_ROWS_PER_THREAD = 256   # below this a thread costs more than it saves

_lock = threading.Lock()
_kernels: SimpleNamespace | None | bool = False   # False: not tried yet
_pool: ThreadPoolExecutor | None = None


def _compile() -> SimpleNamespace:
    import numba

    # error_model="numpy": no zero-division checks, so the loops vectorise; cache: compiled once per machine
    jit = numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)

    @jit
    def adam_rows(p, m, v, rows, g, step_size, weight1, weight2, beta2, bc2_sqrt, eps, lo, hi):
        """torch.optim.Adam's step (no weight decay) on rows[lo:hi] of p, m, v; g[i] is rows[i]'s gradient.

        Written in torch's order of operations (weight1 = 1 - beta1, weight2 = 1 - beta2, rounded
        from float64 as torch rounds them), so that it rounds as torch does.
        """
        for i in range(lo, hi):
            pr, mr, vr, gr = p[rows[i]], m[rows[i]], v[rows[i]], g[i]
            for j in range(pr.shape[0]):
                mj = mr[j] + weight1 * (gr[j] - mr[j])            # exp_avg.lerp_(grad, 1 - beta1)
                vj = vr[j] * beta2 + weight2 * gr[j] * gr[j]     # exp_avg_sq.mul_(beta2).addcmul_(...)
                mr[j] = mj
                vr[j] = vj
                pr[j] -= step_size * (mj / (np.sqrt(vj) / bc2_sqrt + eps))   # param.addcdiv_(...)

    @jit
    def catch_up_rows(p, m, v, rows, coef, mean, var, decay1, decay2, lo, hi):
        """The closed-form zero-gradient steps of ``sparse_adam.EmbeddingAdam`` on rows[lo:hi]."""
        one = np.float32(1.0)
        for i in range(lo, hi):
            pr, mr, vr = p[rows[i]], m[rows[i]], v[rows[i]]
            c, mu, s2, d1, d2 = coef[i], mean[i], var[i], decay1[i], decay2[i]
            for j in range(pr.shape[0]):
                inv = one / (np.sqrt(vr[j]) + mu)
                pr[j] -= mr[j] * ((inv * inv * s2 + one) * inv * c)
                mr[j] *= d1
                vr[j] *= d2

    return SimpleNamespace(adam_rows=adam_rows, catch_up_rows=catch_up_rows)


def load() -> SimpleNamespace | None:
    """The compiled kernels, or None where numba is unavailable (compiled on first use, then cached)."""
    global _kernels
    with _lock:
        if _kernels is False:
            if os.environ.get("EXPLORER_NO_NUMBA"):
                _kernels = None
            else:
                try:
                    _kernels = _compile()
                    _smoke_test(_kernels)
                except Exception:  # no numba, no compiler backend for this CPU, ...: torch ops instead
                    _kernels = None
        return _kernels


def _smoke_test(kernels: SimpleNamespace) -> None:
    """Compile both kernels now (float32 arrays, int64 rows), not in the middle of a training step."""
    p, m, v = (np.ones((2, 4), np.float32) for _ in range(3))
    rows, g = np.array([1], np.int64), np.ones((1, 4), np.float32)
    f = np.float32
    kernels.adam_rows(p, m, v, rows, g, f(0.1), f(0.1), f(0.001), f(0.999), f(1.0), f(1e-8), 0, 1)
    c = np.zeros(1, np.float32)
    kernels.catch_up_rows(p, m, v, rows, c, c + 1, c, c + 1, c + 1, 0, 1)
    if not math.isfinite(float(p[1, 0])):
        raise RuntimeError("row kernels gave a non-finite result")


def run(kernel, n: int, *args, threads: int | None = None) -> None:
    """``kernel(*args, lo, hi)`` over rows [0, n), split between ``threads`` (default: torch's count)."""
    global _pool
    workers = max(1, min(threads or torch.get_num_threads(), n // MIN_ROWS_PER_THREAD))
    if workers == 1:
        kernel(*args, 0, n)
        return
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="row-kernels")
    bounds = [n * k // workers for k in range(workers + 1)]
    futures = [_pool.submit(kernel, *args, lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    for future in futures:
        future.result()
