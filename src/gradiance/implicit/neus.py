"""Volumetric rendering of signed distance fields (NeuS, Wang et al. 2021), the soft alternative to hitting
the surface.

Each ray is cut into intervals (stratified over ``[near, far]``, then with ``importance_samples > 0`` the
union with samples drawn from a first pass's weights, as for neural fields). At every interval's sample
``t`` the network gives the distance ``f``, its gradient ``n`` (the normal, differentiable) and features;
the distances at the interval's ends are estimated along the ray as ``f - c (t - t_start)`` and
``f + c (t_end - t)`` with ``c = -relu(-n . d)`` (the official implementation's fully annealed cosine,
which keeps the estimate monotone through the surface). The discrete opacity of an interval is (NeuS, eq. 13)

    alpha_i = max((Phi_s(f_start) - Phi_s(f_end)) / Phi_s(f_start), 0),   Phi_s(x) = sigmoid(s x),

and the colours of the samples are composited with ``w_i = alpha_i prod_{j<i} (1 - alpha_j)``: the
"ray_termination" aggregation of ``gradiance.core.raymarch`` with these opacities, shared with the volume
renderer. ``s`` (``inv_s``) is learnable; larger is sharper. ``march_neus`` also returns the samples'
gradients for the eikonal loss (Gropp et al. 2020), ``eikonal_loss``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.raymarch import RayAggregate, aggregate_rays
from ..core.rays import RaySamples, resample, stratified_samples
from .tracing import field_gradient_with_features, unit_normals

SdfWithFeatures = Callable[[Tensor], tuple[Tensor, Tensor]]
ColourFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class NeuSMarch:
    """Per-ray results: the aggregate (colour, alpha, weights, and as ``depth``/``sample_depth`` the ray
    parameter ``t``, not camera depth: multiply by ``CameraRays.z_per_t``), the samples, and the
    ``(R, S, 3)`` field gradients at the samples."""

    rays: RayAggregate
    samples: RaySamples
    gradients: Tensor


def neus_alpha(f: Tensor, cos: Tensor, before: Tensor, after: Tensor, inv_s: Tensor) -> Tensor:
    """``(R, S)`` interval opacities of NeuS eq. 13 from the distances ``f`` at the samples, the directional
    derivatives ``n . d`` there, and the distances ``before = t - t_start`` and ``after = t_end - t`` from
    each sample to its interval's ends (module docstring); zero-length intervals get 0."""
    c = -torch.relu(-cos)
    f_start = f - c * before
    f_end = f + c * after
    cdf_start, cdf_end = torch.sigmoid(f_start * inv_s), torch.sigmoid(f_end * inv_s)
    alpha = ((cdf_start - cdf_end) / cdf_start.clamp_min(1e-10)).clamp(0, 1)
    return alpha * ((before + after) > 0)


def march_neus(
    sdf: SdfWithFeatures,
    colour: ColourFn,
    origins: Tensor,
    directions: Tensor,
    near: Tensor,
    far: Tensor,
    inv_s: Tensor,
    *,
    num_samples: int = 64,
    importance: int = 0,
    randomized: bool = False,
    background: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> NeuSMarch:
    """Render ``R`` rays through a signed distance network (module docstring).

    Args:
        sdf: ``points (N, 3) -> (distance (N,), features (N, F))``, e.g. ``NeuralSDF.with_features``.
        colour: ``(points, normals, view_directions, features) -> (N, C)``, e.g. ``RenderingNetwork``.
        origins, directions: ``(R, 3)`` rays with unit directions; ``near``, ``far``: ``(R,)``.
        inv_s: the scalar sharpness ``s`` (positive).
        num_samples, importance: stratified samples, and importance samples of the second pass.

    Every sample of every ray is evaluated at once with its gradient graph (memory grows with rays times
    samples): pass batches of rays, as training does, or chunk a full image.
    """
    if inv_s.dim() != 0 or not bool(inv_s.detach() > 0):
        raise ValueError(f"inv_s must be a positive scalar tensor, got {inv_s.detach().tolist()}")
    samples = stratified_samples(near, far, num_samples, randomized, generator)
    if importance:
        with torch.no_grad():
            first = _march(sdf, colour, samples, origins, directions, inv_s, background, gradients=False)
        samples = resample(samples, first.rays.weights, importance, near, far, randomized, generator)
    return _march(sdf, colour, samples, origins, directions, inv_s, background, gradients=True)


def _march(
    sdf: SdfWithFeatures,
    colour: ColourFn,
    samples: RaySamples,
    origins: Tensor,
    directions: Tensor,
    inv_s: Tensor,
    background: Tensor | None,
    gradients: bool,
) -> NeuSMarch:
    R, S = samples.t.shape
    points = samples.points(origins, directions).reshape(-1, 3)
    dirs = directions[:, None].expand(R, S, 3).reshape(-1, 3)
    f, grad, feats = field_gradient_with_features(sdf, points, gradients and torch.is_grad_enabled())
    rgb = colour(points, unit_normals(grad), dirs, feats)
    cos = (grad * dirs).sum(-1).reshape(R, S)
    before, after = samples.t - samples.t_start, samples.t_end - samples.t
    alpha = neus_alpha(f.reshape(R, S), cos, before, after, inv_s)
    depth = samples.t  # along the ray; callers scale by z_per_t for camera depth
    rays = aggregate_rays(alpha, samples.lengths, rgb.reshape(R, S, -1), depth, "ray_termination", background)
    return NeuSMarch(rays, samples, grad.reshape(R, S, 3))


def eikonal_loss(gradients: Tensor) -> Tensor:
    """``mean((|grad f| - 1)^2)`` over ``(..., 3)`` gradients (Gropp et al. 2020, eq. 2)."""
    return ((torch.linalg.vector_norm(gradients, dim=-1) - 1) ** 2).mean()
