"""Voxelisation against the winding number, the visual hull, IoU and bad input."""

from __future__ import annotations

import pytest
import torch

from gradiance.core import Meshes, look_at
from gradiance.core.primitives import cube, icosphere, torus
from gradiance.eval.metrics import winding_number
from gradiance.eval.voxels import _RAY_SHIFT, fill_enclosed, visual_hull, voxel_centres, voxel_iou, voxelize
from gradiance.mesh import render


def _brute_force(mesh: Meshes, R: int) -> torch.Tensor:
    """Occupancy by the generalised winding number at every (ray-shifted) cell centre, point by point."""
    h = 1.0 / R
    pts = voxel_centres(R, dtype=torch.float64).reshape(-1, 3).clone()
    pts[:, 0] += _RAY_SHIFT[0] * h
    pts[:, 1] += _RAY_SHIFT[1] * h
    return (winding_number(mesh.geometry().to(dtype=torch.float64), pts) > 0.5).reshape(R, R, R)


def _shifted(mesh: Meshes, offset: tuple[float, float, float], scale: float = 1.0) -> Meshes:
    return mesh.with_verts(mesh.verts * scale + torch.tensor(offset))


def _union(*parts: Meshes) -> Meshes:
    verts, faces, n = [], [], 0
    for p in parts:
        verts.append(p.verts)
        faces.append(p.faces + n)
        n += p.verts.shape[0]
    return Meshes.single(torch.cat(verts), torch.cat(faces))


@pytest.mark.parametrize(
    "mesh",
    [
        _shifted(icosphere(3, 0.3), (0.1, 0.05, -0.13)),
        _shifted(torus(0.3, 0.1, 24, 12), (0.02, -0.1, 0.0)),
        _shifted(cube(0.5), (0.0, 0.0, 0.1)),  # faces on cell boundaries and axis-aligned edges
    ],
)
def test_matches_winding_number_loop(mesh: Meshes) -> None:
    got = voxelize(mesh, 16)[0]
    want = _brute_force(mesh, 16)
    assert got.shape == (16, 16, 16) and got.dtype == torch.bool
    assert int((got != want).sum()) == 0


def test_overlapping_parts_are_a_union_and_batches_split() -> None:
    a = _shifted(icosphere(2, 0.25), (-0.1, 0.0, 0.0))
    b = _shifted(cube(0.4).geometry(), (0.12, 0.05, 0.0))
    both = voxelize(_union(a, b), 16)[0]
    torch.testing.assert_close(both, voxelize(a, 16)[0] | voxelize(b, 16)[0])
    batch = voxelize(Meshes.join([a, b]), 16)
    assert batch.shape == (2, 16, 16, 16)
    torch.testing.assert_close(batch[1], voxelize(b, 16)[0])


def test_chunking_does_not_change_the_result() -> None:
    mesh = _shifted(icosphere(3, 0.35), (0.05, 0.0, 0.0))
    torch.testing.assert_close(voxelize(mesh, 24, max_pairs=50), voxelize(mesh, 24))


def test_visual_hull_contains_the_solid_and_is_tight_for_a_sphere() -> None:
    mesh = icosphere(3, 0.3)
    eyes = torch.tensor([[0.0, 0.0, 2.5], [2.5, 0.0, 0.0], [0.0, 2.5, 0.01], [1.5, 1.5, 1.5]])
    cams = look_at(eyes, image_size=(96, 96), fov=30.0)
    alpha = render(mesh, cams).alpha
    hull = visual_hull(alpha, cams, 16)
    solid = voxelize(mesh, 16)[0]
    assert bool((solid & ~hull).sum() <= 2)  # pixel-centre sampling may clip a cell at the rim
    assert float(voxel_iou(hull[None], solid[None])[0]) > 0.85


def test_iou_known_values_and_exceptions() -> None:
    a = torch.zeros(2, 4, 4, 4, dtype=torch.bool)
    b = a.clone()
    a[0, :2], b[0, 1:3] = True, True
    torch.testing.assert_close(voxel_iou(a, b), torch.tensor([1 / 3, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="resolution"):
        voxelize(cube(), 0)
    with pytest.raises(ValueError, match="hi"):
        voxelize(cube(), 8, 0.5, -0.5)
    with pytest.raises(TypeError, match="meshes"):
        voxelize(torch.zeros(3, 3), 8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a and b"):
        voxel_iou(a, b[:1])
    cams = look_at(torch.tensor([[0.0, 0.0, 2.0]]), image_size=(8, 8))
    with pytest.raises(ValueError, match="alpha"):
        visual_hull(torch.zeros(1, 8, 9, 1), cams, 4)


def test_fill_enclosed() -> None:
    shell = torch.zeros(7, 7, 7, dtype=torch.bool)
    shell[1:6, 1:6, 1:6] = True
    shell[2:5, 2:5, 2:5] = False  # a closed hollow box: its cavity gets filled
    filled = fill_enclosed(shell)
    assert filled[1:6, 1:6, 1:6].all() and filled.sum() == 125
    opened = shell.clone()
    opened[3, 3, 1] = False  # a hole in the wall: the cavity is reachable and stays empty
    assert torch.equal(fill_enclosed(opened), opened)
    diagonal = torch.ones(3, 3, 3, dtype=torch.bool)
    diagonal[1, 1, 1] = False  # enclosed on all six faces
    assert fill_enclosed(diagonal).all()
    with pytest.raises(ValueError, match="occupied must be an"):
        fill_enclosed(torch.zeros(2, 2))
