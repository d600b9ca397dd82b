"""Rendering implicit surfaces: per-pixel closed forms, shading, soft silhouettes, gradients, an inverse
problem."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gradiance.core import DirectionalLights, Lights, look_at
from gradiance.core.lights import AmbientLight
from gradiance.core.shading import shade
from gradiance.implicit import ImplicitRenderSettings, Sphere, render_implicit

from .test_tracing import _sphere_t


def _chord(o: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, radius: float) -> float:
    """Length of the ray's chord through the sphere (0 where it misses)."""
    oc = o[0] - centre
    b = float((oc * d[0]).sum())
    disc = b**2 - float((oc * oc).sum()) + radius**2
    return 2 * disc**0.5 if disc > 0 else 0.0


def _cams(size: int = 10):  # type: ignore[no-untyped-def]
    eyes = torch.tensor([[0.2, 0.3, -2.5], [2.0, 0.5, 1.0]], dtype=torch.float64)
    return look_at(eyes, image_size=(size, size), fov=40.0)


LIGHTS = Lights(
    ambient=AmbientLight(torch.full((3,), 0.3, dtype=torch.float64)),
    directional=DirectionalLights(
        torch.tensor([[0.3, -0.8, 0.5]], dtype=torch.float64), torch.full((1, 3), 0.7, dtype=torch.float64)
    ),
)


@pytest.mark.parametrize("search", ["sphere_trace", "secant"])
def test_matches_closed_form_per_pixel(search: str) -> None:
    centre, radius = torch.tensor([0.1, -0.1, 0.05], dtype=torch.float64), 0.5
    sphere = Sphere(centre.tolist(), radius).double()
    cams = _cams()
    albedo = torch.tensor([0.8, 0.5, 0.2], dtype=torch.float64)
    box = ((-1.0,) * 3, (1.0,) * 3)  # the secant search samples only this part of each ray
    settings = ImplicitRenderSettings(search, 300, 1e-9, num_samples=128, secant_steps=30, box=box)
    with torch.no_grad():
        out = render_implicit(sphere, cams, LIGHTS, albedo, settings=settings)
    origins, directions = cams.rays()
    atol = 1e-6
    for b in range(2):
        for i in range(10):
            for j in range(10):  # one ray at a time: the quadratic's root, its normal, Lambert's law
                o, d = origins[b, i, j][None], directions[b, i, j][None]
                t = _sphere_t(o, d, centre, radius)[0]
                if search == "secant" and _chord(o, d, centre, radius) < 0.05:
                    continue  # shorter than the secant search's sample spacing (0.016 to 0.027 here)
                if t.isnan():
                    assert out.alpha[b, i, j, 0] == 0 and out.depth[b, i, j, 0] == 0
                    assert torch.equal(out.image[b, i, j], torch.zeros(3, dtype=torch.float64))
                    continue
                x = o[0] + t * d[0]
                n = (x - centre) / radius
                assert out.alpha[b, i, j, 0] == 1
                assert float(out.depth[b, i, j, 0]) == pytest.approx(
                    float((cams.R[b] @ (x - cams.camera_centers()[b]))[2]), abs=atol
                )
                assert torch.allclose(out.normals[b, i, j], n, atol=atol)
                want = shade(x[None, None], n[None, None], albedo[None, None], None, LIGHTS)[0, 0]
                assert torch.allclose(out.image[b, i, j], want, atol=atol)
    assert (out.alpha == 1).any() and (out.alpha == 0).any()


def test_soft_silhouette_reaches_missed_rays() -> None:
    radius = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def sphere(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x, dim=-1) - radius

    box = ((-1.0,) * 3, (1.0,) * 3)
    out = render_implicit(sphere, _cams(), settings=ImplicitRenderSettings(sharpness=20.0, box=box))
    missed = out.alpha == 0
    assert (out.soft_alpha[missed] < 0.5).all() and (out.soft_alpha[~missed] > 0.45).all()
    out.soft_alpha[missed].sum().backward()
    assert (
        radius.grad is not None and float(radius.grad) > 0
    )  # growing the sphere raises the missed rays' alpha


