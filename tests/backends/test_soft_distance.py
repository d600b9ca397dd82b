"""Point-to-triangle distances of the soft renderers' pair search: brute force, inside tests, gradients."""

from __future__ import annotations

import torch

from gradiance.backends.torch.soft import closest_boundary_points, point_triangle_distance

DT = torch.float64


def _brute_force_d2(p: torch.Tensor, tri: torch.Tensor, samples: int = 4001) -> torch.Tensor:
    """Squared distance to a dense sampling of each boundary edge (an upper bound within 1e-6 or so)."""
    s = torch.linspace(0, 1, samples, dtype=DT)
    out = []
    for i in range(p.shape[0]):
        pts = [tri[i, k] + s[:, None] * (tri[i, (k + 1) % 3] - tri[i, k]) for k in range(3)]
        out.append(((torch.cat(pts) - p[i]) ** 2).sum(-1).min())
    return torch.stack(out)


def _inside_by_area(p: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Inside when the three sub-triangle areas add up to the whole (no sign conventions involved)."""

    def area(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).abs()

    a, b, c = tri.unbind(1)
    whole = area(a, b, c)
    parts = area(p, b, c) + area(a, p, c) + area(a, b, p)
    return (whole > 0) & ((parts - whole).abs() <= 1e-9 * (1 + whole))


def test_distance_and_inside_match_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    tri = 4 * torch.rand(200, 3, 2, generator=g, dtype=DT)
    tri[:5, 2] = tri[:5, 0]  # degenerate: a repeated corner
    p = 5 * torch.rand(200, 2, generator=g, dtype=DT) - 0.5
    d2, edge, t, inside = closest_boundary_points(p, tri)
    torch.testing.assert_close(d2, _brute_force_d2(p, tri), atol=2e-6, rtol=0)
    assert torch.equal(inside, _inside_by_area(p, tri))
    assert not bool(inside[:5].any()) and bool(inside.any()) and bool((~inside).any())
    assert bool(((edge >= 0) & (edge <= 2)).all()) and bool(((t >= 0) & (t <= 1)).all())
    d2_grad, inside2 = point_triangle_distance(p, tri)
    torch.testing.assert_close(d2_grad, d2)
    assert torch.equal(inside2, inside)


def test_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    tri = (4 * torch.rand(12, 3, 2, generator=g, dtype=DT)).requires_grad_()
    p = (5 * torch.rand(12, 2, generator=g, dtype=DT) - 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: point_triangle_distance(a, b)[0], (p, tri))
