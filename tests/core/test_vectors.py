"""``safe_normalize``: unit vectors, zero for zero vectors, and a written-out backward."""

from __future__ import annotations

import torch

from gradiance.core.vectors import safe_normalize

DT = torch.float64


def test_unit_length_and_zero_vectors() -> None:
    x = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1e-30, 0.0, 0.0]], dtype=DT)
    out = safe_normalize(x)
    torch.testing.assert_close(
        out, torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=DT)
    )


def test_gradient_matches_finite_differences_and_autograd_formula() -> None:
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0), dtype=DT).requires_grad_()
    assert torch.autograd.gradcheck(safe_normalize, (x,))
    g = torch.randn_like(x)
    (ours,) = torch.autograd.grad(safe_normalize(x), x, g)
    (ref,) = torch.autograd.grad(x / x.norm(dim=-1, keepdim=True), x, g)
    torch.testing.assert_close(ours, ref)


def test_zero_vector_has_zero_finite_gradient() -> None:
    x = torch.zeros(4, 3, dtype=DT, requires_grad=True)
    safe_normalize(x).sum().backward()
    assert x.grad is not None and bool((x.grad == 0).all())
