"""Rendering voxel grids: closed forms, a per-pixel loop, gradients, bad input and a small inverse problem."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from gradiance.core import look_at
from gradiance.core.rays import camera_rays, ray_box_intersect
from gradiance.core.volumes import Volumes
from gradiance.volume import VolumeRenderSettings, ray_consistency_loss, render_volume

from .test_traversal import HI, LO, RES, _stepper


def _cams(n: int = 2, size: int = 12, dtype: torch.dtype = torch.float32):  # type: ignore[no-untyped-def]
    eyes = torch.tensor([[0.3, 0.2, -3.0], [2.0, 1.0, 1.5], [-2.5, 0.5, 0.4]][:n], dtype=dtype)
    return look_at(eyes, image_size=(size, size), fov=45.0)


@pytest.mark.parametrize("sampler", ["stratified", "traversal"])
def test_homogeneous_box_closed_form(sampler: str) -> None:
    sigma, colour = 0.7, torch.tensor([0.2, 0.5, 0.9])
    lo, hi = (-0.5, -0.6, -0.7), (0.5, 0.6, 0.7)
    vol = Volumes(torch.full((1, 5, 6, 7), sigma), colour.expand(1, 5, 6, 7, 3).clone(), lo=lo, hi=hi)
    cams = _cams(3)
    out = render_volume(vol, cams, VolumeRenderSettings(sampler=sampler, samples_per_ray=16))
    rays = camera_rays(cams)
    enter, exit_ = ray_box_intersect(rays.origins, rays.directions, torch.tensor(lo), torch.tensor(hi))
    chord = (exit_ - enter).clamp_min(0).reshape(3, 12, 12, 1)
    transmittance = torch.exp(-sigma * chord)
    assert torch.allclose(out.alpha, 1 - transmittance, atol=1e-6)
    assert torch.allclose(out.image, (1 - transmittance) * colour, atol=1e-6)
    absorbed = render_volume(vol, cams, VolumeRenderSettings(sampler=sampler, aggregation="absorption"))
    assert torch.allclose(absorbed.image, sigma * chord * colour, atol=1e-5)  # the X-ray line integral
    assert (out.alpha > 0).any() and (out.alpha == 0).any()


def _axis_camera(dtype: torch.dtype = torch.float64):  # type: ignore[no-untyped-def]
    """A 5 x 5 camera at x = -3 whose centre pixel's ray runs along +x through y = z = 0."""
    return look_at(torch.tensor([[-3.0, 0.0, 0.0]], dtype=dtype), image_size=(5, 5), fov=20.0)


def test_emission_integral_of_a_linear_colour() -> None:
    # density 1.5, colour a + b x at the 8 voxel centres along x; the field is linear between the first
    # and last centre and constant from there to the faces: integrate sigma exp(-sigma s) c(s) piecewise.
    sigma, a, b, n = 1.5, 0.3, 0.25, 8
    x = -1 + (torch.arange(n, dtype=torch.float64) + 0.5) * 2 / n
    feats = (a + b * x)[:, None, None, None].expand(n, 2, 2, 1)[None].contiguous()
    vol = Volumes(torch.full((1, n, 2, 2), sigma, dtype=torch.float64), feats, lo=(-1.0,) * 3, hi=(1.0,) * 3)
    out = render_volume(vol, _axis_camera(), VolumeRenderSettings(samples_per_ray=2000))

    def primitive(s: float, alpha: float, beta: float) -> float:  # of sigma exp(-sigma s) (alpha + beta s)
        return -math.exp(-sigma * s) * (alpha + beta * s) - beta * math.exp(-sigma * s) / sigma

    s0, s1 = float(x[0]) + 1, float(x[-1]) + 1  # entry at s = 0 (x = -1)
    c0, c1 = a + b * float(x[0]), a + b * float(x[-1])
    want = primitive(s0, c0, 0) - primitive(0, c0, 0)
    want += primitive(s1, c0 - b * s0, b) - primitive(s0, c0 - b * s0, b)
    want += primitive(2, c1, 0) - primitive(s1, c1, 0)
    assert float(out.image[0, 2, 2, 0]) == pytest.approx(want, abs=1e-6)
    # the expected depth of a homogeneous slab: distance to the face + 1/sigma - L / (exp(sigma L) - 1)
    depth = 2 + 1 / sigma - 2 / math.expm1(2 * sigma)
    assert float(out.depth[0, 2, 2, 0]) == pytest.approx(depth, abs=1e-6)


