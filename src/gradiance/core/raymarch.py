"""Aggregation of the samples along rays into pixels, shared by the volume and implicit-surface renderers.

Ray ``r`` carries ``S`` samples in front-to-back order, sample ``s`` with a value ``sigma_s`` (density or
occupancy), an interval length ``delta_s`` (0 marks padding), features ``c_s`` and a camera-space depth
``z_s``. Each mode defines per-sample weights ``w_s`` and the ray's alpha; then
``features = sum_s w_s c_s + (1 - alpha) background`` and ``depth = sum_s w_s z_s / sum_s w_s`` (the
expected depth; 0 where the weights vanish). With the optical depth ``tau_s = sigma_s delta_s``:

- "emission_absorption" (Max 1995, eq. 8 quadrature; Mildenhall et al. 2020, eq. 3):
  ``w_s = T_s (1 - exp(-tau_s))`` with ``T_s = exp(-sum_{q<s} tau_q)``; ``alpha = 1 - exp(-sum_s tau_s)``.
  Exact for a field that is constant over each interval.
- "absorption" (absorption only, the X-ray model; Henzler et al. 2019): ``w_s = tau_s``, so ``features`` is
  the line integral of ``sigma c`` and, with ``c = 1``, the optical depth; ``alpha = 1 - exp(-sum_s tau_s)``
  (the transmitted fraction is ``1 - alpha``).
- "maximum" (maximum-intensity projection; the projection of perspective transformer nets, Yan et al. 2016,
  eq. 4): ``sigma`` is an occupancy in ``[0, 1]``; ``alpha = max_s sigma_s`` over the non-padding samples
  and ``w`` is ``alpha`` at the first sample reaching it and zero elsewhere, so ``features`` is that
  sample's features times alpha (over the background, as for the other modes). The gradient reaches only
  that sample.
- "ray_termination" (differentiable ray consistency, Tulsiani et al. 2017, eq. 1): ``sigma`` is the
  occupancy of the ``s``-th voxel the ray crosses; the ray stops there with probability
  ``w_s = sigma_s prod_{q<s} (1 - sigma_q)`` and escapes with ``1 - alpha = prod_s (1 - sigma_s)``.
  Interval lengths only mark padding: with stratified samples each sample is one event.

Everything is a differentiable function of ``sigma``, ``delta``, ``c`` and ``z`` by autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_choice, check_same_device, check_tensor

AGGREGATIONS = ("emission_absorption", "absorption", "maximum", "ray_termination")
OCCUPANCY_MODES = ("maximum", "ray_termination")


@dataclass(frozen=True)
class RayAggregate:
    """Per-ray results (module docstring).

    Attributes:
        features: ``(R, C)``.
        alpha: ``(R,)``.
        depth: ``(R,)`` expected camera-space depth, 0 where no weight.
        weights: ``(R, S)`` per-sample weights ``w``.
        sample_depth: ``(R, S)`` the samples' camera-space depths ``z`` (as given).
    """

    features: Tensor
    alpha: Tensor
    depth: Tensor
    weights: Tensor
    sample_depth: Tensor


def aggregate_rays(
    sigma: Tensor,
    lengths: Tensor,
    features: Tensor,
    depth: Tensor,
    mode: str = "emission_absorption",
    background: Tensor | None = None,
) -> RayAggregate:
    """Aggregate samples along rays (module docstring).

    Args:
        sigma: ``(R, S)`` densities (``>= 0``) or, for "maximum" and "ray_termination", occupancies in
            ``[0, 1]`` (``ValueError`` otherwise).
        lengths: ``(R, S)`` interval lengths ``>= 0``; 0 marks padding.
        features: ``(R, S, C)`` (``C`` may be 0).
        depth: ``(R, S)`` camera-space depth of each sample.
        mode: one of ``AGGREGATIONS``.
        background: ``(C,)`` or None (zero).
    """
    check_choice(mode, "mode", AGGREGATIONS)
    check_tensor(sigma, "sigma", (None, None))
    check_same_device(sigma=sigma, lengths=lengths, features=features, depth=depth, background=background)
    R, S = sigma.shape
    if (
        lengths.shape != (R, S)
        or depth.shape != (R, S)
        or features.shape[:2] != (R, S)
        or features.dim() != 3
    ):
        raise ValueError(
            f"lengths and depth must have shape {(R, S)} and features {(R, S)} + (C,) like sigma, got "
            f"{tuple(lengths.shape)}, {tuple(depth.shape)}, {tuple(features.shape)}"
        )
    s = sigma.detach()
    if bool((s < 0).any()) or not bool(torch.isfinite(s).all()):
        raise ValueError("sigma must be finite and >= 0 (map free parameters through softplus or relu first)")
    if mode in OCCUPANCY_MODES and bool((s > 1).any()):
        raise ValueError(f"sigma must be an occupancy in [0, 1] for mode {mode!r} (use a sigmoid)")
    if bool((lengths.detach() < 0).any()):
        raise ValueError("lengths must be >= 0")
    valid = lengths > 0
    if mode == "emission_absorption":
        tau = sigma * lengths
        before = torch.cumsum(tau, 1) - tau
        weights = torch.exp(-before) * -torch.expm1(-tau)
        alpha = -torch.expm1(-tau.sum(1))
    elif mode == "absorption":
        weights = sigma * lengths
        alpha = -torch.expm1(-weights.sum(1))
    elif mode == "maximum":
        occ = torch.where(valid, sigma, torch.zeros_like(sigma))
        alpha, idx = occ.max(1) if S else (occ.new_zeros(R), occ.new_zeros(R, dtype=torch.long))
        weights = torch.zeros_like(occ).scatter(1, idx[:, None], alpha[:, None])
    else:
        occ = torch.where(valid, sigma, torch.zeros_like(sigma))
        escape = torch.cumprod(1 - occ, 1)
        before = torch.cat([torch.ones_like(occ[:, :1]), escape[:, :-1]], 1)
        weights = occ * before
        alpha = 1 - escape[:, -1] if S else occ.new_zeros(R)
    out_f = (weights[..., None] * features).sum(1)
    if background is not None:
        if background.shape != (features.shape[2],):
            raise ValueError(
                f"background must have shape ({features.shape[2]},), got {tuple(background.shape)}"
            )
        out_f = out_f + (1 - alpha)[:, None] * background
    total = weights.sum(1)
    has = total > 0
    out_z = torch.where(has, (weights * depth).sum(1) / torch.where(has, total, torch.ones_like(total)), 0.0)
    return RayAggregate(out_f, alpha, out_z, weights, depth)


def ray_consistency_loss(
    rays: RayAggregate,
    mask: Tensor | None = None,
    depth: Tensor | None = None,
    escape_depth: float | Tensor | None = None,
) -> Tensor:
    """``(R,)`` the differentiable ray consistency loss of Tulsiani et al. 2017 (eq. 5): the expected cost of
    the event that ends each ray, ``sum_s w_s psi(s) + (1 - alpha) psi(escape)``, with ``w`` the
    "ray_termination" weights (``aggregate_rays``; the other modes' weights are not event probabilities),
    summed over the observations given:

    - ``mask`` ``(R,)`` in ``[0, 1]`` (1: the ray should hit something): stopping costs ``1 - mask``,
      escaping costs ``mask`` (eq. 6);
    - ``depth`` ``(R,)`` observed depth: stopping at sample ``s`` costs ``|z_s - depth|``, escaping costs
      ``|escape_depth - depth|`` (eq. 7; ``escape_depth`` is where an escaping ray is taken to end, e.g. the
      far side of the grid, and is required with ``depth``).
    """
    R = rays.alpha.shape[0]
    if mask is None and depth is None:
        raise ValueError("give mask, depth or both: the observations the rays must be consistent with")
    loss = rays.alpha.new_zeros(R)
    escape = 1 - rays.alpha
    if mask is not None:
        if mask.shape != (R,):
            raise ValueError(f"mask must have shape ({R},), got {tuple(mask.shape)}")
        loss = loss + rays.weights.sum(1) * (1 - mask) + escape * mask
    if depth is not None:
        if depth.shape != (R,):
            raise ValueError(f"depth must have shape ({R},), got {tuple(depth.shape)}")
        if escape_depth is None:
            raise ValueError("escape_depth is required with depth (where an escaping ray is taken to end)")
        far = torch.as_tensor(escape_depth, dtype=depth.dtype, device=depth.device)
        if far.shape not in ((), (R,)):
            raise ValueError(f"escape_depth must be a number or have shape ({R},), got {tuple(far.shape)}")
        stop = (rays.weights * (rays.sample_depth - depth[:, None]).abs()).sum(1)
        loss = loss + stop + escape * (far - depth).abs()
    return loss