def test_gradients_of_depth_and_colour_match_finite_differences() -> None:
    cams = _cams(6)
    params = torch.tensor([0.1, -0.1, 0.05, 0.5], dtype=torch.float64, requires_grad=True)
    settings = ImplicitRenderSettings(epsilon=1e-12, max_steps=400)

    def render(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        def sphere(x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.vector_norm(x - p[:3], dim=-1) - p[3]

        out = render_implicit(sphere, cams, LIGHTS, settings=settings)
        return out.depth, out.image, out.alpha

    depth, image, alpha = render(params)
    g = torch.Generator().manual_seed(0)
    wd, wi = (
        torch.rand(depth.shape, generator=g, dtype=torch.float64),
        torch.rand(image.shape, generator=g, dtype=torch.float64),
    )
    ((depth * wd).sum() + (image * wi).sum()).backward()
    assert params.grad is not None
    for k in range(4):  # the hit set does not change for steps this small
        step = torch.zeros(4, dtype=torch.float64)
        step[k] = 1e-6
        dp, ip, ap = render(params.detach() + step)
        dm, im, am = render(params.detach() - step)
        assert torch.equal(ap, alpha) and torch.equal(am, alpha)
        fd = (((dp - dm) * wd).sum() + ((ip - im) * wi).sum()) / 2e-6
        assert float(params.grad[k]) == pytest.approx(float(fd.detach()), rel=1e-4, abs=1e-6), k


def test_inverse_sphere_from_silhouettes_and_depth() -> None:
    """A sphere's centre and radius from three views' silhouettes (through the soft mask) and depths."""
    eyes = torch.tensor([[0.0, 0.3, -2.5], [2.5, 0.3, 0.0], [0.0, 2.5, 0.3]], dtype=torch.float64)
    cams = look_at(eyes, image_size=(16, 16), fov=40.0)
    settings = ImplicitRenderSettings(box=((-1.0,) * 3, (1.0,) * 3), sharpness=20.0)
    with torch.no_grad():
        target = render_implicit(Sphere((0.15, -0.1, 0.05), 0.45).double(), cams, settings=settings)
    sphere = Sphere((0.0, 0.0, 0.0), 0.3).double()
    opt = torch.optim.Adam(sphere.parameters(), lr=0.02)
    for _ in range(120):
        opt.zero_grad()
        out = render_implicit(sphere, cams, settings=settings)
        both = (out.alpha * target.alpha).detach()
        loss = ((out.soft_alpha - target.alpha) ** 2).mean() + ((out.depth - target.depth) ** 2 * both).mean()
        loss.backward()
        opt.step()
    want = torch.tensor([0.15, -0.1, 0.05], dtype=torch.float64)
    assert torch.allclose(sphere.centre.detach(), want, atol=0.01)  # within 0.005 when written
    assert float(sphere.radius.detach()) == pytest.approx(0.45, abs=0.01)


def test_exception_and_bad_input() -> None:
    sphere = Sphere().double()
    with pytest.raises(ValueError, match="search must be one of"):
        ImplicitRenderSettings(search="newton")
    with pytest.raises(ValueError, match="sharpness must be > 0"):
        ImplicitRenderSettings(sharpness=0.0)
    with pytest.raises(ValueError, match="albedo must have shape"):
        render_implicit(sphere, _cams(), albedo=torch.ones(4, dtype=torch.float64))
    with pytest.raises(TypeError, match="cameras must be"):
        render_implicit(sphere, None)  # type: ignore[arg-type]
    inside = look_at(torch.tensor([[0.0, 0.0, 0.1]], dtype=torch.float64), image_size=(4, 4))  # in the sphere
    out = render_implicit(sphere, inside)
    assert (out.alpha == 0).all() and out.hits.started_inside.all() and torch.isfinite(out.soft_alpha).all()
    boxed = render_implicit(
        sphere, _cams(), settings=replace(ImplicitRenderSettings(), box=((-0.6,) * 3, (0.6,) * 3))
    )
    assert torch.equal(boxed.alpha, render_implicit(sphere, _cams()).alpha)
