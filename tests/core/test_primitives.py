"""Procedural meshes, normalisation and surface sampling."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core.mesh_ops import normalize_to_unit_sphere, sample_surface, signed_volume
from gradiance.core.meshes import Meshes
from gradiance.core.primitives import cube, cylinder, icosphere, plane, torus, uv_sphere

DT = torch.float64


def _is_closed_manifold(m: Meshes) -> bool:
    """Every undirected edge is shared by exactly two faces, traversed once in each direction."""
    f = m.faces
    directed = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    uniq = torch.unique(directed, dim=0)
    if uniq.shape[0] != directed.shape[0]:
        return False  # a directed edge appears twice: inconsistent orientation
    reverse = directed.flip(1)
    return bool((torch.cat([uniq, reverse]).unique(dim=0).shape[0]) == uniq.shape[0])


@pytest.mark.parametrize("level", [0, 1, 3])
def test_icosphere(level: int) -> None:
    s = icosphere(level, radius=2.0, dtype=DT)
    assert s.verts.shape == (10 * 4**level + 2, 3) and s.faces.shape == (20 * 4**level, 3)
    torch.testing.assert_close(s.verts.norm(dim=1), torch.full((s.verts.shape[0],), 2.0, dtype=DT))
    assert _is_closed_manifold(s)
    assert float(signed_volume(s)) > 0  # outward normals
    assert float(signed_volume(s)) < 4 / 3 * math.pi * 8


@pytest.mark.parametrize(
    "make",
    [
        lambda: uv_sphere(8, 12, dtype=DT),
        lambda: cube(dtype=DT),
        lambda: torus(dtype=DT),
        lambda: cylinder(segments=10, dtype=DT),
    ],
)
def test_closed_primitives_are_outward_manifolds(make) -> None:  # type: ignore[no-untyped-def]
    m = make()
    assert _is_closed_manifold(m)
    assert float(signed_volume(m)) > 0
    assert float(m.face_areas().min()) > 0


def test_primitive_volumes_and_uvs() -> None:
    torch.testing.assert_close(signed_volume(cube(3.0, dtype=DT)), torch.tensor([27.0], dtype=DT))
    t = torus(1.0, 0.25, 128, 64, dtype=DT)
    assert abs(float(signed_volume(t)) - 2 * math.pi**2 * 1.0 * 0.25**2) < 0.01
    s = uv_sphere(32, 64, dtype=DT)
    assert abs(float(signed_volume(s)) - 4 / 3 * math.pi) < 0.02
    assert s.verts.shape[0] == 31 * 64 + 2  # single poles, no seam duplicates
    for m in (s, t, cube(), plane(subdivisions=3)):
        assert m.uvs is not None and m.face_uvs is not None
        assert float(m.uvs.min()) >= 0 and float(m.uvs.max()) <= 1
        assert m.face_uvs.shape == m.faces.shape
    # the UV sphere's UVs follow longitude: u grows with the azimuth atan2(x, z)
    fu = s.uvs[s.face_uvs].mean(1)  # type: ignore[index]
    fc = s.face_verts().mean(1)
    az = torch.atan2(fc[:, 0], fc[:, 2]) % (2 * math.pi) / (2 * math.pi)
    assert float((fu[:, 0] - az).abs().max()) < 1 / 64 + 1e-6


def test_plane_faces_up() -> None:
    p = plane(2.0, 4, dtype=DT)
    assert p.faces.shape == (32, 3)
    torch.testing.assert_close(p.face_normals(), torch.tensor([[0.0, 1, 0]], dtype=DT).expand(32, 3))
    torch.testing.assert_close(p.face_areas().sum(), torch.tensor(4.0, dtype=DT))


def test_normalize_to_unit_sphere() -> None:
    a = icosphere(1, dtype=DT).with_verts(icosphere(1, dtype=DT).verts * 3 + 5)
    b = cube(dtype=DT).geometry()  # no UVs, like the icosphere
    m = normalize_to_unit_sphere(Meshes.join([a, b]))
    for verts in m.verts_list():
        assert abs(float(verts.norm(dim=1).max()) - 1) < 1e-12
        lo, hi = verts.min(0).values, verts.max(0).values
        torch.testing.assert_close(lo + hi, torch.zeros(3, dtype=DT))
    # max and min are smooth only without ties: perturb the sphere so one vertex is extreme on each axis
    g = torch.Generator().manual_seed(0)
    v = (a.verts + 0.05 * torch.rand(a.verts.shape, dtype=DT, generator=g)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: normalize_to_unit_sphere(a.with_verts(x)).verts, (v,))


def test_sample_surface() -> None:
    m = Meshes.join([cube(2.0, dtype=DT), plane(4.0, 2, dtype=DT)])  # both have UVs
    g = torch.Generator().manual_seed(0)
    pts, normals, face_ids, bary = sample_surface(m, 20000, generator=g)
    assert pts.shape == (2, 20000, 3) and normals.shape == (2, 20000, 3) and face_ids.shape == (2, 20000)
    # samples lie on their surfaces and faces belong to their own mesh
    assert float((pts[0].abs().max(-1).values - 1).abs().max()) < 1e-12
    assert float(pts[1, :, 1].abs().max()) < 1e-12
    assert bool((m.face_to_mesh[face_ids] == torch.tensor([[0], [1]])).all())
    torch.testing.assert_close(bary.sum(-1), torch.ones(2, 20000, dtype=DT))
    # uniform by area: each cube side receives about 1/6 of the samples
    side = (pts[0].abs() > 1 - 1e-9).double().mean(0) / 2  # fraction on +/-x, +/-y, +/-z pairs
    torch.testing.assert_close(side, torch.full((3,), 1 / 6, dtype=DT), atol=0.01, rtol=0)
    # differentiable with respect to the vertices: moving the mesh moves the samples
    verts = m.verts.clone().requires_grad_()
    g2 = torch.Generator().manual_seed(3)
    p2 = sample_surface(m.with_verts(verts), 10, generator=g2)[0]
    p2[0].sum().backward()
    assert verts.grad is not None
    torch.testing.assert_close(verts.grad[:8].sum(0), torch.full((3,), 10.0, dtype=DT))


def test_exception() -> None:
    with pytest.raises(ValueError, match="level"):
        icosphere(-1)
    with pytest.raises(ValueError, match="radius"):
        icosphere(1, radius=0.0)
    with pytest.raises(ValueError, match="segments"):
        uv_sphere(4, 2)
    with pytest.raises(ValueError, match="minor_radius"):
        torus(1.0, 2.0)
    with pytest.raises(ValueError, match="num_samples"):
        sample_surface(cube(), 0)
    flat = Meshes.single(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="positive surface area"):
        sample_surface(flat, 5)
    with pytest.raises(ValueError, match="coincide"):
        normalize_to_unit_sphere(flat)
