"""Point splatting: shapes, errors, a brute-force per-pixel loop, gradients, an inverse problem, the eval
method."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from gradiance.backends.torch.rasterize import RasterBudgetError
from gradiance.core import Cameras, Lights, PointClouds, icosphere, look_at
from gradiance.core.lights import AmbientLight
from gradiance.eval.methods import eval_methods, get_method
from gradiance.points import (
    KERNELS,
    MAX_OPACITY,
    PointRasterSettings,
    PointRenderOutput,
    rasterize_points,
    render_points,
)

DT = torch.float64
MODES = ("alpha", "weighted_sum", "normalized_weighted_sum")
BG = (0.2, 0.3, 0.4)


def _cloud(n: int = 5, seed: int = 0, behind: bool = True) -> PointClouds:
    """``n`` coloured points near the origin with world radii 0.3-0.6, plus (``behind``) one point behind
    both cameras of ``_cameras`` and one exactly on camera 0's centre (both culled)."""
    g = torch.Generator().manual_seed(seed)
    pts = (torch.rand(n, 3, generator=g, dtype=DT) - 0.5) * 1.6
    colors = torch.rand(n, 3, generator=g, dtype=DT)
    radii = 0.3 + 0.3 * torch.rand(n, generator=g, dtype=DT)
    if behind:
        pts = torch.cat([pts, torch.tensor([[0.0, 0.0, 3.5], [0.0, 0.0, 3.0]], dtype=DT)])
        colors = torch.cat([colors, torch.ones(2, 3, dtype=DT)])
        radii = torch.cat([radii, torch.full((2,), 0.5, dtype=DT)])
    return PointClouds.from_list([pts], colors=[colors], radii=[radii])


def _cameras(B: int = 2, size: tuple[int, int] = (8, 8), projection: str = "perspective") -> Cameras:
    eyes = torch.tensor([[0.0, 0.0, 3.0], [0.7, 0.4, 2.8], [-0.5, 0.2, 3.1]], dtype=DT)[:B]
    cams = look_at(eyes, image_size=size, fov=40.0)
    if projection == "orthographic":
        cams = replace(cams, projection="orthographic", focal=cams.focal_t / 3.0)
    return cams


def test_smoke() -> None:
    out = render_points(_cloud(), _cameras(), background=BG)
    assert isinstance(out, PointRenderOutput)
    assert torch.isfinite(out.image).all() and (out.alpha > 0).any() and (out.alpha < 1e-12).any()
    assert (out.point_id >= 0).any() and (out.point_id < 5).all()  # the culled points 5 and 6 never show
    f32 = torch.float32
    single = render_points(_cloud().to(dtype=f32), _cameras().to(dtype=f32), background=BG)
    assert single.image.dtype == torch.float32
    torch.testing.assert_close(single.image, out.image.float(), atol=1e-5, rtol=1e-4)
    assert torch.equal(single.point_id, out.point_id)


@pytest.mark.parametrize("case", ["unbatched", "broadcast", "paired"])
def test_shape(case: str) -> None:
    B = {"unbatched": 1, "broadcast": 3, "paired": 2}[case]
    cams = _cameras(B, size=(6, 9))
    if case == "paired":  # packed clouds of different sizes, cloud n seen by camera n only
        a, b = _cloud(5, 1, behind=False), _cloud(3, 2, behind=False)
        clouds = PointClouds.join([a, b])
        out = render_points(clouds, cams, features=torch.rand(8, 4, dtype=DT))
        assert out.image.shape == (2, 6, 9, 4)
        ids = out.point_id[1]
        assert ((ids == -1) | (ids >= 5)).all() and (out.point_id[0] < 5).all()
        torch.testing.assert_close(out.alpha[1:], render_points(b, cams[1]).alpha)
        return
    out = render_points(_cloud(), cams)
    for t, c in ((out.image, 3), (out.alpha, 1), (out.depth, 1), (out.point_id, 1)):
        assert t.shape == (B, 6, 9, c)
    assert out.point_id.dtype == torch.int64
    for b in range(B):  # broadcasting equals rendering each camera alone
        one = render_points(_cloud(), cams[b])
        torch.testing.assert_close(out.image[b : b + 1], one.image)
        torch.testing.assert_close(out.point_id[b : b + 1], one.point_id)


