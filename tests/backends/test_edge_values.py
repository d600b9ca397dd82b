"""The custom autograd function behind the rasteriser's perspective-correct barycentrics."""

from __future__ import annotations

import torch

from gradiance.backends.torch.rasterize import barycentric_planes, edge_values, perspective_barycentrics

DT = torch.float64


def test_matches_the_plane_formula_and_finite_differences() -> None:
    g = torch.Generator().manual_seed(0)
    hc = torch.randn(9, 3, 3, generator=g, dtype=DT).requires_grad_()
    u, v = torch.randn(9, generator=g, dtype=DT), torch.randn(9, generator=g, dtype=DT)
    p = torch.stack([u, v, torch.ones_like(u)], -1)
    torch.testing.assert_close(edge_values(hc, u, v), (barycentric_planes(hc) * p[:, None]).sum(-1))
    assert torch.autograd.gradcheck(lambda h: edge_values(h, u, v), (hc,))


def test_normalised_barycentrics_match_the_formula_and_finite_differences() -> None:
    g = torch.Generator().manual_seed(1)
    hc = torch.randn(9, 3, 3, generator=g, dtype=DT)
    hc[..., 2] = hc[..., 2].abs() + 0.5  # positive depths keep sum(e) away from zero
    hc.requires_grad_()
    u, v = torch.randn(9, generator=g, dtype=DT), torch.randn(9, generator=g, dtype=DT)
    e = edge_values(hc, u, v)
    torch.testing.assert_close(perspective_barycentrics(hc, u, v), e / e.sum(1, keepdim=True))
    assert torch.autograd.gradcheck(lambda h: perspective_barycentrics(h, u, v), (hc,))