def test_traversal_integrates_voxels_exactly() -> None:
    sigma, n = 1.5, 8
    colours = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    feats = colours[:, None, None, None].expand(n, 2, 2, 1)[None].contiguous()
    vol = Volumes(torch.full((1, n, 2, 2), sigma, dtype=torch.float64), feats, lo=(-1.0,) * 3, hi=(1.0,) * 3)
    out = render_volume(vol, _axis_camera(), VolumeRenderSettings(sampler="traversal"))
    h = 2 / n
    want = sum(float(colours[i]) * math.exp(-sigma * h * i) * -math.expm1(-sigma * h) for i in range(n))
    assert float(out.image[0, 2, 2, 0]) == pytest.approx(want, abs=1e-12)
    assert out.weights.shape[-1] == n


def test_matches_per_pixel_loop() -> None:
    g = torch.Generator().manual_seed(3)
    dens = torch.rand(1, *RES, generator=g, dtype=torch.float64) * 2
    feats = torch.rand(1, *RES, 2, generator=g, dtype=torch.float64)
    vol = Volumes(dens, feats, lo=LO, hi=HI)
    cams = _cams(2, 6, torch.float64)
    bg = (0.25, 1.0)
    out = render_volume(vol, cams, VolumeRenderSettings(sampler="traversal", background=bg))
    origins, directions = cams.rays()
    for b in range(2):
        for i in range(6):
            for j in range(6):  # Amanatides-Woo per pixel, then the emission-absorption sum of Max 1995
                o, d = origins[b, i, j], directions[b, i, j]
                z_per_t = float((cams.R[b] @ d)[2])
                segments = _stepper(o, d, float(cams.near_t[b]) / z_per_t, float(cams.far_t[b]) / z_per_t)
                colour, T = torch.zeros(2, dtype=torch.float64), 1.0
                for (x, y, z), length in segments:
                    a = 1 - math.exp(-float(dens[0, x, y, z]) * length)
                    colour += T * a * feats[0, x, y, z]
                    T *= 1 - a
                colour += T * torch.tensor(bg, dtype=torch.float64)
                assert torch.allclose(out.image[b, i, j], colour, atol=1e-10)
                assert float(out.alpha[b, i, j, 0]) == pytest.approx(1 - T, abs=1e-10)


@pytest.mark.parametrize("sampler", ["stratified", "traversal"])
def test_shape(sampler: str) -> None:
    settings = VolumeRenderSettings(sampler=sampler, samples_per_ray=5, max_samples_per_chunk=100)
    one = Volumes(torch.rand(1, 3, 4, 5), lo=LO.float(), hi=HI.float())  # shared by every camera, C = 0
    out = render_volume(one, _cams(3, 7), settings)
    assert (
        out.image.shape == (3, 7, 7, 0)
        and out.alpha.shape == (3, 7, 7, 1)
        and out.depth.shape == (3, 7, 7, 1)
    )
    assert out.weights.shape[:3] == (3, 7, 7)
    batch = Volumes(torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5, 3), lo=LO.float(), hi=HI.float())
    two = render_volume(batch, _cams(2, 7), settings)
    assert two.image.shape == (2, 7, 7, 3)
    first = render_volume(
        Volumes(batch.densities[:1], batch.features[:1], lo=LO.float(), hi=HI.float()),  # type: ignore[index]
        _cams(1, 7),
        settings,
    )
    assert torch.allclose(two.image[:1], first.image, atol=1e-6)  # grid n is seen by camera n
    whole = render_volume(batch, _cams(2, 7), replace(settings, max_samples_per_chunk=10**6))
    assert torch.allclose(whole.image, two.image, atol=1e-6) and torch.allclose(whole.weights, two.weights)


@pytest.mark.parametrize("sampler", ["stratified", "traversal"])
def test_gradcheck(sampler: str) -> None:
    g = torch.Generator().manual_seed(4)
    dens = (torch.rand(1, 3, 3, 2, generator=g, dtype=torch.float64) + 0.2).requires_grad_()
    feats = torch.rand(1, 3, 3, 2, 2, generator=g, dtype=torch.float64).requires_grad_()
    t = torch.tensor([0.05, -0.02, 3.0], dtype=torch.float64, requires_grad=True)
    base = _cams(1, 4, torch.float64)
    settings = VolumeRenderSettings(sampler=sampler, samples_per_ray=6)

    def fn(d: torch.Tensor, f: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cams = replace(base, t=t[None])
        out = render_volume(Volumes(d, f, lo=(-0.6,) * 3, hi=(0.6,) * 3), cams, settings)
        return out.image, out.alpha, out.depth

    assert torch.autograd.gradcheck(fn, (dens, feats, t), eps=1e-7, atol=1e-6)


def test_rays_that_miss() -> None:
    vol = Volumes(torch.ones(1, 2, 2, 2, requires_grad=True), lo=(-0.5,) * 3, hi=(0.5,) * 3)
    away = look_at(torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, -6.0]]), image_size=(4, 4))
    for sampler in ("stratified", "traversal"):
        out = render_volume(vol, away, VolumeRenderSettings(sampler=sampler, background=()))
        assert (out.alpha == 0).all() and (out.depth == 0).all()
        (out.alpha.sum() + out.depth.sum()).backward()
        assert torch.isfinite(vol.densities.grad).all()  # type: ignore[arg-type]


