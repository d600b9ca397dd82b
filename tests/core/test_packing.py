"""``scatter_rows``: packed rows into a filled tensor, with the gradient of the rows."""

from __future__ import annotations

import torch

from gradiance.core.packing import scatter_rows

DT = torch.float64


def test_scatter_places_rows_and_fills_the_rest() -> None:
    values = torch.arange(6, dtype=DT).reshape(2, 3)
    out = scatter_rows(values, torch.tensor([3, 1]), 5, torch.tensor([7.0, 8.0, 9.0], dtype=DT))
    want = torch.tensor([[7, 8, 9], [3, 4, 5], [7, 8, 9], [0, 1, 2], [7, 8, 9]], dtype=DT)
    torch.testing.assert_close(out, want)


def test_gradient_for_dense_and_expanded_incoming_gradients() -> None:
    values = torch.randn(4, 3, dtype=DT, requires_grad=True)
    index = torch.tensor([5, 0, 2, 7])
    assert torch.autograd.gradcheck(lambda v: scatter_rows(v, index, 9, torch.zeros(3, dtype=DT)), (values,))
    # ``out.sum()`` hands back a stride-0 gradient: the backward must read it like a dense one
    (g,) = torch.autograd.grad(scatter_rows(values, index, 9, torch.zeros(3, dtype=DT)).sum(), values)
    torch.testing.assert_close(g, torch.ones_like(values))
