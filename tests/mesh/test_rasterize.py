"""rasterize against a brute-force per-pixel ray-triangle loop, gradients, batches and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.backends.numba import numba_available
from gradiance.backends.torch.rasterize import RasterBudgetError
from gradiance.core.cameras import Cameras, look_at
from gradiance.core.meshes import Meshes
from gradiance.core.primitives import cube, icosphere
from gradiance.mesh.rasterize import Fragments, RasterSettings, rasterize

DT = torch.float64
# every z-buffer is checked against the brute-force loop; numba's runs where numba is installed
BACKENDS = ["torch", "numba"] if numba_available() else ["torch"]


def brute_force(meshes: Meshes, cameras: Cameras, K: int = 1, cull: bool = False) -> tuple[list, list, list]:
    """Per camera, per pixel, per face: intersect the pixel-centre ray with the face's plane (in camera
    space), keep hits inside the face (barycentrics >= 0) with depth in [near, far], sort by (depth, face)."""
    H, W = cameras.image_size
    ids, barys, depths = [], [], []
    for b in range(len(cameras)):
        mesh = meshes[b] if len(meshes) > 1 else meshes[0]
        offset = int(meshes.face_offsets[b]) if len(meshes) > 1 else 0
        R, t = cameras.R[b], cameras.t[b]
        fx, fy = cameras.focal_t[b].tolist()
        cx, cy = cameras.principal_t[b].tolist()
        near, far = float(cameras.near_t[b]), float(cameras.far_t[b])
        cam = mesh.verts.to(DT) @ R.T.to(DT) + t.to(DT)
        img_ids, img_bary, img_depth = [], [], []
        for i in range(H):
            for j in range(W):
                u, v = j + 0.5, i + 0.5
                if cameras.projection == "perspective":
                    origin = torch.zeros(3, dtype=DT)
                    direction = torch.tensor([(u - cx) / fx, (v - cy) / fy, 1.0], dtype=DT)
                else:
                    origin = torch.tensor([(u - cx) / fx, (v - cy) / fy, 0.0], dtype=DT)
                    direction = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
                hits = []
                for f, (a, bb, c) in enumerate(mesh.faces.tolist()):
                    A, B_, C = cam[a], cam[bb], cam[c]
                    normal = torch.linalg.cross(B_ - A, C - A)
                    if cull and float(normal @ (A - origin)) >= 0:
                        continue  # back-facing: the normal points away from the viewer
                    M = torch.stack([B_ - A, C - A, -direction], 1)
                    if abs(float(torch.linalg.det(M))) < 1e-12:
                        continue
                    s1, s2, s = torch.linalg.solve(M, origin - A).tolist()
                    w = [1 - s1 - s2, s1, s2]
                    depth = float(origin[2] + s * direction[2])
                    if min(w) >= 0 and near <= depth <= far:
                        hits.append((depth, f + offset, w))
                hits.sort(key=lambda h: (h[0], h[1]))
                hits = hits[:K] + [(0.0, -1, [0.0, 0.0, 0.0])] * (K - len(hits[:K]))
                img_ids.append([h[1] for h in hits])
                img_bary.append([h[2] for h in hits])
                img_depth.append([h[0] for h in hits])
        ids.append(img_ids)
        barys.append(img_bary)
        depths.append(img_depth)
    return ids, barys, depths


def assert_matches_brute_force(
    fr: Fragments, meshes: Meshes, cameras: Cameras, K: int = 1, cull: bool = False, max_mismatch: int = 0
) -> None:
    ids, barys, depths = brute_force(meshes, cameras, K, cull)
    B, (H, W) = len(cameras), cameras.image_size
    want_ids = torch.tensor(ids).reshape(B, H, W, K)
    mismatch = int((fr.face_id != want_ids).sum())
    assert mismatch <= max_mismatch, f"{mismatch} face ids differ from the brute-force loop"
    same = fr.face_id == want_ids
    want_bary = torch.tensor(barys, dtype=DT).reshape(B, H, W, K, 3)
    want_depth = torch.tensor(depths, dtype=DT).reshape(B, H, W, K)
    torch.testing.assert_close(fr.bary.to(DT)[same], want_bary[same], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fr.depth.to(DT)[same], want_depth[same], atol=1e-5, rtol=1e-5)


def _random_scene(seed: int, n_faces: int = 6) -> Meshes:
    g = torch.Generator().manual_seed(seed)
    verts = (torch.rand(n_faces * 3, 3, generator=g, dtype=DT) - 0.5) * torch.tensor(
        [2.0, 2.0, 1.0], dtype=DT
    )
    faces = torch.arange(n_faces * 3).reshape(n_faces, 3)
    return Meshes.single(verts, faces)


def _cameras(B: int = 2, size: tuple[int, int] = (9, 11), projection: str = "perspective") -> Cameras:
    eyes = torch.tensor([[0.3, 0.2, -3.0], [-1.5, 1.0, -2.5], [2.0, -0.5, 2.0]], dtype=DT)[:B]
    cams = look_at(eyes, image_size=size, fov=45.0, near=0.1, far=10.0)
    if projection == "orthographic":
        cams = Cameras(cams.R, cams.t, 4.0, None, size, -5.0, 10.0, "orthographic")
    return cams


def test_smoke() -> None:
    fr = rasterize(cube(), look_at(torch.tensor([0.0, 0.0, -4.0]), image_size=(8, 8)))
    assert fr.face_id.shape == (1, 8, 8, 1) and int((fr.face_id >= 0).sum()) > 0


def test_shape() -> None:
    meshes = Meshes.join([cube().geometry(), icosphere(1)])
    cams = look_at(torch.tensor([[0.0, 0.0, -4.0], [1.0, 1.0, 3.0]]), image_size=(6, 7))
    fr = rasterize(meshes, cams, RasterSettings(faces_per_pixel=2, bary_derivatives=True))
    assert (
        fr.face_id.shape == (2, 6, 7, 2)
        and fr.bary.shape == (2, 6, 7, 2, 3)
        and fr.depth.shape == (2, 6, 7, 2)
    )
    assert fr.bary_derivs is not None and fr.bary_derivs.shape == (2, 6, 7, 2, 3, 2)
    assert fr.mask.shape == (2, 6, 7, 1)
    # paired meshes: camera 1 only sees faces of mesh 1
    seen = fr.face_id[1][fr.face_id[1] >= 0]
    assert bool((seen >= 12).all())
    # one mesh broadcast over cameras
    assert rasterize(cube(), cams).face_id.shape == (2, 6, 7, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_brute_force(seed: int, projection: str, backend: str) -> None:
    meshes = _random_scene(seed)
    cams = _cameras(2, projection=projection)
    fr = rasterize(meshes, cams, backend=backend)
    assert_matches_brute_force(fr, meshes, cams)


@pytest.mark.parametrize("K", [1, 3])
def test_packed_nearest_layer_equals_the_images(K: int) -> None:
    meshes = _random_scene(4, n_faces=8)
    cams = _cameras(2)
    fr = rasterize(meshes, cams, RasterSettings(faces_per_pixel=K, bary_derivatives=True))
    near = fr.nearest
    assert near is not None and near.source is fr.bary and near.bary_derivs is not None
    covered = torch.nonzero(fr.face_id[..., 0].reshape(-1) >= 0).flatten()
    assert torch.equal(near.index, covered) and covered.numel() > 0
    assert torch.equal(near.face, fr.face_id[..., 0].reshape(-1)[covered])
    assert torch.equal(near.bary, fr.bary[..., 0, :].reshape(-1, 3)[covered])
    assert fr.bary_derivs is not None
    assert torch.equal(near.bary_derivs, fr.bary_derivs[..., 0, :, :].reshape(-1, 3, 2)[covered])


@pytest.mark.parametrize("K", [2, 4])
@pytest.mark.parametrize("backend", BACKENDS)
def test_k_layers_match_brute_force(K: int, backend: str) -> None:
    meshes = _random_scene(3, n_faces=8)
    cams = _cameras(2)
    fr = rasterize(meshes, cams, RasterSettings(faces_per_pixel=K, max_pairs_per_chunk=37), backend=backend)
    assert_matches_brute_force(fr, meshes, cams, K=K)
    assert bool(
        (fr.depth[..., 1:][fr.face_id[..., 1:] >= 0] >= fr.depth[..., :-1][fr.face_id[..., 1:] >= 0]).all()
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_backface_culling_matches_brute_force(backend: str) -> None:
    meshes = _random_scene(4, n_faces=8)
    cams = _cameras(2)
    fr = rasterize(meshes, cams, RasterSettings(cull_backfaces=True), backend=backend)
    assert_matches_brute_force(fr, meshes, cams, cull=True)
    # a closed convex mesh looks the same with and without culling
    c, culled = cube(dtype=DT), RasterSettings(cull_backfaces=True)
    assert torch.equal(
        rasterize(c, cams, backend=backend).face_id, rasterize(c, cams, culled, backend=backend).face_id
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_near_plane_clipping_matches_brute_force(backend: str) -> None:
    # a large triangle with two corners behind the camera and one in front, and a quad crossing the near plane
    verts = torch.tensor(
        [
            [-0.4, -0.3, 0.5],
            [3.0, 0.5, -2.0],
            [-1.0, 2.0, -1.0],
            [-2, 0.4, 0.05],
            [2, 0.4, 0.05],
            [2, 0.6, 3],
            [-2, 0.6, 3],
        ],
        dtype=DT,
    )
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [3, 5, 6]])
    meshes = Meshes.single(verts, faces)
    cams = Cameras(torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 6.0, None, (10, 12), near=0.2, far=5.0)
    fr = rasterize(meshes, cams, RasterSettings(faces_per_pixel=2), backend=backend)
    assert_matches_brute_force(fr, meshes, cams, K=2)
    assert int((fr.face_id == 0).sum()) > 0 and int((fr.face_id >= 1).sum()) > 0
    assert bool((fr.depth[fr.face_id >= 0] >= 0.2).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_go_to_the_smaller_face_id(backend: str) -> None:
    v = torch.tensor([[-1.0, -1, 2], [1, -1, 2], [0, 1, 2]], dtype=DT)
    meshes = Meshes.single(torch.cat([v, v]), torch.tensor([[3, 4, 5], [0, 1, 2]]))
    cams = Cameras(torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 4.0, None, (6, 6))
    fr = rasterize(meshes, cams, RasterSettings(faces_per_pixel=2), backend=backend)
    covered = fr.face_id[..., 0] >= 0
    assert bool((fr.face_id[..., 0][covered] == 0).all()) and bool((fr.face_id[..., 1][covered] == 1).all())


def test_bary_derivatives_match_finite_differences() -> None:
    meshes = _random_scene(5)
    cams = _cameras(1, size=(8, 8))
    fr = rasterize(meshes, cams, RasterSettings(bary_derivatives=True))
    assert fr.bary_derivs is not None
    # shift the principal point by h: the pixel centre moves by -h in the image of the scene
    h = 1e-6
    for axis in (0, 1):
        shift = torch.zeros(2, dtype=DT)
        shift[axis] = -h
        moved = Cameras(
            cams.R, cams.t, cams.focal_t, cams.principal_t + shift, cams.image_size, cams.near_t, cams.far_t
        )
        fr2 = rasterize(meshes, moved)
        same = (fr2.face_id == fr.face_id)[..., 0] & (fr.face_id[..., 0] >= 0)
        fd = (fr2.bary - fr.bary)[..., 0, :][same] / h
        torch.testing.assert_close(fd, fr.bary_derivs[..., 0, :, axis][same], atol=1e-4, rtol=1e-4)


def test_gradcheck() -> None:
    meshes = _random_scene(6, n_faces=4)
    cams = _cameras(1, size=(6, 6))
    verts = meshes.verts.clone().requires_grad_()
    ids = rasterize(meshes, cams).face_id

    def f(v: torch.Tensor, t: torch.Tensor, focal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = Cameras(cams.R, t, focal, cams.principal_t, cams.image_size, cams.near_t, cams.far_t)
        fr = rasterize(meshes.with_verts(v), c)
        assert torch.equal(fr.face_id, ids)  # small steps keep visibility
        return fr.bary, fr.depth

    t = cams.t.clone().requires_grad_()
    focal = cams.focal_t.clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (verts, t, focal), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_and_far_away_geometry(backend: str) -> None:
    # zero-area and edge-on faces cover nothing; a mesh far larger than the image fills it; gradients finite
    verts = torch.tensor(
        [
            [0, 0, 2],
            [1, 1, 2],
            [2, 2, 2],
            [0, -1, 1],
            [0, 1, 3],
            [0, 0.5, 2],
            [-1e4, -1e4, 5],
            [1e4, -1e4, 5],
            [0, 1e4, 5],
        ],
        dtype=DT,
        requires_grad=True,
    )
    meshes = Meshes.single(verts, torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]]))
    cams = Cameras(torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 5.0, None, (5, 5))
    fr = rasterize(meshes, cams, backend=backend)
    assert bool((fr.face_id == 2).all())
    (fr.depth.sum() + fr.bary.sum()).backward()
    assert verts.grad is not None and bool(torch.isfinite(verts.grad).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_mesh_renders_background(backend: str) -> None:
    empty = Meshes.single(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64))
    fr = rasterize(empty, look_at(torch.tensor([0.0, 0.0, -3.0]), image_size=(4, 5)), backend=backend)
    assert bool((fr.face_id == -1).all()) and float(fr.depth.abs().sum()) == 0


def test_inverse_depth_fit() -> None:
    # recover a translation from a target depth map through barycentric/depth gradients
    mesh = icosphere(2, dtype=DT)
    cams = look_at(torch.tensor([0.0, 0.0, -4.0], dtype=DT), image_size=(24, 24), fov=40.0)
    target = rasterize(mesh.offset_verts(torch.tensor([0.0, 0.0, 0.3], dtype=DT).expand_as(mesh.verts)), cams)
    shift = torch.zeros(3, dtype=DT, requires_grad=True)
    opt = torch.optim.Adam([shift], lr=0.02)
    for _ in range(150):
        fr = rasterize(mesh.offset_verts(shift.expand_as(mesh.verts)), cams)
        both = (fr.face_id >= 0) & (target.face_id >= 0)
        loss = ((fr.depth - target.depth)[both] ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(float(shift.detach()[2]) - 0.3) < 0.02


def test_exception() -> None:
    cams = look_at(torch.tensor([0.0, 0.0, -3.0]), image_size=(4, 4))
    with pytest.raises(TypeError, match="meshes must be"):
        rasterize(torch.zeros(3, 3), cams)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cameras must be"):
        rasterize(cube(), "camera")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="faces_per_pixel"):
        RasterSettings(faces_per_pixel=0)
    with pytest.raises(ValueError, match="backend"):
        rasterize(cube(), cams, backend="cuda")
    with pytest.raises(ValueError, match="1 mesh or one per camera"):
        rasterize(Meshes.join([cube(), cube()]), cams)
    with pytest.raises(ValueError, match="distortion"):
        rasterize(cube(), Cameras(cams.R, cams.t, 4.0, None, (4, 4), distortion=torch.zeros(5)))
    big = look_at(torch.tensor([0.0, 0.0, -1.5]), image_size=(64, 64), fov=90.0)
    with pytest.raises(RasterBudgetError, match="max_pairs_per_chunk"):
        rasterize(cube(), big, RasterSettings(max_pairs_per_chunk=100), backend="torch")
    assert math.isfinite(float(rasterize(cube(), big).depth.sum()))
