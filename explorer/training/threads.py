"""How many CPU threads a training job's torch ops use: one, unless the machine is yours alone.

The trainer's matmuls are tiny (a batch of 64 rows through a 64-wide layer). With
as many OpenMP threads as cores, a second job or any other busy process on the
machine makes the threads wait on each other: measured with
``python -m explorer bench --load``, a batched sweep ran 14x slower beside one
other 2-thread process with 2 threads, and 1.3x slower with 1. The thread count
also changes the order of float sums, so the same seed would give different
numbers depending on what else runs. So every training job runs its torch ops
on ``TRAIN_THREADS`` threads (default 1; ``EXPLORER_TRAIN_THREADS`` sets it,
e.g. on a dedicated machine), and the numbers depend on that setting only.

``torch.set_num_threads`` acts on the calling thread (OpenMP keeps the count per
thread once a thread has used it), so concurrent jobs, which are threads, each
hold their own count; ``training_threads`` restores the caller's afterwards.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from explorer.errors import ExplorerError


def _from_env() -> int:
    value = os.environ.get("EXPLORER_TRAIN_THREADS", "1")
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ExplorerError(f"EXPLORER_TRAIN_THREADS must be a whole number >= 1, got {value!r}.")
    return n


TRAIN_THREADS = _from_env()


def set_training_threads(n: int) -> None:
    """Threads for every training job started from now on (``bench --threads``)."""
    global TRAIN_THREADS
    if not isinstance(n, int) or n < 1:
        raise ExplorerError(f"threads must be a whole number >= 1, got {n!r}.")
    TRAIN_THREADS = n


@contextmanager
def training_threads():
    """Run the block's torch ops on ``TRAIN_THREADS`` threads (the calling thread's setting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)