def test_exception() -> None:
    cloud, cams = _cloud(), _cameras()
    nan = cloud.points.clone()
    nan[0, 0] = math.nan
    with pytest.raises(ValueError, match="points contains NaN"):
        render_points(cloud.with_points(nan), cams)
    with pytest.raises(ValueError, match="radii must be positive"):
        render_points(replace(cloud, radii=torch.zeros_like(cloud.radii), validate=False), cams)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="radii contains NaN"):
        render_points(replace(cloud, radii=torch.full_like(cloud.radii, math.nan), validate=False), cams)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no radii"):
        render_points(replace(cloud, radii=None), cams)
    with pytest.raises(ValueError, match="colors contains NaN"):
        render_points(replace(cloud, colors=torch.full_like(cloud.colors, math.nan)), cams)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="features"):
        render_points(cloud, cams, features=torch.ones(3, 3, dtype=DT))
    with pytest.raises(ValueError, match="features contains NaN"):
        render_points(cloud, cams, features=torch.full((7, 2), math.nan, dtype=DT))
    with pytest.raises(TypeError, match="features"):
        render_points(cloud, cams, features=torch.ones(7, 3))  # float32 features, float64 points
    with pytest.raises(ValueError, match="background"):
        render_points(cloud, cams, background=(0.0, 1.0))
    with pytest.raises(ValueError, match="backend"):
        render_points(cloud, cams, backend="triton")
    with pytest.raises(ValueError, match="compositing"):
        render_points(cloud, cams, compositing="max")
    with pytest.raises(ValueError, match="pointclouds must hold 1 cloud or one per camera"):
        render_points(PointClouds.join([cloud, cloud, cloud]), cams)
    with pytest.raises(TypeError, match="pointclouds"):
        render_points(cloud.points, cams)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="float32"):
        render_points(cloud, cams.to(dtype=torch.float32))
    with pytest.raises(ValueError, match="distortion"):
        render_points(cloud, replace(cams, distortion=torch.zeros(5, dtype=DT)))
    with pytest.raises(RasterBudgetError, match=r"PointRasterSettings\.max_pairs_per_chunk"):
        render_points(cloud, cams, PointRasterSettings(max_pairs_per_chunk=2))
    for kw in (
        {"radius": 0.0},
        {"radius": -1.0},
        {"radius": math.nan},
        {"radius_mode": "ndc"},
        {"kernel": "box"},
        {"points_per_pixel": 0},
        {"max_pairs_per_chunk": 0},
    ):
        with pytest.raises(ValueError, match=next(iter(kw))):
            PointRasterSettings(**kw)  # type: ignore[arg-type]


def test_culled_points_give_no_nan() -> None:
    """Points behind the camera, on its centre and beyond far are culled: no fragments, finite gradients."""
    cams = _cameras(1)
    pts = torch.tensor([[0.0, 0.0, 3.0], [0.1, 0.0, 3.5], [0.0, 0.0, -200.0], [0.0, 0.0, 0.0]], dtype=DT)
    pts.requires_grad_()
    radii = torch.full((4,), 0.3, dtype=DT, requires_grad=True)
    out = render_points(PointClouds.from_list([pts], radii=[radii]), cams)
    assert set(out.fragments.point.tolist()) == {3}
    (out.image.sum() + out.depth.sum()).backward()
    assert pts.grad is not None and radii.grad is not None
    assert torch.isfinite(pts.grad).all() and torch.isfinite(radii.grad).all()
    assert (pts.grad[:3] == 0).all() and (radii.grad[:3] == 0).all()


