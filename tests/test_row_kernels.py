import math

import numpy as np
import pytest
import torch

from explorer.training import row_kernels
from explorer.training.sparse_adam import EmbeddingAdam, adam_


@pytest.fixture
def kernels():
    loaded = row_kernels.load()
    assert loaded is not None, "numba is pinned in requirements.txt: the kernels must load"
    return loaded


@pytest.mark.parametrize("threads", [1, 3])
def test_adam_rows_is_torch_adam_on_those_rows(kernels, threads):
    torch.manual_seed(0)
    p, m, v = torch.randn(2000, 16), torch.randn(2000, 16) * 0.1, torch.rand(2000, 16) * 0.01
    rows = torch.randperm(2000)[:900].sort().values      # enough rows for 3 threads of 256+
    g = torch.randn(900, 16)
    expected = [x.clone() for x in (p, m, v)]
    rp, rm, rv = (x[rows].clone() for x in expected)
    adam_(rp, g, rm, rv, 7, 0.01, (0.9, 0.999), 1e-8)
    for x, part in zip(expected, (rp, rm, rv)):
        x[rows] = part
    f = np.float32
    row_kernels.run(kernels.adam_rows, len(rows), p.numpy(), m.numpy(), v.numpy(), rows.numpy(), g.numpy(),
                    f(0.01 / (1 - 0.9 ** 7)), f(1 - 0.9), f(1 - 0.999), f(0.999), f(math.sqrt(1 - 0.999 ** 7)),
                    f(1e-8), threads=threads)
    for got, want in zip((p, m, v), expected):
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-7)
    untouched = torch.ones(2000, dtype=torch.bool)
    untouched[rows] = False
    assert torch.equal(p[untouched], expected[0][untouched])


def test_catch_up_rows_is_the_torch_catch_up(kernels):
    torch.manual_seed(1)
    table = torch.randn(1, 600, 8)
    fast, slow = EmbeddingAdam(table.clone(), lr=0.05), EmbeddingAdam(table.clone(), lr=0.05, kernels=False)
    assert fast.kernels is not None and slow.kernels is None
    for step in range(30):
        rows = torch.randperm(600)[:40].sort().values
        grad = torch.randn(40, 8) * 10 ** torch.empty(40, 1).uniform_(-6, -1)
        for opt in (fast, slow):
            opt.refresh(0, rows)
            opt.step([(rows, grad)])
    everything = torch.arange(600)
    fast.refresh(0, everything)
    slow.refresh(0, everything)
    assert torch.allclose(fast.table, slow.table, rtol=0, atol=1e-6)
    assert torch.allclose(fast.m, slow.m, rtol=1e-5, atol=1e-9)


def test_without_numba_the_optimiser_uses_torch_ops(monkeypatch):
    monkeypatch.setenv("EXPLORER_NO_NUMBA", "1")
    monkeypatch.setattr(row_kernels, "_kernels", False)  # forget what an earlier test loaded
    assert row_kernels.load() is None
    assert EmbeddingAdam(torch.zeros(1, 4, 2), lr=0.1).kernels is None
