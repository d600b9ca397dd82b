"""The numba z-buffer against the torch reference: the same face ids, pixel for pixel."""

from __future__ import annotations

import pytest
import torch

from gradiance.backends.numba import numba_available
from gradiance.core.cameras import Cameras, look_at
from gradiance.core.meshes import Meshes
from gradiance.core.primitives import icosphere
from gradiance.mesh.rasterize import RasterSettings, rasterize, visibility_backend
from tests.backends.scenes import bumpy_sphere, orbit

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")


def _assert_same_ids(meshes: Meshes, cams: Cameras, settings: RasterSettings) -> None:
    ref = rasterize(meshes, cams, settings, backend="torch")
    fast = rasterize(meshes, cams, settings, backend="numba")
    assert torch.equal(fast.face_id, ref.face_id), f"{int((fast.face_id != ref.face_id).sum())} ids differ"
    assert int((ref.face_id >= 0).sum()) > 0
    # the stages after visibility are shared, so everything else is equal too
    assert torch.equal(fast.bary, ref.bary) and torch.equal(fast.depth, ref.depth)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K", [1, 3])
def test_matches_reference(dtype: torch.dtype, K: int) -> None:
    meshes = bumpy_sphere(dtype)
    _assert_same_ids(meshes, orbit(3, 40, dtype), RasterSettings(faces_per_pixel=K))


@pytest.mark.parametrize("cull", [False, True])
def test_matches_reference_culled_and_orthographic(cull: bool) -> None:
    meshes = bumpy_sphere(torch.float32, seed=1)
    cams = orbit(2, 33, torch.float32)
    _assert_same_ids(meshes, cams, RasterSettings(faces_per_pixel=2, cull_backfaces=cull))
    ortho = Cameras(cams.R, cams.t, 14.0, None, cams.image_size, -5.0, 10.0, "orthographic")
    _assert_same_ids(meshes, ortho, RasterSettings(faces_per_pixel=2, cull_backfaces=cull))


def test_matches_reference_across_the_near_plane_and_paired_meshes() -> None:
    # the camera sits inside the sphere's shell: many faces are clipped by the near plane
    sphere = bumpy_sphere(torch.float64, seed=2)
    inside = look_at(
        torch.tensor([[0.0, 0.0, -0.9], [0.2, 0.1, 0.85]], dtype=torch.float64), image_size=(24, 20)
    )
    inside = Cameras(inside.R, inside.t, inside.focal_t, inside.principal_t, inside.image_size, 0.3, 5.0)
    _assert_same_ids(sphere, inside, RasterSettings(faces_per_pixel=2))
    paired = Meshes.join([sphere, icosphere(1, dtype=torch.float64)])
    _assert_same_ids(paired, inside, RasterSettings(faces_per_pixel=2))


def test_vertices_on_pixel_centres_tie_like_the_reference() -> None:
    # a fan of faces meeting at a vertex projected exactly onto a pixel centre, duplicated at equal depth
    cams = Cameras(torch.eye(3), torch.zeros(3), 4.0, (4.0, 4.0), (8, 8))
    ring = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]) * 0.5
    centre = torch.tensor([[0.5 / 4.0, 0.5 / 4.0]])  # the centre of pixel (4, 4) at depth 1
    xy = torch.cat([centre, ring + centre])
    verts = torch.cat([xy, torch.ones(5, 1)], 1)
    fan = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    meshes = Meshes.single(torch.cat([verts, verts]), torch.cat([fan, fan + 5]))
    _assert_same_ids(meshes, cams, RasterSettings(faces_per_pixel=3))


def test_exception() -> None:
    with pytest.raises(ValueError, match="backend"):
        visibility_backend("numba", torch.device("meta"))
    assert visibility_backend("auto", torch.device("cpu")) == "numba"
    assert visibility_backend("torch", torch.device("cpu")) == "torch"