def brute_force(
    cloud: PointClouds, cams: Cameras, s: PointRasterSettings, mode: str, bg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per camera and pixel, loop over every point: cull, footprint, kernel, sort, composite."""
    B, (H, W) = len(cams), cams.image_size
    image, alpha = torch.zeros(B, H, W, 3, dtype=DT), torch.zeros(B, H, W, 1, dtype=DT)
    depth, ids = torch.zeros(B, H, W, 1, dtype=DT), torch.full((B, H, W, 1), -1)
    assert cloud.colors is not None and cloud.radii is not None
    for b in range(B):
        uv, z = cams[b].project(cloud.points)
        f = float(cams.focal_t[b].mean())
        for i in range(H):
            for j in range(W):
                frags = []
                for p in range(cloud.points.shape[0]):
                    zp = float(z[0, p])
                    if not float(cams.near_t[b]) <= zp <= float(cams.far_t[b]):
                        continue
                    r = s.radius if s.radius is not None else float(cloud.radii[p])
                    if s.radius_mode == "world":
                        r = f * r / zp if cams.projection == "perspective" else f * r
                    d2 = float((uv[0, p, 0] - j - 0.5) ** 2 + (uv[0, p, 1] - i - 0.5) ** 2)
                    if d2 >= r * r:
                        continue
                    k = {"disk": 1.0, "quadratic": 1 - d2 / r**2, "gaussian": math.exp(-4.5 * d2 / r**2)}
                    frags.append((zp, p, k[s.kernel]))
                frags = sorted(frags)[: s.points_per_pixel]
                if not frags:
                    image[b, i, j] = bg
                    continue
                ws = []
                if mode == "alpha":
                    t = 1.0
                    for _, _, w in frags:
                        a = min(w, MAX_OPACITY)
                        ws.append(t * a)
                        t *= 1 - a
                    cov = 1 - t
                else:
                    total = sum(w for _, _, w in frags)
                    ws = [w / total if mode == "normalized_weighted_sum" else w for _, _, w in frags]
                    cov = min(1.0, total)
                col = sum(w * cloud.colors[p] for w, (_, p, _) in zip(ws, frags, strict=True))
                if mode == "normalized_weighted_sum":
                    col = col * cov
                image[b, i, j] = col + (1 - cov) * bg
                alpha[b, i, j] = cov
                depth[b, i, j] = sum(w * zp for w, (zp, _, _) in zip(ws, frags, strict=True)) / sum(ws)
                ids[b, i, j] = frags[0][1]
    return image, alpha, depth, ids


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", ["world", "pixel-k2", "ortho-k1"])
def test_matches_brute_force(kernel: str, mode: str, variant: str) -> None:
    cloud = _cloud(5, seed=3)
    if variant == "world":
        s, cams = PointRasterSettings(kernel=kernel), _cameras(2)
    elif variant == "pixel-k2":
        s = PointRasterSettings(radius=2.3, radius_mode="pixel", kernel=kernel, points_per_pixel=2)
        cams = _cameras(2)
    else:
        s = PointRasterSettings(kernel=kernel, points_per_pixel=1)
        cams = _cameras(2, projection="orthographic")
    bg = torch.tensor(BG, dtype=DT)
    out = render_points(cloud, cams, s, compositing=mode, background=bg)
    image, alpha, depth, ids = brute_force(cloud, cams, s, mode, bg)
    assert (alpha > 0).sum() > 10 and (ids >= 0).sum() < ids.numel()  # covered and empty pixels
    torch.testing.assert_close(out.image, image)
    torch.testing.assert_close(out.alpha, alpha)
    torch.testing.assert_close(out.depth, depth)
    assert torch.equal(out.point_id, ids)


def test_fragments_match_footprint() -> None:
    """Fragments: one per pixel centre strictly inside the disk of radius f r / z, chunked or not."""
    cloud, cams = _cloud(5, seed=3), _cameras(2, size=(12, 10))
    full = rasterize_points(cloud, cams)
    small = rasterize_points(cloud, cams, PointRasterSettings(max_pairs_per_chunk=40))
    for name in ("pixel", "point", "camera", "depth", "weight", "dist2", "radius"):
        torch.testing.assert_close(getattr(small, name), getattr(full, name))
    assert (full.dist2 < full.radius**2).all() and ((full.weight > 0) & (full.weight <= 1)).all()


def _gradcheck_inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(7)
    pts = torch.tensor([[-0.3, -0.2, 0.1], [0.25, 0.1, -0.2], [0.0, 0.3, 0.3]], dtype=DT)
    pts = pts + 0.05 * torch.rand(3, 3, generator=g, dtype=DT)
    colors = torch.rand(3, 3, generator=g, dtype=DT)
    radii = torch.tensor([0.5, 0.6, 0.45], dtype=DT)
    t = torch.tensor([0.03, -0.02, 3.0], dtype=DT)
    return tuple(x.requires_grad_() for x in (pts, colors, radii, t))


@pytest.mark.parametrize(
    ("kernel", "mode"),
    [("quadratic", "alpha"), ("gaussian", "weighted_sum"), ("quadratic", "normalized_weighted_sum")],
)
def test_gradcheck(kernel: str, mode: str) -> None:
    """Positions, colours, world radii and the camera translation, in float64 on a smooth configuration."""
    base = _cameras(1)
    s = PointRasterSettings(kernel=kernel)

    def f(pts: torch.Tensor, colors: torch.Tensor, radii: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cams = replace(base, t=t)
        cloud = PointClouds.from_list([pts], colors=[colors], radii=[radii])
        out = render_points(cloud, cams, s, compositing=mode, background=BG)
        return torch.cat([out.image, out.alpha, out.depth], -1)

    inputs = _gradcheck_inputs()
    grads = torch.autograd.grad(f(*inputs).sum(), inputs)
    assert all(float(g.abs().max()) > 1e-3 for g in grads)  # every input matters in this configuration
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_finite_differences_of_camera_and_radius() -> None:
    """On a 16x16 view of 20 points (K = 3, alpha compositing), the derivatives of a random projection of
    the image with respect to the camera's translation and focal length and to one point's radius match
    central differences of the same function."""
    g = torch.Generator().manual_seed(11)
    pts = (torch.rand(20, 3, generator=g, dtype=DT) - 0.5) * 1.6
    colors = torch.rand(20, 3, generator=g, dtype=DT)
    radii = 0.15 + 0.1 * torch.rand(20, generator=g, dtype=DT)
    base = _cameras(1, size=(16, 16))
    cot = torch.randn(1, 16, 16, 3, generator=g, dtype=DT)
    s = PointRasterSettings(kernel="quadratic", points_per_pixel=3)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        cams = replace(base, t=base.t + theta[:3], focal=base.focal_t * (1 + theta[3]))
        r = radii + theta[4] * (torch.arange(20) == 0).to(DT)
        out = render_points(PointClouds.from_list([pts], colors=[colors], radii=[r]), cams, s)
        return (out.image * cot).sum()

    theta = torch.zeros(5, dtype=DT, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(theta), theta)
    h = 1e-6
    fd = torch.stack([(loss(h * e) - loss(-h * e)) / (2 * h) for e in torch.eye(5, dtype=DT)])
    assert grad.abs().min() > 1e-3
    torch.testing.assert_close(grad, fd, rtol=1e-4, atol=1e-6)


def test_inverse() -> None:
    """Recover 6 points' screen positions and colours from one 16x16 view, starting about 1.5 pixels off
    and grey: the image error falls below 1e-5 and every true point has a fitted one within 0.1 pixel
    (and every fitted point a true one)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    cams = _cameras(1, size=(16, 16))
    true_pts = (torch.rand(6, 3, generator=g, dtype=DT) - 0.5) * torch.tensor([2.4, 2.4, 1.0], dtype=DT)
    true_col = torch.rand(6, 3, generator=g, dtype=DT)
    s = PointRasterSettings(radius=3.0, radius_mode="pixel", kernel="gaussian")

    def draw(pts: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        cloud = PointClouds.from_list([pts], colors=[col])
        return render_points(cloud, cams, s, compositing="normalized_weighted_sum").image

    target = draw(true_pts, true_col)
    offset = torch.randn(6, 3, generator=g, dtype=DT) * torch.tensor([0.25, 0.25, 0.0], dtype=DT)
    pts = (true_pts + offset).requires_grad_()
    col = torch.full((6, 3), 0.5, dtype=DT, requires_grad=True)
    opt = torch.optim.Adam([{"params": [pts], "lr": 0.01}, {"params": [col], "lr": 0.03}])
    for _ in range(300):
        opt.zero_grad()
        err = ((draw(pts, col) - target) ** 2).mean()
        err.backward()
        opt.step()
    with torch.no_grad():
        final = float(((draw(pts, col) - target) ** 2).mean())
        # points are interchangeable (colours are fitted too): match each true point to the nearest fit
        dist = torch.cdist(cams.project(true_pts)[0][0], cams.project(pts)[0][0])
    assert final < 1e-5, final
    assert float(dist.amin(1).max()) < 0.1 and float(dist.amin(0).max()) < 0.1, dist


def test_eval_method() -> None:
    """The "points" method renders a mesh's point sampling with gradients to its vertices, and matches
    central differences in a translation."""
    assert "points" in eval_methods()
    fn = get_method("points")
    mesh = icosphere(1, 0.6, dtype=DT)
    cams = _cameras(2, size=(16, 16))
    lights = Lights(ambient=AmbientLight(torch.full((3,), 0.8, dtype=DT)))
    image, alpha = fn(mesh, cams, lights)
    assert image.shape == (2, 16, 16, 3) and alpha.shape == (2, 16, 16, 1)
    assert float(alpha.max()) > 0.99 and float(alpha.min()) == 0.0
    torch.testing.assert_close(image, 0.8 * alpha.expand_as(image))  # white albedo, ambient light 0.8
    cot = torch.randn(2, 16, 16, 4, generator=torch.Generator().manual_seed(2), dtype=DT)

    def loss(x: torch.Tensor) -> torch.Tensor:
        im, a = fn(mesh.with_verts(mesh.verts + x * torch.tensor([1.0, 0.5, 0.0], dtype=DT)), cams, None)
        return (torch.cat([im, a], -1) * cot).sum()

    x = torch.zeros((), dtype=DT, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(x), x)
    h = 1e-6
    fd = (loss(torch.tensor(h, dtype=DT)) - loss(torch.tensor(-h, dtype=DT))) / (2 * h)
    assert abs(float(grad)) > 1e-2
    torch.testing.assert_close(grad, fd, rtol=1e-4, atol=1e-6)
