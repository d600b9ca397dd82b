"""antialias: edge coverage, finite differences of the same forward function, an inverse pose problem."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core.cameras import Cameras, look_at
from gradiance.core.meshes import Meshes
from gradiance.core.primitives import cube, icosphere
from gradiance.core.transforms import axis_angle_to_matrix
from gradiance.mesh.antialias import antialias, edge_neighbors
from gradiance.mesh.rasterize import rasterize

DT = torch.float64


def _silhouette(mesh: Meshes, cams: Cameras) -> torch.Tensor:
    fr = rasterize(mesh, cams)
    return antialias(fr.mask, fr, mesh, cams)


def _supersampled_coverage(mesh: Meshes, cams: Cameras, factor: int = 8) -> torch.Tensor:
    """Pixel-area coverage by rasterising at ``factor`` times the resolution and averaging."""
    H, W = cams.image_size
    big = cams.upscaled(factor)
    mask = rasterize(mesh, big).mask
    return mask.reshape(len(cams), H, factor, W, factor, 1).mean(dim=(2, 4))


def _tilted_triangle() -> Meshes:
    v = torch.tensor([[-0.83, -0.61, 0.0], [0.91, -0.37, 0.1], [-0.12, 0.87, -0.05]], dtype=DT)
    return Meshes.single(v, torch.tensor([[0, 1, 2]]))


def _camera(size: int = 16) -> Cameras:
    return look_at(torch.tensor([0.05, 0.03, -3.0], dtype=DT), image_size=(size, size), fov=40.0)


def test_smoke() -> None:
    mesh, cams = cube(dtype=DT), _camera(8)
    assert _silhouette(mesh, cams).shape == (1, 8, 8, 1)


def test_shape() -> None:
    mesh = Meshes.join([cube(dtype=DT).geometry(), icosphere(1, dtype=DT)])
    cams = look_at(torch.tensor([[0.1, 0.2, -3.0], [2.0, 1.0, 2.0]], dtype=DT), image_size=(9, 11), fov=50.0)
    fr = rasterize(mesh, cams)
    color = torch.rand(2, 9, 11, 3, dtype=DT)
    assert antialias(color, fr, mesh, cams).shape == (2, 9, 11, 3)
    assert antialias(color, fr, mesh, cams, neighbors=edge_neighbors(mesh)).shape == (2, 9, 11, 3)


def test_edge_neighbors() -> None:
    nb = edge_neighbors(cube())
    assert bool((nb >= 0).all())  # closed mesh: every edge has a neighbour
    for f in range(12):
        for k in range(3):
            g = int(nb[f, k])
            a, b = cube().faces[f, (k + 1) % 3], cube().faces[f, (k + 2) % 3]
            assert {int(a), int(b)} <= set(cube().faces[g].tolist()) and g != f
    open_mesh = Meshes.single(torch.rand(4, 3), torch.tensor([[0, 1, 2], [0, 2, 3]]))
    assert sorted(edge_neighbors(open_mesh).flatten().tolist()) == [-1, -1, -1, -1, 0, 1]


def test_coverage_is_closer_to_pixel_area_than_hard_mask() -> None:
    mesh, cams = _tilted_triangle(), _camera(24)
    truth = _supersampled_coverage(mesh, cams, 16)
    fr = rasterize(mesh, cams)
    hard_err = (fr.mask - truth).abs().sum()
    aa_err = (antialias(fr.mask, fr, mesh, cams) - truth).abs().sum()
    assert float(aa_err) < 0.5 * float(hard_err)


def test_straight_edge_coverage_is_exact() -> None:
    # a large square whose left edge is vertical at u = 3.3: pixel column 3 is 70% covered
    cams = Cameras(
        torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 10.0, torch.tensor([0.0, 0.0], dtype=DT), (6, 8)
    )
    x0 = 3.3 / 10 * 2.0
    v = torch.tensor([[x0, -5, 2], [x0, 5, 2], [50, 5, 2], [50, -5, 2]], dtype=DT)
    mesh = Meshes.single(v, torch.tensor([[0, 1, 2], [0, 2, 3]]))
    sil = _silhouette(mesh, cams)[0, :, :, 0]
    torch.testing.assert_close(sil[:, 3], torch.full((6,), 0.7, dtype=DT))
    torch.testing.assert_close(sil[:, 2], torch.zeros(6, dtype=DT))
    torch.testing.assert_close(sil[:, 4:], torch.ones(6, 4, dtype=DT))


def test_hard_render_has_no_visibility_gradient_but_antialias_does() -> None:
    mesh, cams = _tilted_triangle(), _camera()
    verts = mesh.verts.clone().requires_grad_()
    fr = rasterize(mesh.with_verts(verts), cams)
    assert not fr.mask.requires_grad  # visibility is piecewise constant: no gradient path at all
    _silhouette(mesh.with_verts(verts), cams).sum().backward()
    assert verts.grad is not None and float(verts.grad.abs().sum()) > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_finite_differences(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    mesh = icosphere(1, dtype=DT)
    mesh = mesh.with_verts(mesh.verts * (1 + 0.2 * torch.rand(mesh.verts.shape, dtype=DT, generator=g)))
    cams = look_at(torch.tensor([0.3, 0.4, -3.0], dtype=DT), image_size=(20, 20), fov=45.0)
    color = torch.rand(1, 20, 20, 3, dtype=DT, generator=g)
    weights = torch.rand(1, 20, 20, 3, dtype=DT, generator=g)
    ids = rasterize(mesh, cams).face_id

    def loss(v: torch.Tensor) -> torch.Tensor:
        fr = rasterize(mesh.with_verts(v), cams)
        return (antialias(color * fr.mask, fr, mesh.with_verts(v), cams) * weights).sum()

    verts = mesh.verts.clone().requires_grad_()
    loss(verts).backward()
    assert verts.grad is not None
    h = 1e-6
    checked = 0
    for idx in torch.randperm(verts.numel(), generator=g)[:40].tolist():
        dv = torch.zeros(verts.numel(), dtype=DT)
        dv[idx] = h
        plus, minus = mesh.verts + dv.reshape(-1, 3), mesh.verts - dv.reshape(-1, 3)
        if not (
            torch.equal(rasterize(mesh.with_verts(plus), cams).face_id, ids)
            and torch.equal(rasterize(mesh.with_verts(minus), cams).face_id, ids)
        ):
            continue
        fd = (loss(plus) - loss(minus)) / (2 * h)
        assert abs(float(fd) - float(verts.grad.flatten()[idx])) < 1e-5 * max(1.0, abs(float(fd)))
        checked += 1
    assert checked >= 30


def test_inverse_pose_from_silhouette() -> None:
    # recover a small rotation and translation of an irregular closed mesh from its silhouette
    g = torch.Generator().manual_seed(0)
    base = icosphere(2, dtype=DT)
    base = base.with_verts(
        base.verts
        * torch.tensor([1.0, 0.6, 0.8], dtype=DT)
        * (1 + 0.1 * torch.rand(base.verts.shape, dtype=DT, generator=g))
    )
    cams = look_at(torch.tensor([[0.0, 0.0, -3.0], [3.0, 0.0, 0.0]], dtype=DT), image_size=(32, 32), fov=45.0)

    def posed(rotvec: torch.Tensor, shift: torch.Tensor) -> Meshes:
        return base.with_verts(base.verts @ axis_angle_to_matrix(rotvec).T + shift)

    true_r, true_t = torch.tensor([0.15, -0.1, 0.2], dtype=DT), torch.tensor([0.1, -0.08, 0.05], dtype=DT)
    target = _silhouette(posed(true_r, true_t), cams).detach()
    rotvec = torch.zeros(3, dtype=DT, requires_grad=True)
    shift = torch.zeros(3, dtype=DT, requires_grad=True)
    opt = torch.optim.Adam([rotvec, shift], lr=0.01)
    for _ in range(150):
        loss = ((_silhouette(posed(rotvec, shift), cams) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((shift.detach() - true_t).norm()) < 0.02
    assert float((rotvec.detach() - true_r).norm()) < 0.05
    assert math.isfinite(float(loss.detach()))


def test_exception() -> None:
    mesh, cams = cube(dtype=DT), _camera(8)
    fr = rasterize(mesh, cams)
    with pytest.raises(ValueError, match="color must have shape"):
        antialias(torch.zeros(1, 7, 8, 1, dtype=DT), fr, mesh, cams)
    with pytest.raises(ValueError, match="neighbors must have shape"):
        antialias(fr.mask, fr, mesh, cams, neighbors=torch.zeros(3, 3, dtype=torch.int64))


def test_neighbors_are_cached_per_faces_tensor() -> None:
    from gradiance.mesh.antialias import cached_edge_neighbors

    mesh = icosphere(1)
    first = cached_edge_neighbors(mesh)
    assert cached_edge_neighbors(mesh.with_verts(mesh.verts * 2)) is first  # same faces, same topology
    assert torch.equal(first, edge_neighbors(mesh))
    other = icosphere(1)  # equal topology but another faces tensor: computed anew, equal values
    assert cached_edge_neighbors(other) is not first and torch.equal(cached_edge_neighbors(other), first)


def _slanted_edge(shift: float, angle: float) -> tuple[Meshes, Cameras]:
    """A large triangle whose right edge, ``angle`` degrees from vertical, crosses row 8 of a 16 x 16
    orthographic view (1 unit = 1 pixel) at column ``8 + shift``."""
    a = math.radians(angle)
    top, bottom = (shift - 20 * math.sin(a), -20 * math.cos(a)), (shift + 20 * math.sin(a), 20 * math.cos(a))
    v = torch.tensor([[*top, 1.0], [*bottom, 1.0], [shift - 30.0, 0.0, 1.0]], dtype=DT)
    cams = Cameras(
        torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 1.0, (8.0, 8.0), (16, 16), 0.0, 10.0, "orthographic"
    )
    return Meshes.single(v, torch.tensor([[0, 1, 2]])), cams


@pytest.mark.parametrize("angle", [15.0, 30.0, 45.0, 60.0, 75.0])
def test_slanted_edge_gradient_matches_the_pixel_area_derivative(angle: float) -> None:
    """Moving a slanted silhouette edge sideways: the derivative of the antialiased coverage is close to
    that of the pixel-area coverage. An edge that both row and column pixel pairs cross is blended by
    one direction only; blending it in both doubled this derivative."""
    shift = torch.tensor(0.0, dtype=DT, requires_grad=True)
    mesh, cams = _slanted_edge(0.3, angle)
    moved = mesh.with_verts(mesh.verts + shift * torch.tensor([1.0, 0.0, 0.0], dtype=DT))
    (ours,) = torch.autograd.grad(_silhouette(moved, cams).sum(), shift)
    h = 0.25  # the covered area is linear in the shift; a wide step averages out the sub-sample grid
    area = [float(_supersampled_coverage(*_slanted_edge(0.3 + s, angle), 32).sum()) for s in (h, -h)]
    reference = (area[0] - area[1]) / (2 * h)
    assert float(ours) == pytest.approx(reference, rel=0.1)  # 0.98-1.07 here; twice that before
