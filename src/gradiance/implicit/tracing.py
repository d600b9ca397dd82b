"""Where rays meet implicit surfaces, and the gradient of that meeting point.

A surface is the zero set of a field ``g`` that is positive outside: a signed distance ``f``, or
``level - o`` for an occupancy ``o`` (``occupancy_as_field``). Two searches find the first zero of
``g(o + t d)`` for ``t`` in ``[near, far]``, without autograd and in a bounded number of steps:

- ``sphere_trace`` (Hart 1996): step by ``step_scale * g`` (the distance to the nearest surface for a true
  SDF, the step clipped at ``far``) until ``g < epsilon``. A step that lands inside (``g < 0``: a field that
  overestimates distances) is refined by bisection between the last point outside and it, so fields that
  are not exact distances are still handled; a step that jumps over a whole object cannot be noticed, and
  ``step_scale < 1`` makes that rarer.
- ``secant_search`` (Niemeyer et al. 2020, section 3.3 of "Differentiable Volumetric Rendering"): evaluate
  ``g`` at ``num_samples`` evenly spaced points, take the first sign change from outside to inside, and
  refine it with ``secant_steps`` steps of the secant method (regula falsi, keeping the bracket).

Both return ``Hits``: ``hit`` marks rays that reached the surface; rays that leave ``[near, far]``, never
converge within the step budget, or start inside the surface (``g(o + near d) < 0``, flagged
``started_inside``) are misses, reported at ``t = far``. ``attach_hit_gradients`` then makes the hit depth a
differentiable function of the field's parameters and of the rays by implicit differentiation: from
``g(o + t d; theta) = 0``, ``dt = -(dg/dtheta dtheta + grad_x g . (do + t dd)) / (grad_x g . d)``
(Niemeyer et al. 2020, eq. 13; Yariv et al. 2020, eq. 3), implemented as
``t = t0 - (g(o + t0 d; theta) - g0) / (grad_x g . d)`` with ``g0`` and the denominator detached, whose value
is ``t0`` and whose derivative is the formula. At grazing incidence the denominator is kept at least
``1e-6`` in magnitude (the true derivative is unbounded there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.checks import check_positive_int

Field = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Hits:
    """Per-ray results of a surface search (module docstring).

    Attributes:
        t: ``(R,)`` ray parameter of the hit (``far`` for misses).
        hit: ``(R,)`` bool, the ray reached the surface inside ``[near, far]``.
        started_inside: ``(R,)`` bool, the ray's first point is inside the surface.
        steps: ``(R,)`` int64 field evaluations spent on the ray.
    """

    t: Tensor
    hit: Tensor
    started_inside: Tensor
    steps: Tensor


def _check_rays(origins: Tensor, directions: Tensor, near: Tensor, far: Tensor) -> None:
    R = origins.shape[0]
    if origins.shape != (R, 3) or directions.shape != (R, 3):
        raise ValueError(
            f"origins and directions must have shape (R, 3), got {tuple(origins.shape)}, "
            f"{tuple(directions.shape)}"
        )
    if near.shape != (R,) or far.shape != (R,):
        raise ValueError(f"near and far must have shape ({R},), got {tuple(near.shape)}, {tuple(far.shape)}")


@torch.no_grad()
def sphere_trace(
    field: Field,
    origins: Tensor,
    directions: Tensor,
    near: Tensor,
    far: Tensor,
    *,
    max_steps: int = 128,
    epsilon: float = 1e-4,
    step_scale: float = 1.0,
    bisection_steps: int = 30,
) -> Hits:
    """Sphere tracing (module docstring). ``directions`` must have unit length for ``g`` to be a distance
    along the ray. Only unfinished rays are evaluated at each step."""
    _check_rays(origins, directions, near, far)
    check_positive_int(max_steps, "max_steps")
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if not 0 < step_scale <= 1:
        raise ValueError(f"step_scale must lie in (0, 1], got {step_scale}")
    R = origins.shape[0]
    t = near.detach().clone()
    steps = torch.zeros(R, dtype=torch.int64, device=origins.device)
    g = field(origins + t[:, None] * directions).detach()
    steps += 1
    inside = g < 0
    hit = ~inside & (g < epsilon)
    active = ~inside & ~hit
    for _ in range(max_steps - 1):
        idx = active.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        t_next = torch.minimum(t[idx] + step_scale * g[idx], far[idx])  # the last step checks far itself
        g_next = field(origins[idx] + t_next[:, None] * directions[idx]).detach()
        out = (t_next >= far[idx]) & (g_next >= 0)
        steps[idx] += 1
        over = g_next < 0
        if bool(over.any()):  # stepped through the surface: bisect between t (outside) and t_next
            o_idx = idx[over]
            t_next[over] = _bisect(
                field, origins[o_idx], directions[o_idx], t[o_idx], t_next[over], bisection_steps
            )
            steps[o_idx] += bisection_steps
            g_next[over] = 0.0
        t[idx], g[idx] = t_next, g_next
        done = (g_next < epsilon) & ~out
        hit[idx] = done
        active[idx] = ~done & ~out
    missed = ~hit
    return Hits(torch.where(missed, far, t), hit, inside, steps)


def _bisect(field: Field, o: Tensor, d: Tensor, t_out: Tensor, t_in: Tensor, steps: int) -> Tensor:
    """The point of the bracket ``[t_out, t_in]`` (``g > 0`` at ``t_out``, ``< 0`` at ``t_in``) nearest the
    zero after ``steps`` halvings, on the outside."""
    for _ in range(steps):
        mid = 0.5 * (t_out + t_in)
        outside = field(o + mid[:, None] * d) >= 0
        t_out = torch.where(outside, mid, t_out)
        t_in = torch.where(outside, t_in, mid)
    return t_out


@torch.no_grad()
def secant_search(
    field: Field,
    origins: Tensor,
    directions: Tensor,
    near: Tensor,
    far: Tensor,
    *,
    num_samples: int = 64,
    secant_steps: int = 8,
    chunk: int = 65536,
) -> Hits:
    """The first outside-to-inside crossing of ``g`` among ``num_samples`` evenly spaced points, refined by
    ``secant_steps`` steps of regula falsi (module docstring). Points are evaluated ``chunk`` at a time."""
    _check_rays(origins, directions, near, far)
    check_positive_int(num_samples, "num_samples", minimum=2)
    check_positive_int(secant_steps, "secant_steps")
    R, S = origins.shape[0], num_samples
    frac = torch.linspace(0, 1, S, dtype=near.dtype, device=near.device)
    ts = near[:, None] + (far - near)[:, None] * frac
    pts = (origins[:, None] + ts[..., None] * directions[:, None]).reshape(-1, 3)
    g = torch.cat([field(p).detach() for p in pts.split(chunk)]).reshape(R, S)
    inside = g[:, 0] < 0
    crossing = (g[:, :-1] >= 0) & (g[:, 1:] < 0)
    has = crossing.any(1) & ~inside
    first = torch.argmax(crossing.to(torch.int8), 1).clamp(max=max(S - 2, 0))
    pick = lambda x: torch.gather(x, 1, first[:, None])[:, 0]  # noqa: E731
    t0, t1, g0, g1 = pick(ts[:, :-1]), pick(ts[:, 1:]), pick(g[:, :-1]), pick(g[:, 1:])
    idx = has.nonzero()[:, 0]
    a, b, ga, gb = t0[idx], t1[idx], g0[idx], g1[idx]
    for _ in range(secant_steps):
        m = b - gb * (b - a) / (gb - ga).clamp_max(-1e-12)  # ga >= 0 > gb
        gm = field(origins[idx] + m[:, None] * directions[idx]).detach()
        outside = gm >= 0
        a, ga = torch.where(outside, m, a), torch.where(outside, gm, ga)
        b, gb = torch.where(outside, b, m), torch.where(outside, gb, gm)
    t = far.clone()
    if idx.numel():
        t[idx] = b - gb * (b - a) / (gb - ga).clamp_max(-1e-12)
    steps = torch.full((R,), S, dtype=torch.int64, device=near.device) + has.long() * secant_steps
    return Hits(t, has, inside, steps)


def occupancy_as_field(occupancy: Field, level: float = 0.5) -> Field:
    """The field ``level - occupancy(x)``: positive outside, zero on the ``level`` set."""

    def field(points: Tensor) -> Tensor:
        return level - occupancy(points)

    return field


def field_gradient(field: Field, points: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """``(g, grad_x g)``: the field and its spatial gradient ``(N, 3)`` at ``points``; with
    ``create_graph`` both are differentiable (for normals that shade, and eikonal losses), without it both
    are returned detached."""
    g, grad, _ = field_gradient_with_features(lambda x: (field(x), x[:, :0]), points, create_graph)
    return g, grad


def field_gradient_with_features(
    field: Callable[[Tensor], tuple[Tensor, Tensor]], points: Tensor, create_graph: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """``(g, grad_x g, features)`` for a field returning ``(g (N,), features (N, F))`` (e.g.
    ``NeuralSDF.with_features``), differentiable as ``field_gradient`` says."""
    with torch.enable_grad():
        x = points if points.requires_grad else points.detach().requires_grad_()
        g, feats = field(x)
        (grad,) = torch.autograd.grad(g.sum(), x, create_graph=create_graph)
    if not create_graph:
        return g.detach(), grad, feats.detach()
    return g, grad, feats


def unit_normals(grad: Tensor) -> Tensor:
    """``grad / |grad|`` (zero where the gradient vanishes)."""
    return grad / torch.linalg.vector_norm(grad, dim=-1, keepdim=True).clamp_min(1e-12)


def attach_hit_gradients(field: Field, origins: Tensor, directions: Tensor, hits: Hits) -> Tensor:
    """``(R,)`` the hit parameters ``hits.t`` as a differentiable function of the field's parameters, the
    origins and the directions (module docstring); misses keep ``hits.t`` with no gradient."""
    t0 = hits.t.detach()
    idx = hits.hit.nonzero()[:, 0]
    if idx.numel() == 0:
        return t0
    o, d = origins[idx], directions[idx]
    x0 = o.detach() + t0[idx, None] * d.detach()
    _, grad = field_gradient(field, x0)
    denom = (grad * d.detach()).sum(-1)
    denom = torch.where(denom < 0, denom.clamp_max(-1e-6), denom.clamp_min(1e-6))
    g = field(o + t0[idx, None] * d)
    t_hit = t0[idx] - (g - g.detach()) / denom
    return t0.index_put((idx,), t_hit)
