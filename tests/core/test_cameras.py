"""Camera conventions on known points, round trips, gradients and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core.cameras import Cameras, look_at, look_at_rotation
from gradiance.core.transforms import random_rotations

DT = torch.float64


def _random_cameras(B: int = 3, projection: str = "perspective", distortion: bool = False) -> Cameras:
    g = torch.Generator().manual_seed(0)
    R = random_rotations(B, dtype=DT, generator=g)
    t = torch.tensor([0.1, -0.2, 4.0], dtype=DT) + 0.1 * torch.randn(B, 3, dtype=DT, generator=g)
    focal = 50 + 10 * torch.rand(B, 2, dtype=DT, generator=g)
    principal = torch.tensor([30.0, 20.0], dtype=DT) + torch.rand(B, 2, dtype=DT, generator=g)
    dist = None
    if distortion:
        dist = torch.tensor([[-0.1, 0.02, 0.001, -0.002, 0.003]], dtype=DT).expand(B, 5)
    return Cameras(R, t, focal, principal, (40, 64), 0.1, 20.0, projection, dist)


def _points(n: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, dtype=DT, generator=g) - 0.5


def test_smoke() -> None:
    cams = look_at(torch.tensor([0.0, 0.0, -3.0]), image_size=(32, 48))
    pix, depth = cams.project(torch.zeros(1, 3))
    assert pix.shape == (1, 1, 2) and depth.shape == (1, 1)


def test_shape() -> None:
    cams = _random_cameras(4)
    assert len(cams) == 4
    assert cams.R.shape == (4, 3, 3) and cams.focal_t.shape == (4, 2) and cams.near_t.shape == (4,)
    pix, depth = cams.project(_points(7))
    assert pix.shape == (4, 7, 2) and depth.shape == (4, 7)
    assert cams.project(_points(7)[None].expand(4, 7, 3))[0].shape == (4, 7, 2)
    o, d = cams.rays()
    assert o.shape == (4, 40, 64, 3) and d.shape == (4, 40, 64, 3)
    assert cams.world_to_clip().shape == (4, 4, 4)
    assert cams.intrinsic_matrix().shape == (4, 3, 3)
    # unbatched inputs broadcast to one camera
    one = Cameras(torch.eye(3), torch.zeros(3), 100.0, None, (10, 20))
    assert len(one) == 1 and one.principal_t.tolist() == [[10.0, 5.0]]
    # a (B,) focal gives one focal length per camera
    per = Cameras(torch.eye(3), torch.zeros(3), torch.tensor([1.0, 2.0, 3.0]), None, (10, 20))
    assert per.focal_t.tolist() == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]


def test_optical_axis_lands_on_principal_point() -> None:
    cams = _random_cameras(3)
    centers = cams.camera_centers()
    axis = cams.R[:, 2]  # camera +z in world coordinates
    pts = (centers + 2.5 * axis)[:, None]
    pix, depth = cams.project(pts)
    torch.testing.assert_close(pix[:, 0], cams.principal_t)
    torch.testing.assert_close(depth[:, 0], torch.full((3,), 2.5, dtype=DT))


def test_look_at_puts_target_at_image_centre() -> None:
    eye = torch.tensor([[1.0, 2.0, 3.0], [-2.0, 0.5, -1.0], [0.0, 0.0, 5.0]], dtype=DT)
    at = torch.tensor([0.2, -0.1, 0.3], dtype=DT)
    cams = look_at(eye, at, image_size=(30, 50), fov=45.0)
    pix, depth = cams.project(at[None])
    torch.testing.assert_close(pix[:, 0], torch.tensor([[25.0, 15.0]] * 3, dtype=DT))
    torch.testing.assert_close(depth[:, 0], torch.linalg.vector_norm(eye - at, dim=-1))
    # world up projects upwards in the image (smaller v)
    up_pix, _ = cams.project((at + torch.tensor([0.0, 0.1, 0.0], dtype=DT))[None])
    assert bool((up_pix[:, 0, 1] < 15.0).all())
    # the vertical field of view spans the image height: a point at the edge of the view cone lands on row 0
    cam = look_at(torch.tensor([0.0, 0.0, -5.0], dtype=DT), image_size=(30, 50), fov=45.0)
    half = math.tan(math.radians(22.5)) * 5.0
    edge, _ = cam.project(torch.tensor([[0.0, half, 0.0]], dtype=DT))
    torch.testing.assert_close(edge[0, 0], torch.tensor([25.0, 0.0], dtype=DT))


def test_look_at_rotation_is_orthonormal() -> None:
    R = look_at_rotation(torch.randn(5, 3, dtype=DT) * 3)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=DT).expand(5, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(5, dtype=DT))


# Distortion is perspective-only (test_exception checks that orthographic cameras refuse it).
CASES = [("perspective", False), ("perspective", True), ("orthographic", False)]


@pytest.mark.parametrize(("projection", "distortion"), CASES)
def test_unproject_inverts_project(projection: str, distortion: bool) -> None:
    cams = _random_cameras(3, projection, distortion)
    pts = _points()
    pix, depth = cams.project(pts)
    back = cams.unproject(pix, depth)
    torch.testing.assert_close(back, pts[None].expand(3, -1, -1), atol=1e-9, rtol=0)


@pytest.mark.parametrize(("projection", "distortion"), CASES)
def test_rays_pass_through_pixel_centres(projection: str, distortion: bool) -> None:
    cams = _random_cameras(2, projection, distortion)
    origins, dirs = cams.rays()
    torch.testing.assert_close(torch.linalg.vector_norm(dirs, dim=-1), torch.ones(2, 40, 64, dtype=DT))
    for s in (0.5, 3.0):
        pts = (origins + s * dirs).reshape(2, -1, 3)
        pix, _ = cams.project(pts)
        i, j = torch.meshgrid(torch.arange(40, dtype=DT), torch.arange(64, dtype=DT), indexing="ij")
        centres = torch.stack([j + 0.5, i + 0.5], -1).reshape(1, -1, 2).expand(2, -1, -1)
        torch.testing.assert_close(pix, centres, atol=1e-8, rtol=0)


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
def test_world_to_clip_matches_project(projection: str) -> None:
    cams = _random_cameras(3, projection)
    pts = _points()
    clip = torch.cat([pts, torch.ones(len(pts), 1, dtype=DT)], -1) @ cams.world_to_clip().transpose(1, 2)
    ndc = clip[..., :3] / clip[..., 3:]
    H, W = cams.image_size
    pix = torch.stack([(ndc[..., 0] + 1) * W / 2, (ndc[..., 1] + 1) * H / 2], -1)
    expected, depth = cams.project(pts)
    torch.testing.assert_close(pix, expected)
    # z_ndc is -1 at the near plane and +1 at the far plane
    for z, want in ((cams.near_t, -1.0), (cams.far_t, 1.0)):
        p_cam = torch.stack([torch.zeros_like(z), torch.zeros_like(z), z], -1)[:, None]
        p_world = cams.camera_to_world(p_cam)
        c = torch.cat([p_world, torch.ones_like(p_world[..., :1])], -1) @ cams.world_to_clip().transpose(1, 2)
        torch.testing.assert_close(c[..., 2] / c[..., 3], torch.full((3, 1), want, dtype=DT))
    assert bool((depth > 0).all())


def test_intrinsics_round_trip() -> None:
    cams = _random_cameras(2)
    back = Cameras.from_K(cams.intrinsic_matrix(), cams.R, cams.t, cams.image_size, near=0.1, far=20.0)
    pts = _points()
    torch.testing.assert_close(back.project(pts)[0], cams.project(pts)[0])


def test_opengl_round_trip_and_known_pose() -> None:
    cams = _random_cameras(3)
    c2w = cams.to_opengl()
    back = Cameras.from_opengl(c2w, cams.image_size, focal=cams.focal_t, principal=cams.principal_t)
    torch.testing.assert_close(back.R, cams.R)
    torch.testing.assert_close(back.t, cams.t)
    # An OpenGL camera at (0, 0, 4) with identity rotation looks down -z at the origin; +y is up.
    c2w_gl = torch.eye(4, dtype=DT)
    c2w_gl[2, 3] = 4.0
    cam = Cameras.from_opengl(c2w_gl, (20, 20), fov=90.0)
    pix, depth = cam.project(torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=DT))
    torch.testing.assert_close(depth[0], torch.full((3,), 4.0, dtype=DT))
    torch.testing.assert_close(pix[0, 0], torch.tensor([10.0, 10.0], dtype=DT))
    assert float(pix[0, 1, 1]) < 10.0  # world +y is up: smaller row
    assert float(pix[0, 2, 0]) > 10.0  # world +x is right
    # fov 90 along x: focal = W / 2
    torch.testing.assert_close(cam.focal_t, torch.tensor([[10.0, 10.0]], dtype=DT))


def test_pytorch3d_round_trip_and_its_projection() -> None:
    cams = _random_cameras(3)
    p3d = cams.to_pytorch3d()
    H, W = cams.image_size
    # PyTorch3D's documented pipeline: X_view = X @ R + T (+x left, +y up); NDC = f * X_view / z + p with the
    # shorter side spanning [-1, 1]; screen u = W/2 - x_ndc * s, v = H/2 - y_ndc * s with s = min(H, W) / 2.
    pts = _points()
    view = pts[None] @ p3d["R"] + p3d["T"][:, None]
    ndc = p3d["focal_length"][:, None] * view[..., :2] / view[..., 2:] + p3d["principal_point"][:, None]
    s = min(H, W) / 2
    screen = torch.stack([W / 2 - ndc[..., 0] * s, H / 2 - ndc[..., 1] * s], -1)
    torch.testing.assert_close(screen, cams.project(pts)[0])
    back = Cameras.from_pytorch3d(
        p3d["R"], p3d["T"], p3d["focal_length"], p3d["principal_point"], cams.image_size, near=0.1, far=20.0
    )
    torch.testing.assert_close(back.project(pts)[0], cams.project(pts)[0])
    screen_cams = Cameras.from_pytorch3d(
        p3d["R"], p3d["T"], cams.focal_t, cams.principal_t, cams.image_size, in_ndc=False
    )
    torch.testing.assert_close(screen_cams.project(pts)[0], cams.project(pts)[0])


def test_distortion_matches_opencv_model() -> None:
    k = torch.tensor([[0.1, -0.05, 0.01, 0.02, 0.003]], dtype=DT)
    cam = Cameras(torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 100.0, None, (100, 100), distortion=k)
    x, y, z = 0.3, -0.2, 2.0
    xn, yn = x / z, y / z
    r2 = xn * xn + yn * yn
    radial = 1 + 0.1 * r2 - 0.05 * r2**2 + 0.003 * r2**3
    xd = xn * radial + 2 * 0.01 * xn * yn + 0.02 * (r2 + 2 * xn * xn)
    yd = yn * radial + 0.01 * (r2 + 2 * yn * yn) + 2 * 0.02 * xn * yn
    pix, _ = cam.project(torch.tensor([[x, y, z]], dtype=DT))
    torch.testing.assert_close(pix[0, 0], torch.tensor([100 * xd + 50, 100 * yd + 50], dtype=DT))


def test_indexing_and_to() -> None:
    cams = _random_cameras(4)
    sub = cams[1:3]
    assert len(sub) == 2
    torch.testing.assert_close(sub.R, cams.R[1:3])
    assert len(cams[torch.tensor([0, 3])]) == 2 and len(cams[2]) == 1
    assert len(cams[torch.tensor([True, False, True, True])]) == 3
    f32 = cams.to(dtype=torch.float32)
    assert f32.R.dtype == torch.float32 and f32.focal_t.dtype == torch.float32
    with pytest.raises(IndexError, match="Cameras"):
        cams[7]


def test_gradcheck() -> None:
    cams = _random_cameras(2, distortion=True)
    pts = _points(4).requires_grad_()
    R = cams.R.clone().requires_grad_()
    t = cams.t.clone().requires_grad_()
    f = cams.focal_t.clone().requires_grad_()
    c = cams.principal_t.clone().requires_grad_()
    k = cams.distortion.clone().requires_grad_()

    def proj(
        pts: torch.Tensor, R: torch.Tensor, t: torch.Tensor, f: torch.Tensor, c: torch.Tensor, k: torch.Tensor
    ):
        return Cameras(R, t, f, c, (40, 64), distortion=k).project(pts)[0]

    assert torch.autograd.gradcheck(proj, (pts, R, t, f, c, k))
    pix = proj(pts, R, t, f, c, k).detach().requires_grad_()
    depth = torch.rand(2, 4, dtype=DT) + 1

    def unproj(pix: torch.Tensor, depth: torch.Tensor, f: torch.Tensor, k: torch.Tensor):
        return Cameras(R.detach(), t.detach(), f, c.detach(), (40, 64), distortion=k).unproject(pix, depth)

    assert torch.autograd.gradcheck(unproj, (pix, depth.requires_grad_(), f, k))

    def clip(f: torch.Tensor, c: torch.Tensor, t: torch.Tensor):
        return Cameras(R.detach(), t, f, c, (40, 64), near=0.5, far=9.0).world_to_clip()

    assert torch.autograd.gradcheck(clip, (f, c, t))
    eye = torch.tensor([1.0, 2.0, 3.0], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: look_at(e, image_size=(8, 8)).rays()[1], (eye,))


def test_exception() -> None:
    R, t = torch.eye(3), torch.zeros(3)
    with pytest.raises(ValueError, match="image_size"):
        Cameras(R, t, 1.0, None, (0, 10))
    with pytest.raises(ValueError, match="image_size"):
        Cameras(R, t, 1.0, None, (10.5, 10))
    with pytest.raises(ValueError, match="focal"):
        Cameras(R, t, -1.0, None, (10, 10))
    with pytest.raises(ValueError, match="near"):
        Cameras(R, t, 1.0, None, (10, 10), near=0.0)
    with pytest.raises(ValueError, match="far"):
        Cameras(R, t, 1.0, None, (10, 10), near=2.0, far=1.0)
    with pytest.raises(ValueError, match="projection"):
        Cameras(R, t, 1.0, None, (10, 10), projection="fisheye")
    with pytest.raises(ValueError, match="finite"):
        Cameras(R, torch.tensor([0.0, float("nan"), 0.0]), 1.0, None, (10, 10))
    with pytest.raises(ValueError, match="t must have shape"):
        Cameras(R, torch.zeros(4), 1.0, None, (10, 10))
    with pytest.raises(ValueError, match="batch sizes"):
        Cameras(torch.eye(3).expand(2, 3, 3), torch.zeros(3, 3), 1.0, None, (10, 10))
    with pytest.raises(TypeError, match="R must be float"):
        Cameras(torch.eye(3, dtype=torch.int64), t, 1.0, None, (10, 10))
    with pytest.raises(ValueError, match="distortion"):
        Cameras(R, t, 1.0, None, (10, 10), projection="orthographic", distortion=torch.zeros(5))
    with pytest.raises(ValueError, match="skew"):
        Cameras.from_K(torch.tensor([[1.0, 0.1, 0], [0, 1, 0], [0, 0, 1]]), R, t, (10, 10))
    with pytest.raises(ValueError, match="up must not be parallel"):
        look_at(torch.tensor([0.0, 3.0, 0.0]), image_size=(10, 10))
    with pytest.raises(ValueError, match="at must differ"):
        look_at(torch.zeros(3), image_size=(10, 10))
    with pytest.raises(ValueError, match="fov"):
        look_at(torch.ones(3), image_size=(10, 10), fov=180.0)
    cams = Cameras(R, t, 1.0, None, (10, 10))
    with pytest.raises(ValueError, match="points must have shape"):
        cams.project(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="depth must have shape"):
        cams.unproject(torch.zeros(5, 2), torch.ones(4))
    with pytest.raises(ValueError, match="exactly one of fov"):
        Cameras.from_opengl(torch.eye(4), (10, 10))
    with pytest.raises(ValueError, match="cam_to_world"):
        Cameras.from_opengl(torch.eye(3), (10, 10), fov=60.0)


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
def test_upscaled_cameras_scale_pixel_coordinates(projection: str) -> None:
    cams = look_at(torch.tensor([[0.3, 0.2, 3.0], [-1.0, 0.5, 2.5]]), image_size=(6, 8), fov=40.0)
    if projection == "orthographic":
        cams = Cameras(cams.R, cams.t, 3.0, None, (6, 8), projection="orthographic")
    big = cams.upscaled(4)
    assert big.image_size == (24, 32) and big.projection == projection
    pts = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0)) * 0.3
    (uv, z), (uv4, z4) = cams.project(pts), big.project(pts)
    torch.testing.assert_close(uv4, 4 * uv)
    torch.testing.assert_close(z4, z)
    with pytest.raises(ValueError, match="factor"):
        cams.upscaled(0)
