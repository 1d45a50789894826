import pytest
import torch

from explorer.training.sparse_adam import EmbeddingAdam, adam_


def _run(steps: int, scale_low: float, seed: int = 0, cls=EmbeddingAdam, kernels: bool = True,
         check: bool = True):
    """EmbeddingAdam and torch.optim.Adam fed the same row-sparse gradients."""
    torch.manual_seed(seed)
    groups, vocab, width = 2, 40, 3
    start = torch.randn(groups, vocab, width)
    reference = torch.nn.Parameter(start.clone())
    dense = torch.optim.Adam([reference], lr=0.02)
    table = start.clone()
    lazy = cls(table, lr=0.02, kernels=kernels)
    for step in range(steps):
        updates, grad = [], torch.zeros_like(start)
        for g in range(groups):
            rows = torch.unique(torch.randint(0, vocab, (8,)))
            if step > steps // 2:
                rows = rows[rows < vocab // 2]  # the upper rows sit idle for a long stretch
            values = torch.randn(len(rows), width) * 10 ** torch.empty(len(rows), 1).uniform_(scale_low, -1)
            grad[g, rows] = values
            lazy.refresh(g, rows)
            # what a batch reads is what dense Adam has, even for rows that sat idle
            if check:
                assert torch.allclose(table[g, rows], reference.detach()[g, rows], atol=1e-5, rtol=0), (step, (table[g, rows] - reference.detach()[g, rows]).abs().max())
            updates.append((rows, values))
        reference.grad = grad
        dense.step()
        lazy.step(updates)
    lazy.flush()
    return table, lazy, reference.detach(), dense.state[reference]


@pytest.mark.parametrize("kernels", [True, False], ids=["numba", "torch ops"])
def test_lazy_rows_follow_dense_adam(kernels):
    # gradients down to 1e-7, where Adam's epsilon matters in the skipped steps
    table, lazy, reference, state = _run(300, scale_low=-7, kernels=kernels)
    assert (lazy.kernels is not None) == kernels
    assert torch.allclose(table, reference, atol=1e-5, rtol=0)
    assert torch.allclose(lazy.m, state["exp_avg"], atol=1e-7, rtol=1e-4)
    assert torch.allclose(lazy.v, state["exp_avg_sq"], atol=1e-9, rtol=1e-4)


class _NoCatchUp(EmbeddingAdam):
    def refresh(self, group, rows):
        pass  # rows simply wait, as in SparseAdam / LazyAdam


def test_skipped_steps_matter():
    """Without the closed-form catch-up the same comparison fails clearly."""
    table, _, reference, _ = _run(120, scale_low=-3, cls=_NoCatchUp, kernels=False, check=False)
    assert (table - reference).abs().max() > 1e-2


def test_adam_step_matches_torch():
    torch.manual_seed(1)
    p, g = torch.randn(5, 4), torch.randn(5, 4)
    ref = torch.nn.Parameter(p.clone())
    opt = torch.optim.Adam([ref], lr=0.01)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    for step in (1, 2, 3):
        ref.grad = g * step
        opt.step()
        adam_(p, g * step, m, v, step, 0.01, (0.9, 0.999), 1e-8)
    assert torch.allclose(p, ref.detach(), atol=1e-7)
