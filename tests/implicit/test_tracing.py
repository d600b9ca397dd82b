"""Ray-surface search and implicit gradients against closed forms and finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.implicit import (
    Box,
    Sphere,
    attach_hit_gradients,
    occupancy_as_field,
    secant_search,
    sphere_trace,
)
from gradiance.implicit.neural import occupancy_from_sdf

CENTRE = torch.tensor([0.1, -0.05, 0.2], dtype=torch.float64)
RADIUS = 0.6


def _rays(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    o = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1) * 3
    target = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.4
    d = torch.nn.functional.normalize(target - o, dim=1)
    return o, d, torch.zeros(n, dtype=torch.float64), torch.full((n,), 6.0, dtype=torch.float64)


def _sphere_t(
    o: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, radius: float | torch.Tensor
) -> torch.Tensor:
    """The nearer root of |o + t d - c|^2 = r^2 (nan where the ray misses)."""
    oc = o - centre
    b = (oc * d).sum(1)
    disc = b**2 - (oc * oc).sum(1) + radius**2
    return -b - torch.sqrt(disc)


def test_sphere_hits_equal_the_quadratic() -> None:
    o, d, near, far = _rays()
    sphere = Sphere(CENTRE.tolist(), RADIUS).double()
    hits = sphere_trace(sphere, o, d, near, far, epsilon=1e-9, max_steps=200)
    want = _sphere_t(o, d, CENTRE, RADIUS)
    assert torch.equal(hits.hit, ~want.isnan()) and hits.hit.any() and (~hits.hit).any()
    assert torch.allclose(hits.t[hits.hit], want[hits.hit], atol=1e-8)
    assert torch.equal(hits.t[~hits.hit], far[~hits.hit]) and not hits.started_inside.any()
    secant = secant_search(
        occupancy_as_field(occupancy_from_sdf(sphere, 20.0)), o, d, near, far, num_samples=64
    )
    assert torch.equal(secant.hit, hits.hit)
    assert torch.allclose(secant.t[secant.hit], want[secant.hit], atol=1e-6)


def test_box_hits_and_normals() -> None:
    from gradiance.core.rays import ray_box_intersect
    from gradiance.implicit.tracing import field_gradient

    half = torch.tensor([0.3, 0.4, 0.5], dtype=torch.float64)
    box = Box((0.0, 0.0, 0.0), half.tolist()).double()
    o, d, near, far = _rays(seed=1)
    hits = sphere_trace(box, o, d, near, far, epsilon=1e-10, max_steps=400)
    enter, exit_ = ray_box_intersect(o, d, -half, half)
    assert torch.equal(hits.hit, exit_ > enter)
    assert torch.allclose(hits.t[hits.hit], enter[hits.hit], atol=1e-8)
    points = o[hits.hit] + hits.t[hits.hit, None] * d[hits.hit]
    _, grad = field_gradient(box, points)
    face = (points.abs() / half).argmax(1)  # the face's axis, its sign the normal's
    want = torch.zeros_like(points).scatter(
        1, face[:, None], torch.sign(torch.gather(points, 1, face[:, None]))
    )
    assert torch.allclose(grad, want, atol=1e-6)


def test_overshooting_fields_and_budgets() -> None:
    o, d, near, far = _rays(seed=2)
    sphere = Sphere(CENTRE.tolist(), RADIUS).double()
    want = _sphere_t(o, d, CENTRE, RADIUS)
    relaxed = sphere_trace(lambda x: 3 * sphere(x), o, d, near, far, epsilon=1e-9, step_scale=1 / 3)
    assert torch.equal(relaxed.hit, ~want.isnan())  # a field overestimating 3x, with steps scaled back
    assert torch.allclose(relaxed.t[relaxed.hit], want[relaxed.hit], atol=1e-8)
    head_on = torch.nn.functional.normalize(CENTRE[None] - o[:1], dim=1)  # 1.3x: the first step lands inside
    over = sphere_trace(lambda x: 1.3 * sphere(x), o[:1], head_on, near[:1], far[:1], epsilon=1e-9)
    assert over.hit.all() and float(over.steps[0]) > 30  # found by bisection
    assert float(over.t[0]) == pytest.approx(float(_sphere_t(o[:1], head_on, CENTRE, RADIUS)[0]), abs=1e-7)
    assert abs(float(sphere(o[:1] + over.t[:, None] * head_on).detach())) < 1e-8
    short = sphere_trace(sphere, o, d, near, far, max_steps=2)  # no budget: misses, finite, flagged as such
    assert not short.hit.all() and torch.isfinite(short.t).all() and (short.steps <= 2).all()
    # a 3x overestimate from 2.4 away steps past the far end (2.6) from outside: the step is clipped at far,
    # which lies inside, and bisection finds the surface
    short_far = torch.full((1,), 2.6, dtype=torch.float64)
    clipped = sphere_trace(lambda x: 3 * sphere(x), o[:1], head_on, near[:1], short_far, epsilon=1e-9)
    assert clipped.hit.all()
    assert float(clipped.t[0]) == pytest.approx(float(_sphere_t(o[:1], head_on, CENTRE, RADIUS)[0]), abs=1e-7)
    inside = sphere_trace(sphere, CENTRE[None], d[:1], near[:1], far[:1])
    assert inside.started_inside.all() and not inside.hit.any()
    assert secant_search(sphere, CENTRE[None], d[:1], near[:1], far[:1]).started_inside.all()


def test_implicit_gradients_match_finite_differences() -> None:
    o, d, near, far = _rays(16, seed=3)
    centre = CENTRE.clone().requires_grad_()
    radius = torch.tensor(RADIUS, dtype=torch.float64, requires_grad=True)
    origins = o.clone().requires_grad_()

    def field(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x - centre, dim=-1) - radius

    hits = sphere_trace(field, origins, d, near, far, epsilon=1e-12, max_steps=300)
    t = attach_hit_gradients(field, origins, d, hits)
    assert torch.allclose(t, hits.t)  # the value is untouched
    (t[hits.hit] * torch.arange(int(hits.hit.sum()), dtype=torch.float64)).sum().backward()
    weights = torch.arange(int(hits.hit.sum()), dtype=torch.float64)

    def analytic(c: torch.Tensor, r: torch.Tensor, oo: torch.Tensor) -> torch.Tensor:
        return (_sphere_t(oo, d, c, r)[hits.hit] * weights).sum()

    eps = 1e-6
    for name, value, grad in (
        ("radius", radius, radius.grad),
        ("centre", centre, centre.grad),
        ("origins", origins, origins.grad),
    ):
        assert grad is not None, name
        flat = value.detach().reshape(-1)
        for k in range(min(flat.numel(), 6)):
            plus, minus = flat.clone(), flat.clone()
            plus[k] += eps
            minus[k] -= eps
            args = {"radius": radius.detach(), "centre": centre.detach(), "origins": o}
            args_p, args_m = dict(args), dict(args)
            args_p[name], args_m[name] = plus.reshape(value.shape), minus.reshape(value.shape)
            fd = (
                analytic(args_p["centre"], args_p["radius"], args_p["origins"])
                - analytic(args_m["centre"], args_m["radius"], args_m["origins"])
            ) / (2 * eps)
            assert float(grad.reshape(-1)[k]) == pytest.approx(float(fd), rel=1e-5, abs=1e-7), (name, k)


def test_exception() -> None:
    o, d, near, far = _rays(4)
    sphere = Sphere().double()
    with pytest.raises(ValueError, match="max_steps must be a positive int"):
        sphere_trace(sphere, o, d, near, far, max_steps=0)
    with pytest.raises(ValueError, match="step_scale must lie in"):
        sphere_trace(sphere, o, d, near, far, step_scale=1.5)
    with pytest.raises(ValueError, match="near and far must have shape"):
        sphere_trace(sphere, o, d, near[:2], far)
    with pytest.raises(ValueError, match="origins and directions must have shape"):
        secant_search(sphere, o[:, :2], d, near, far)
    with pytest.raises(ValueError, match="num_samples must be an int >= 2"):
        secant_search(sphere, o, d, near, far, num_samples=1)
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        sphere_trace(sphere, o, d, near, far, epsilon=-1.0)
    assert math.isfinite(float(sphere_trace(sphere, o, d, near, far).t.sum()))