def test_exception() -> None:
    vol = Volumes(torch.ones(2, 2, 2, 2))
    with pytest.raises(ValueError, match="1 grid or one per camera"):
        render_volume(vol, _cams(3))
    with pytest.raises(ValueError, match="background must have 0 values"):
        render_volume(
            vol[0] if False else Volumes(torch.ones(1, 2, 2, 2)),
            _cams(1),
            VolumeRenderSettings(background=(1.0,)),
        )
    with pytest.raises(TypeError, match="volumes must be a gradiance Volumes"):
        render_volume(torch.ones(1, 2, 2, 2), _cams(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sampler must be one of"):
        VolumeRenderSettings(sampler="dda")
    with pytest.raises(ValueError, match="aggregation must be one of"):
        VolumeRenderSettings(aggregation="sum")
    with pytest.raises(ValueError, match="samples_per_ray must be a positive int"):
        VolumeRenderSettings(samples_per_ray=0)
    with pytest.raises(ValueError, match="needs sampler='traversal'"):
        VolumeRenderSettings(aggregation="ray_termination")
    with pytest.raises(ValueError, match="raise it"):
        render_volume(
            Volumes(torch.ones(1, 2, 2, 2)), _cams(2), VolumeRenderSettings(max_samples_per_chunk=100)
        )
    with pytest.raises(ValueError, match="occupancy in"):
        render_volume(
            Volumes(torch.full((1, 2, 2, 2), 2.0)), _cams(1), VolumeRenderSettings(aggregation="maximum")
        )


def _ball_and_six_views(n: int):  # type: ignore[no-untyped-def]
    """``(ball, cameras)``: the ``n^3`` cells of ``[-1, 1]^3`` within 0.7 of the centre, and six 16-pixel
    views of it from around the axes."""
    c = (torch.arange(n) + 0.5) / n * 2 - 1
    ball = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).norm(dim=-1) < 0.7
    eyes = [
        [3.0, 0.5, 0.2],
        [-3.0, 0.4, -0.3],
        [0.2, 3.0, 0.4],
        [0.1, -3.0, 0.5],
        [0.3, 0.2, 3.0],
        [0.2, 0.3, -3.0],
    ]
    return ball, look_at(torch.tensor(eyes), image_size=(16, 16), fov=45.0)


def test_inverse() -> None:
    """Recover an 8^3 ball of density from six views of it (emission-absorption, stratified samples)."""
    n = 8
    ball, cams = _ball_and_six_views(n)
    target = Volumes(ball.float()[None] * 4.0)
    settings = VolumeRenderSettings(samples_per_ray=24)
    with torch.no_grad():
        want = render_volume(target, cams, settings).alpha
    logits = torch.zeros(1, n, n, n, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.3)
    for _ in range(150):
        opt.zero_grad()
        alpha = render_volume(Volumes(torch.nn.functional.softplus(logits) * 2), cams, settings).alpha
        loss = ((alpha - want) ** 2).mean()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 2e-4  # 1.1e-4 when written
    occupied = torch.nn.functional.softplus(logits.detach())[0] * 2 > 1.0
    assert float((occupied == ball).float().mean()) > 0.98  # 0.998 when written


def test_inverse_ray_consistency() -> None:
    """Differentiable ray consistency (Tulsiani et al. 2017): an 8^3 occupancy grid of a ball from six
    silhouettes, through exact voxel traversal and the expected mask cost of the events ending each ray."""
    n = 8
    ball, cams = _ball_and_six_views(n)
    settings = VolumeRenderSettings(sampler="traversal", aggregation="ray_termination")
    with torch.no_grad():
        mask = render_volume(Volumes(ball.float()[None]), cams, settings).alpha.reshape(-1)
    logits = torch.zeros(1, n, n, n, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.3)
    for _ in range(100):
        opt.zero_grad()
        out = render_volume(Volumes(torch.sigmoid(logits)), cams, settings)
        loss = ray_consistency_loss(out.as_rays(), mask=mask).mean()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.02
    recovered = torch.sigmoid(logits.detach())[0] > 0.5
    assert float((recovered == ball).float().mean()) > 0.95
