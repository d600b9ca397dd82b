"""Rays: intersection with axis-aligned boxes, and intervals along rays (stratified and importance sampled).

A ray is ``o + t d`` with ``d`` of unit length (``Cameras.rays``), so ``t`` is a world distance. The samples
of a ray are ``S`` intervals ``[t_start[s], t_end[s]]`` in front-to-back order, each with the parameter
``t[s]`` inside it where the scene is evaluated; renderers integrate piecewise-constant quantities over the
intervals (the quadrature of Max 1995, "Optical models for direct volume rendering", used by NeRF).
Intervals of zero length are padding and contribute nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .cameras import Cameras

BoxCorners = tuple[tuple[float, float, float], tuple[float, float, float]]
"""An axis-aligned box as ``((lo_x, lo_y, lo_z), (hi_x, hi_y, hi_z))``, as settings give it."""


def box_tensors(box: BoxCorners, like: Tensor) -> tuple[Tensor, Tensor]:
    """``(lo, hi)`` of ``box`` as ``(3,)`` tensors of ``like``'s dtype and device."""
    lo, hi = (torch.tensor(c, dtype=like.dtype, device=like.device) for c in box)
    return lo, hi


def uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Uniform ``[0, 1)`` numbers of ``like``'s dtype on ``like``'s device, drawn on the generator's device
    (a CPU generator gives the same numbers whatever the device of ``like``)."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=device).to(like.device)


def ray_box_intersect(origins: Tensor, directions: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Where rays enter and leave axis-aligned boxes (the slab method, Kay and Kajiya 1986).

    Args:
        origins, directions: ``(..., 3)`` rays (directions need not be normalised; ``t`` is in their units).
        lo, hi: ``(..., 3)`` or ``(3,)`` opposite corners of the boxes (``lo <= hi``), broadcast to the rays.

    Returns:
        ``(t_enter, t_exit)``, each ``(...)``: the line ``o + t d`` lies in the closed box exactly for
        ``t_enter <= t <= t_exit``; ``t_enter > t_exit`` where it misses. A direction component of exactly
        zero (a ray parallel to two faces) is handled without dividing: that slab admits every ``t`` when
        the origin lies between its planes (boundary included) and none otherwise, so the result is finite
        or +-inf, never NaN. Differentiable in origins, directions and the box.
    """
    parallel = directions == 0
    safe = torch.where(parallel, torch.ones_like(directions), directions)
    t_lo = (lo - origins) / safe
    t_hi = (hi - origins) / safe
    inside = (origins >= lo) & (origins <= hi)
    inf = torch.full_like(t_lo, float("inf"))
    t_min = torch.where(parallel, torch.where(inside, -inf, inf), torch.minimum(t_lo, t_hi))
    t_max = torch.where(parallel, torch.where(inside, inf, -inf), torch.maximum(t_lo, t_hi))
    return t_min.amax(-1), t_max.amin(-1)


def clip_to_box(
    origins: Tensor, directions: Tensor, near: Tensor, far: Tensor, lo: Tensor, hi: Tensor
) -> tuple[Tensor, Tensor]:
    """``(start, end)``, each ``(R,)``: the part of ``[near, far]`` where each ray is inside its box
    (``ray_box_intersect``); ``start = end`` (finite) where that part is empty, so that sampling it gives
    zero-length padding."""
    enter, exit_ = ray_box_intersect(origins, directions, lo, hi)
    start = torch.maximum(enter, near)
    start = torch.where(torch.isfinite(start), start, near)  # parallel to a slab and outside it
    end = torch.minimum(exit_, far)
    end = torch.where(torch.isfinite(end) & (end > start), end, start)
    return start, end


@dataclass(frozen=True)
class RaySamples:
    """``S`` intervals along each of ``R`` rays, front to back.

    Attributes:
        t_start, t_end: ``(R, S)``: interval ``s`` of ray ``r`` is ``[t_start[r, s], t_end[r, s]]``, with
            ``t_end[r, s] <= t_start[r, s + 1]``. Zero-length intervals are padding.
        t: ``(R, S)`` where interval ``s`` is evaluated, ``t_start <= t <= t_end``.
    """

    t_start: Tensor
    t_end: Tensor
    t: Tensor

    @property
    def lengths(self) -> Tensor:
        """``(R, S)`` interval lengths ``t_end - t_start``."""
        return self.t_end - self.t_start

    def points(self, origins: Tensor, directions: Tensor) -> Tensor:
        """``(R, S, 3)`` world points ``origins[r] + t[r, s] * directions[r]`` of ``(R, 3)`` rays."""
        return origins[:, None] + self.t[..., None] * directions[:, None]


def stratified_samples(
    near: Tensor,
    far: Tensor,
    num_samples: int,
    randomized: bool = False,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """``num_samples`` equal intervals tiling ``[near, far]`` of each ray, evaluated at their midpoints, or
    with ``randomized`` at a uniformly random point of each (stratified sampling, Mildenhall et al. 2020,
    eq. 2). ``near``, ``far``: ``(R,)`` with ``far >= near`` (``far == near`` gives zero-length padding).
    Differentiable in ``near`` and ``far``."""
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if near.shape != far.shape or near.dim() != 1:
        raise ValueError(
            f"near and far must both have shape (R,), got {tuple(near.shape)}, {tuple(far.shape)}"
        )
    if not bool((far >= near).all()):
        raise ValueError(
            "far must be >= near (and both finite) for every ray (far = near gives zero-length padding)"
        )
    if not bool(torch.isfinite(near).all()):
        raise ValueError("near and far must be finite")
    steps = torch.linspace(0, 1, num_samples + 1, dtype=near.dtype, device=near.device)
    edges = near[:, None] + (far - near)[:, None] * steps
    start, end = edges[:, :-1], edges[:, 1:]
    u = uniform(tuple(start.shape), near, generator) if randomized else torch.full_like(start, 0.5)
    return RaySamples(start, end, start + u * (end - start))


def intervals_around(t: Tensor, near: Tensor, far: Tensor) -> RaySamples:
    """Intervals for sorted sample parameters ``t`` ``(R, S)`` inside ``[near, far]`` ``(R,)``: each sample
    owns the stretch from the midpoint with its predecessor to the midpoint with its successor, the first
    starting at ``near`` and the last ending at ``far`` (so the intervals tile ``[near, far]``)."""
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    start = torch.cat([near[:, None], mid], 1)
    end = torch.cat([mid, far[:, None]], 1)
    return RaySamples(start, end, t)


def resample(
    samples: RaySamples,
    weights: Tensor,
    num_samples: int,
    near: Tensor,
    far: Tensor,
    randomized: bool = False,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """The fine samples of hierarchical sampling (Mildenhall et al. 2020, section 5.2): the union of the
    coarse samples' parameters and ``num_samples`` drawn by ``importance_samples`` from ``weights``, sorted,
    as ``intervals_around`` them over ``[near, far]`` (no gradient through the positions)."""
    extra = importance_samples(samples, weights, num_samples, randomized, generator)
    t_all, _ = torch.sort(torch.cat([samples.t.detach(), extra], 1), 1)
    return intervals_around(t_all, near, far)


def importance_samples(
    samples: RaySamples,
    weights: Tensor,
    num_samples: int,
    randomized: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``(R, num_samples)`` sorted parameters drawn from the piecewise-constant density proportional to
    ``weights`` ``(R, S)`` over the intervals of ``samples`` (hierarchical sampling, Mildenhall et al. 2020,
    section 5.2, by inverse transform sampling). ``1e-5`` of each interval's length is added to its weight
    so that rays with no weight sample uniformly. Without ``randomized`` the quantiles are evenly spaced
    (``(k + 1/2) / n``). No gradient flows through the returned positions (NeRF's choice)."""
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if weights.shape != samples.t.shape:
        raise ValueError(
            f"weights must have shape {tuple(samples.t.shape)} like the samples, got {tuple(weights.shape)}"
        )
    start, end = samples.t_start.detach(), samples.t_end.detach()
    lengths = end - start
    if bool((weights.detach() < 0).any()) or not bool(torch.isfinite(weights.detach()).all()):
        raise ValueError("weights must be finite and >= 0")
    w = weights.detach() + 1e-5 * lengths
    total = w.sum(1, keepdim=True)
    cdf = torch.cumsum(w, 1) / total.clamp_min(torch.finfo(w.dtype).tiny)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], 1)  # (R, S + 1) at the interval starts
    R = w.shape[0]
    if randomized:
        u = uniform((R, num_samples), w, generator)
        u = (torch.arange(num_samples, dtype=w.dtype, device=w.device) + u) / num_samples
    else:
        u = ((torch.arange(num_samples, dtype=w.dtype, device=w.device) + 0.5) / num_samples).expand(R, -1)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[1] - 1) - 1  # interval of each quantile
    c0 = torch.gather(cdf, 1, idx)
    c1 = torch.gather(cdf, 1, idx + 1)
    frac = torch.where(
        c1 > c0, (u - c0) / (c1 - c0).clamp_min(torch.finfo(w.dtype).tiny), torch.zeros_like(u)
    )
    s0 = torch.gather(start, 1, idx)
    return s0 + frac.clamp(0, 1) * torch.gather(lengths, 1, idx)


