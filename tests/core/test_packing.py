"""``scatter_rows``: packed rows into a filled tensor, with the gradient of the rows; ``run_starts``."""

from __future__ import annotations

import pytest
import torch

from gradiance.core.packing import run_starts, scatter_rows

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


@pytest.mark.parametrize("keys", [[], [4], [1, 1, 1], [0, 0, 2, 3, 3, 3, 7, 9, 9], list(range(6))])
def test_run_starts_matches_a_loop(keys: list[int]) -> None:
    expected = [next(j for j in range(i + 1) if keys[j] == keys[i]) for i in range(len(keys))]
    assert run_starts(torch.tensor(keys, dtype=torch.long)).tolist() == expected
