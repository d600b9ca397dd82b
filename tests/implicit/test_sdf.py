"""Analytic signed distances against brute-force distances to densely sampled surfaces."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.implicit import (
    Box,
    Capsule,
    Difference,
    Intersection,
    Plane,
    SmoothUnion,
    Sphere,
    Torus,
    Transformed,
    Union,
)
from gradiance.implicit.tracing import field_gradient


def _points(n: int = 400, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2.4 - 1.2


def _box_surface(half: torch.Tensor, n: int = 120) -> torch.Tensor:
    u = torch.linspace(-1, 1, n, dtype=torch.float64)
    a, b = torch.meshgrid(u, u, indexing="ij")
    faces = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            p = torch.zeros(n * n, 3, dtype=torch.float64)
            others = [k for k in range(3) if k != axis]
            p[:, axis] = sign
            p[:, others[0]], p[:, others[1]] = a.reshape(-1), b.reshape(-1)
            faces.append(p * half)
    return torch.cat(faces)


def test_box_matches_brute_force() -> None:
    half = torch.tensor([0.5, 0.3, 0.7], dtype=torch.float64)
    box = Box((0.0, 0.0, 0.0), half.tolist()).double()
    pts = _points()
    surface = _box_surface(half)
    unsigned = torch.cdist(pts, surface).amin(1)
    inside = (pts.abs() <= half).all(1)
    want = torch.where(inside, -unsigned, unsigned)
    assert torch.allclose(box(pts), want, atol=0.02)  # the surface samples are 0.012 apart


def test_sphere_torus_capsule_plane_formulas() -> None:
    pts = _points()
    s = Sphere((0.1, -0.2, 0.3), 0.4).double()
    assert torch.allclose(s(pts), (pts - torch.tensor([0.1, -0.2, 0.3]).double()).norm(dim=1) - 0.4)
    t = Torus((0.0, 0.0, 0.0), 0.6, 0.2).double()
    phi = torch.linspace(0, 2 * math.pi, 400, dtype=torch.float64)
    ring = torch.stack([0.6 * phi.cos(), torch.zeros_like(phi), 0.6 * phi.sin()], 1)
    assert torch.allclose(
        t(pts), torch.cdist(pts, ring).amin(1) - 0.2, atol=1e-3
    )  # distance to the core circle
    c = Capsule((0.0, -0.5, 0.0), (0.0, 0.5, 0.0), 0.2).double()
    seg = torch.stack([torch.zeros(500), torch.linspace(-0.5, 0.5, 500), torch.zeros(500)], 1).double()
    assert torch.allclose(c(pts), torch.cdist(pts, seg).amin(1) - 0.2, atol=1e-3)
    p = Plane((0.0, 2.0, 0.0), 0.25).double()
    assert torch.allclose(p(pts), pts[:, 1] - 0.25)


@pytest.mark.parametrize(
    "sdf", [Sphere(radius=0.6), Box(half_size=(0.4, 0.5, 0.6), rounding=0.1), Torus(major=0.6, minor=0.25)]
)
def test_eikonal(sdf: torch.nn.Module) -> None:
    _, grad = field_gradient(sdf.double(), _points(200, 1))
    assert torch.allclose(grad.norm(dim=1), torch.ones(200, dtype=torch.float64), atol=1e-6)


def test_torus_gradient_on_its_core_circle_is_finite() -> None:
    _, grad = field_gradient(
        Torus(major=0.5, minor=0.2).double(), torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64)
    )
    assert torch.isfinite(grad).all()


def test_union_outside_matches_brute_force() -> None:
    """Outside both parts the union is the exact distance to the union's surface: the parts' surface samples
    that are not inside the other part."""
    half = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)
    a, b = Sphere((0.25, 0.0, 0.0), 0.4).double(), Box((-0.2, 0.0, 0.0), half.tolist()).double()
    u = torch.randn(20000, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sphere_surface = torch.tensor(
        [0.25, 0.0, 0.0], dtype=torch.float64
    ) + 0.4 * torch.nn.functional.normalize(u, dim=1)
    box_surface = _box_surface(half) + torch.tensor([-0.2, 0.0, 0.0], dtype=torch.float64)
    surface = torch.cat([sphere_surface[b(sphere_surface) > 0], box_surface[a(box_surface) > 0]])
    pts = _points(300, 3)
    outside = (a(pts) > 0.05) & (b(pts) > 0.05)
    want = torch.cdist(pts[outside], surface).amin(1)
    assert torch.allclose(Union(a, b)(pts[outside]), want, atol=0.02)


def test_combinations_and_transforms() -> None:
    pts = _points()
    a, b = Sphere((0.2, 0.0, 0.0), 0.5).double(), Box((-0.2, 0.0, 0.0), (0.3, 0.3, 0.3)).double()
    fa, fb = a(pts), b(pts)
    assert torch.equal(Union(a, b)(pts), torch.minimum(fa, fb))
    assert torch.equal(Intersection(a, b)(pts), torch.maximum(fa, fb))
    assert torch.equal(Difference(a, b)(pts), torch.maximum(fa, -fb))
    smooth = SmoothUnion(a, b, k=0.1)(pts)
    assert (smooth <= torch.minimum(fa, fb) + 1e-12).all()  # never above the union
    far = (fa - fb).abs() > 0.1
    assert torch.allclose(smooth[far], torch.minimum(fa, fb)[far])  # and equal to it away from the blend
    moved = Transformed(
        Box(half_size=(0.2, 0.4, 0.1)),
        rotation=(0.0, 0.0, math.pi / 2),
        translation=(0.5, 0.0, 0.0),
        scale=2.0,
    )
    moved = moved.double()
    local = torch.tensor([[0.1, 0.2, 0.05], [0.3, -0.1, 0.0]], dtype=torch.float64)
    R = torch.tensor(
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )  # 90 deg about z
    world = 2.0 * local @ R.T + torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(moved(world), 2.0 * Box(half_size=(0.2, 0.4, 0.1)).double()(local), atol=1e-12)


def test_exception() -> None:
    with pytest.raises(ValueError, match="radius must be > 0"):
        Sphere(radius=0.0)
    with pytest.raises(ValueError, match="rounding must lie in"):
        Box(half_size=(0.1, 0.2, 0.3), rounding=0.2)
    with pytest.raises(ValueError, match="major must exceed minor"):
        Torus(major=0.1, minor=0.2)
    with pytest.raises(ValueError, match="normal must not be zero"):
        Plane((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="at least one part"):
        Union()
    with pytest.raises(ValueError, match="expected 3 values"):
        Sphere((0.0, 0.0), 1.0)
