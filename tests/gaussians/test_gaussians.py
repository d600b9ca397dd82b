"""3D Gaussian splatting against the paper's per-pixel loop, finite differences, bad input and a fit."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.backends.torch.rasterize import expand_boxes
from gradiance.core import look_at
from gradiance.core.cameras import Cameras
from gradiance.core.lights import sh_basis
from gradiance.gaussians import Gaussians, GaussianSettings, render_gaussians, rgb_to_sh0, sh_from_kerbl
from gradiance.gaussians.render import _alpha, _boxes, _PairAlpha, _within_reach, project_gaussians

DT = torch.float64


def _scene(n: int = 6, degree: int = 1, dtype: torch.dtype = DT, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=(torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 0.8,
        quats=torch.randn(n, 4, generator=g, dtype=dtype),
        scales=0.05 + 0.1 * torch.rand(n, 3, generator=g, dtype=dtype),
        opacities=0.3 + 0.6 * torch.rand(n, generator=g, dtype=dtype),
        sh=torch.randn(n, (degree + 1) ** 2, 3, generator=g, dtype=dtype) * 0.4,
    )


def _cams(size: tuple[int, int] = (18, 20), dtype: torch.dtype = DT) -> Cameras:
    eyes = torch.tensor([[0.3, -0.4, 2.2], [-2.0, 0.5, 1.0]], dtype=dtype)
    return look_at(eyes, image_size=size, fov=40.0)


def _loop(g: Gaussians, cams: Cameras, s: GaussianSettings, bg: list[float]) -> tuple[torch.Tensor, ...]:
    """The paper's renderer written out Gaussian by Gaussian and pixel by pixel (python scalars)."""
    B, (H, W) = len(cams), cams.image_size
    image, alpha, count = torch.zeros(B, H, W, 3, dtype=DT), torch.zeros(B, H, W, 1, dtype=DT), []
    cov3 = g.covariances()
    for b in range(B):
        R, t = cams.R[b], cams.t[b]
        fx, fy = float(cams.focal_t[b, 0]), float(cams.focal_t[b, 1])
        cx, cy = float(cams.principal_t[b, 0]), float(cams.principal_t[b, 1])
        centre = cams.camera_centers()[b]
        splats = []
        for n in range(len(g)):
            p = R @ g.means[n] + t
            if float(p[2]) <= float(cams.near_t[b]):
                continue
            x, y, z = float(p[0]), float(p[1]), float(p[2])
            tx = min(max(x / z, -1.3 * cx / fx), 1.3 * (W - cx) / fx) * z
            ty = min(max(y / z, -1.3 * cy / fy), 1.3 * (H - cy) / fy) * z
            J = torch.tensor([[fx / z, 0, -fx * tx / z**2], [0, fy / z, -fy * ty / z**2]], dtype=DT)
            cov = J @ R @ cov3[n] @ R.T @ J.T
            a, bb, c = float(cov[0, 0]) + 0.3, float(cov[0, 1]), float(cov[1, 1]) + 0.3
            det = a * c - bb * bb
            mid = (a + c) / 2
            radius = math.ceil(3 * math.sqrt(mid + math.sqrt(max(0.1, mid * mid - det))))
            u, v = fx * x / z + cx, fy * y / z + cy
            d = (g.means[n] - centre) / (g.means[n] - centre).norm()
            color = (sh_basis(d[None], g.degree)[0] @ g.sh[n] + 0.5).clamp_min(0)
            if s.tile_size is None:
                cols = [j for j in range(W) if u - radius <= j + 0.5 <= u + radius]
                rows = [i for i in range(H) if v - radius <= i + 0.5 <= v + radius]
            else:
                T = s.tile_size
                tx0, tx1 = int((u - 0.5 - radius) // T), int((u - 0.5 + radius + T - 1) // T)
                ty0, ty1 = int((v - 0.5 - radius) // T), int((v - 0.5 + radius + T - 1) // T)
                tx0, ty0 = max(tx0, 0), max(ty0, 0)
                cols = [j for j in range(W) if tx0 * T <= j < tx1 * T]
                rows = [i for i in range(H) if ty0 * T <= i < ty1 * T]
            if not rows or not cols:  # reaches no pixel: culled
                continue
            conic = (c / det, -bb / det, a / det)
            splats.append((z, n, u, v, conic, set(rows), set(cols), color))
        splats.sort(key=lambda x: (x[0], x[1]))
        for i in range(H):
            for j in range(W):
                T_, rgb, k = 1.0, torch.zeros(3, dtype=DT), 0
                for _, n, u, v, (ca, cb, cc), rows, cols, color in splats:
                    if i not in rows or j not in cols:
                        continue
                    dx, dy = j + 0.5 - u, i + 0.5 - v
                    power = -0.5 * (ca * dx * dx + cc * dy * dy) - cb * dx * dy
                    if power > 0:
                        continue
                    al = min(s.max_alpha, float(g.opacities[n]) * math.exp(power))
                    if al < s.min_alpha:
                        continue
                    if T_ * (1 - al) < s.min_transmittance:
                        break
                    rgb = rgb + color * al * T_
                    T_ *= 1 - al
                    k += 1
                image[b, i, j] = rgb + T_ * torch.tensor(bg, dtype=DT)
                alpha[b, i, j, 0] = 1 - T_
                count.append(k)
    return image, alpha, torch.tensor(count).reshape(B, H, W, 1)


@pytest.mark.parametrize("tile_size", [None, 8, 16])
def test_matches_per_pixel_loop(tile_size: int | None) -> None:
    g, cams = _scene(8, degree=2), _cams()
    s = GaussianSettings(tile_size=tile_size)
    bg = [0.1, 0.2, 0.3]
    out = render_gaussians(g, cams, s, background=torch.tensor(bg, dtype=DT))
    image, alpha, count = _loop(g, cams, s, bg)
    torch.testing.assert_close(out.image, image)
    torch.testing.assert_close(out.alpha, alpha)
    assert torch.equal(out.count, count)
    assert int(count.max()) >= 3  # the scene overlaps: ordering and transmittance matter


def test_early_termination_and_alpha_clamp_match_the_loop() -> None:
    """Opaque, overlapping Gaussians: the clamp at 0.99 and the stop at transmittance 1e-4 both act."""
    g = _scene(10, degree=0, seed=3)
    stacked = g.means * 0.02  # ten Gaussians over one spot: after two at 0.99, T = 1e-4 stops the rest
    g = Gaussians(stacked, g.quats, g.scales * 3, torch.full((10,), 1.0, dtype=DT), g.sh)
    cams = _cams()
    s = GaussianSettings(tile_size=None)
    out = render_gaussians(g, cams, s)
    image, _, count = _loop(g, cams, s, [0.0, 0.0, 0.0])
    torch.testing.assert_close(out.image, image)
    assert torch.equal(out.count, count)
    peak = out.alpha.flatten().argmax()
    assert float(out.alpha.flatten()[peak]) == pytest.approx(1 - 1e-4, abs=1e-6)  # T stopped at 1e-4...
    assert int(out.count.flatten()[peak]) < 10  # ... before the last Gaussians


def test_shape_depth_and_batching() -> None:
    g, cams = _scene(5, dtype=torch.float32), _cams(dtype=torch.float32)
    out = render_gaussians(g, cams)
    assert out.image.shape == (2, 18, 20, 3) and out.alpha.shape == (2, 18, 20, 1)
    assert out.depth.shape == (2, 18, 20, 1) and out.count.dtype == torch.int64
    one = render_gaussians(g, cams[1])
    torch.testing.assert_close(one.image[0], out.image[1])
    # a single Gaussian's expected depth is its mean's depth wherever it is seen
    single = Gaussians(g.means[:1], g.quats[:1], g.scales[:1], g.opacities[:1], g.sh[:1])
    seen = render_gaussians(single, cams)
    z = cams.world_to_camera(g.means[:1])[:, 0, 2]
    covered = seen.alpha[..., 0] > 0
    for b in range(2):
        torch.testing.assert_close(seen.depth[b, ..., 0][covered[b]], z[b].expand(int(covered[b].sum())))


def test_gradcheck() -> None:
    g, cams = _scene(4, degree=1, seed=5), _cams((10, 12))
    s = GaussianSettings(tile_size=None, min_alpha=0.0)  # no opacity threshold to step over
    weight = torch.rand(2, 10, 12, 4, dtype=DT, generator=torch.Generator().manual_seed(1))

    def loss(
        means: torch.Tensor,
        quats: torch.Tensor,
        scales: torch.Tensor,
        opac: torch.Tensor,
        sh: torch.Tensor,
        t: torch.Tensor,
    ) -> torch.Tensor:
        c = Cameras(cams.R, t, cams.focal_t, cams.principal_t, cams.image_size, cams.near_t, cams.far_t)
        out = render_gaussians(Gaussians(means, quats, scales, opac, sh), c, s)
        return (torch.cat([out.image, out.alpha], -1) * weight).sum()

    args = [x.clone().requires_grad_() for x in (g.means, g.quats, g.scales, g.opacities, g.sh, cams.t)]
    assert torch.autograd.gradcheck(loss, args, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_bad_input_is_handled() -> None:
    g = _scene(3, dtype=torch.float32)
    cams = _cams(dtype=torch.float32)
    with pytest.raises(ValueError, match="scales"):
        Gaussians(g.means, g.quats, torch.zeros(3, 3), g.opacities, g.sh)
    with pytest.raises(ValueError, match="scales"):
        Gaussians(g.means, g.quats, -g.scales, g.opacities, g.sh)
    with pytest.raises(ValueError, match="quats"):
        Gaussians(g.means, torch.zeros(3, 4), g.scales, g.opacities, g.sh)
    with pytest.raises(ValueError, match="means"):
        Gaussians(g.means * float("nan"), g.quats, g.scales, g.opacities, g.sh)
    with pytest.raises(ValueError, match="opacities"):
        Gaussians(g.means, g.quats, g.scales, g.opacities + 1, g.sh)
    with pytest.raises(ValueError, match="sh"):
        Gaussians(g.means, g.quats, g.scales, g.opacities, torch.zeros(3, 5, 3))
    with pytest.raises(TypeError, match="gaussians"):
        render_gaussians(g.means, cams)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="background"):
        render_gaussians(g, cams, background=torch.zeros(4))
    # unnormalised quaternions are normalised: scaling one changes nothing
    q2 = g.quats * torch.tensor([[3.0], [0.2], [1.0]])
    torch.testing.assert_close(
        render_gaussians(Gaussians(g.means, q2, g.scales, g.opacities, g.sh), cams).image,
        render_gaussians(g, cams).image,
    )
    # Gaussians behind the camera and exactly at it are culled, with finite gradients everywhere
    eye = cams.camera_centers()[0]
    means = torch.stack([eye, eye - 2 * (g.means[0] - eye), g.means[2]]).requires_grad_()
    out = render_gaussians(Gaussians(means, g.quats, g.scales, g.opacities, g.sh), cams[0])
    assert int(out.projected.radii[0, 0]) == 0 and int(out.projected.radii[0, 1]) == 0
    (grad,) = torch.autograd.grad(out.image.sum(), means)
    assert bool(torch.isfinite(out.image).all()) and bool(torch.isfinite(grad).all())
    with pytest.raises(ValueError, match="tile_size"):
        GaussianSettings(tile_size=0)
    with pytest.raises(ValueError, match="max_alpha"):
        GaussianSettings(max_alpha=1.0)


def test_rgb_to_sh0_round_trip() -> None:
    rgb = torch.tensor([[0.2, 0.5, 0.9]])
    g = Gaussians(
        torch.zeros(1, 3),
        torch.tensor([[1.0, 0, 0, 0]]),
        torch.ones(1, 3),
        torch.ones(1),
        rgb_to_sh0(rgb)[:, None],
    )
    torch.testing.assert_close(g.colors(torch.tensor([[0.0, 0.0, -3.0]]))[0], rgb)


def _kerbl_color(sh: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The view-dependent colour of the reference implementation of Kerbl et al., written out."""
    c0, c1 = 0.28209479177387814, 0.4886025119029199
    c2 = [
        1.0925484305920792,
        -1.0925484305920792,
        0.31539156525252005,
        -1.0925484305920792,
        0.5462742152960396,
    ]
    c3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
          -0.4570457994644658, 1.445305721320277, -0.5900435899266435]  # fmt: skip
    x, y, z = (d / d.norm()).tolist()
    xx, yy, zz = x * x, y * y, z * z
    terms = [c0, -c1 * y, c1 * z, -c1 * x]
    terms += [c2[0] * x * y, c2[1] * y * z, c2[2] * (2 * zz - xx - yy), c2[3] * x * z, c2[4] * (xx - yy)]
    terms += [
        c3[0] * y * (3 * xx - yy),
        c3[1] * x * y * z,
        c3[2] * y * (4 * zz - xx - yy),
        c3[3] * z * (2 * zz - 3 * xx - 3 * yy),
        c3[4] * x * (4 * zz - xx - yy),
        c3[5] * z * (xx - yy),
        c3[6] * x * (xx - 3 * yy),
    ]
    return (torch.tensor(terms, dtype=DT) @ sh + 0.5).clamp_min(0)


def test_sh_from_kerbl_matches_the_reference_colour() -> None:
    g = torch.Generator().manual_seed(4)
    theirs = 0.3 * torch.randn(2, 16, 3, generator=g, dtype=DT)
    means = torch.randn(2, 3, generator=g, dtype=DT)
    scene = Gaussians(means, torch.randn(2, 4, dtype=DT), torch.ones(2, 3, dtype=DT), torch.ones(2, dtype=DT),
                      sh_from_kerbl(theirs))  # fmt: skip
    eye = torch.tensor([[0.3, -2.0, 1.5]], dtype=DT)
    ours = scene.colors(eye)[0]
    for n in range(2):
        torch.testing.assert_close(ours[n], _kerbl_color(theirs[n], means[n] - eye[0]))
    torch.testing.assert_close(sh_from_kerbl(sh_from_kerbl(theirs)), theirs)


def test_gaussian_just_off_the_image_is_drawn_into_the_last_tile() -> None:
    """The reference culls on an empty tile rectangle, not on the footprint: a wide Gaussian whose
    footprint square ends right of the image still reaches the last tile's pixels (W = 20, not a multiple
    of 16)."""
    cams = Cameras(torch.eye(3, dtype=DT), torch.tensor([0.0, 0.0, 3.0], dtype=DT), 20.0, None, (18, 20))
    s = GaussianSettings()

    def wide(x: float) -> Gaussians:
        return Gaussians(
            torch.tensor([[x, 0.0, 0.0]], dtype=DT),
            torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=DT),
            torch.full((1, 3), 1.5, dtype=DT),  # about 10 pixels
            torch.tensor([0.9], dtype=DT),
            torch.zeros(1, 1, 3, dtype=DT),
        )

    # beyond the frustum clamp the 2D covariance, hence the radius, no longer depends on x
    r = int(render_gaussians(wide(6.0), cams, s).projected.radii[0, 0])
    g = wide((20 + r + 0.1 - 10) * 3.0 / 20)  # u - r = W + 0.1: the footprint square misses the image
    out = render_gaussians(g, cams, s)
    assert int(out.projected.radii[0, 0]) == r
    _, alpha, _ = _loop(g, cams, s, [0.0, 0.0, 0.0])
    torch.testing.assert_close(out.alpha, alpha)
    assert float(out.alpha[0, :, -1].max()) > 1 / 255
    none = render_gaussians(g, cams, GaussianSettings(tile_size=None))
    assert int(none.projected.radii[0, 0]) == 0 and float(none.alpha.max()) == 0  # no pixel in its square


def test_projected_covariance_matches_the_jacobian_of_the_projection() -> None:
    """Sigma' - 0.3 I = J Sigma J^T with J the autograd Jacobian of the world-to-pixel map at the mean
    (a mean well inside the view, where the frustum clamp does not act)."""
    g, cams = _scene(3), _cams()
    proj = render_gaussians(g, cams, GaussianSettings(tile_size=None)).projected
    cov3 = g.covariances()
    for b in range(2):
        for n in range(3):
            J = torch.autograd.functional.jacobian(
                lambda p, b=b: cams[b].project(p[None])[0][0, 0], g.means[n]
            )
            want = J @ cov3[n] @ J.T + 0.3 * torch.eye(2, dtype=DT)
            a, bb, c = proj.conics[b, n]
            torch.testing.assert_close(
                torch.linalg.inv(torch.stack([torch.stack([a, bb]), torch.stack([bb, c])])), want
            )


def test_reach_boxes_hold_every_pixel_the_tiles_would_blend() -> None:
    """Shrinking each tile box to where alpha can reach ``min_alpha`` loses no pair: every pixel of the
    paper's tile rectangle with ``alpha >= min_alpha`` lies in the shrunk box (opacities down to the
    threshold itself, elongated and tiny Gaussians)."""
    g = _scene(n=300, seed=3, dtype=torch.float32)
    rand = torch.rand(290, generator=torch.Generator().manual_seed(4))
    opac = torch.cat([torch.full((10,), 1 / 255), rand])
    g = Gaussians(g.means, g.quats, g.scales * torch.tensor([1.0, 0.05, 1.0]), opac, g.sh)
    cams = _cams((40, 44), torch.float32)
    s = GaussianSettings()
    proj = project_gaussians(g, cams, s)
    B, N = proj.radii.shape
    uv, conic = proj.means2d.reshape(-1, 2), proj.conics.reshape(-1, 3)
    tile = _boxes(uv, proj.radii.reshape(-1), 40, 44, s.tile_size)
    reach = _within_reach(uv, conic, opac.repeat(B), *tile, s.min_alpha)
    item, col, row = expand_boxes(tile[2] * tile[3], tile[0], tile[1], tile[2])
    alpha, power = _alpha(uv, conic, opac, item, col, row, N, s)
    kept = (alpha >= s.min_alpha) & (power <= 0)
    x0, y0, bw, bh = (t[item[kept]] for t in reach)
    c, r = col[kept], row[kept]
    assert kept.sum() > 1000
    assert bool(((c >= x0) & (c < x0 + bw) & (r >= y0) & (r < y0 + bh)).all())
    assert int((reach[2] * reach[3]).sum()) < int((tile[2] * tile[3]).sum()) / 3


def test_pair_alpha_backward_matches_finite_differences() -> None:
    """The written-out backward of the per-pair opacity, with some pairs held at the ``max_alpha`` clamp
    (no gradient there) and one at the centre of its Gaussian."""
    g = torch.Generator().manual_seed(5)
    d = torch.randn(24, 2, generator=g, dtype=DT)
    d[0] = 0.0
    a_, c_ = 0.5 + torch.rand(24, generator=g, dtype=DT), 0.5 + torch.rand(24, generator=g, dtype=DT)
    q = torch.stack([a_, 0.3 * torch.rand(24, generator=g, dtype=DT) - 0.15, c_], 1)
    o = 0.2 + 0.79 * torch.rand(24, generator=g, dtype=DT)
    o[:3] = 0.995  # above max_alpha near the centre: clamped
    alpha, _ = _PairAlpha.apply(d, q, o, 0.99)
    assert bool((alpha[:1] == 0.99).all()) and bool((alpha[3:] < 0.99).all())
    leaves = [x.clone().requires_grad_() for x in (d, q, o)]
    assert torch.autograd.gradcheck(lambda *x: _PairAlpha.apply(*x, 0.99)[0], leaves)