@dataclass(frozen=True)
class CameraRays:
    """The rays through every pixel centre of a batch of cameras, flattened row-major per camera.

    Attributes:
        origins, directions: ``(B, H * W, 3)`` (``Cameras.rays``; unit directions).
        t_near, t_far: ``(B, H * W)`` the ray parameters at the camera's near and far depth.
        z_per_t: ``(B, H * W)`` camera-space depth gained per unit of ``t``, so that a sample at ``t`` has
            depth ``t * z_per_t`` (its direction's camera-space z component).
    """

    origins: Tensor
    directions: Tensor
    t_near: Tensor
    t_far: Tensor
    z_per_t: Tensor

    def select(self, pixels: slice | Tensor) -> CameraRays:
        """The rays of the given flat pixel indices (or slice) of every camera: ``(B, n, ...)``."""
        return CameraRays(*(x[:, pixels] for x in self._fields()))

    def flatten(self) -> CameraRays:
        """All ``B * H * W`` rays as one camera's: ``(1, B * H * W, ...)`` (e.g. to draw random rays)."""
        return CameraRays(*(x.reshape(1, -1, *x.shape[2:]) for x in self._fields()))

    def _fields(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.origins, self.directions, self.t_near, self.t_far, self.z_per_t


def camera_rays(cameras: Cameras) -> CameraRays:
    """``CameraRays`` of every pixel centre of ``cameras`` (perspective rays start at the camera centre,
    orthographic ones on its ``z = 0`` plane, so depth is ``t * z_per_t`` in both cases)."""
    origins, directions = cameras.rays()
    B = len(cameras)
    origins, directions = origins.reshape(B, -1, 3), directions.reshape(B, -1, 3)
    z_per_t = torch.einsum("bij,bpj->bpi", cameras.R, directions)[..., 2]
    return CameraRays(
        origins,
        directions,
        cameras.near_t[:, None] / z_per_t,
        cameras.far_t[:, None] / z_per_t,
        z_per_t,
    )
