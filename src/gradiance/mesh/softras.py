"""Soft Rasterizer (Liu, Li, Chen, Li, ICCV 2019, "Soft Rasterizer: A Differentiable Renderer for Image-based
3D Reasoning"): every pixel sees every nearby face through a smooth coverage probability.

For pixel ``i`` and face ``j`` (eq. 1 of the paper): ``D_ij = sigmoid(s_ij * d_ij^2 / sigma)`` with ``d_ij``
the distance from the pixel centre to the face's projection (``s_ij = +1`` inside, ``-1`` outside), in
units where the image's shorter side spans 2 (the paper's normalised coordinates), or, with the
"barycentric" distance, ``d_ij = min_k lambda_k`` of the screen-space barycentrics (negative outside).

- Silhouette (eq. 4, "prod"): ``A_i = 1 - prod_j (1 - D_ij)``, computed as ``1 - exp(-sum_j softplus(x))``
  with ``x = s d^2 / sigma`` so that it and its gradient stay finite; also "sum" (clamped to 1) and "max".
- Colour (eq. 6-7, "softmax"): ``I_i = sum_j w_ij C_ij + w_b C_b`` with
  ``w_ij = D_ij exp(z_ij / gamma) / (sum_k D_ik exp(z_ik / gamma) + exp(epsilon / gamma))`` and
  ``z = (far - depth) / (far - near)`` the normalised inverse depth; ``C_ij`` is the face's shaded colour at
  the pixel from barycentrics clipped to the face. Also "hard": the nearest face with ``D >= 1/2``.

Exact over all pairs with ``D_ij > cutoff``: for the Euclidean distance they lie within
``r = sqrt(sigma * ln(1 / cutoff - 1))`` of the face, which bounds the search; memory grows with those
pairs, processed in chunks under ``max_pairs_per_chunk``. The silhouette uses every such pair; the
colour shades only the pairs whose softmax weight is at least ``cutoff`` times their pixel's largest
(``colour_pairs``; each left-out pair changes the colour by less than ``cutoff``, relative), found from
bounds on the pairs' depths so that only the pairs that may matter get barycentrics and depths.
``faces_per_pixel`` keeps only the K nearest faces per pixel, as PyTorch3D's soft shaders do.

This module is the reference: pairs as tensors with autograd. On CPU with numba, ``softras_compiled`` runs
the same function through kernels that keep nothing per pair (memory per pixel and per face).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torch.nn.functional import softplus

from ..backends.torch import rasterize as raster_torch
from ..backends.torch.soft import edge_distance2
from ..core.cameras import Cameras
from ..core.checks import check_choice, check_positive
from ..core.compositing import nearest_per_pixel
from ..core.packing import gather_rows
from .instances import FaceInstances, pairs_near_by


@dataclass(frozen=True)
class SoftRasSettings:
    """Parameters of the Soft Rasterizer (defaults as in the paper's released code).

    Attributes:
        sigma: sharpness of the coverage probability, in normalised units squared (> 0).
        gamma: softmax temperature of the depth aggregation (> 0).
        epsilon: background term of the softmax (the background's normalised inverse depth).
        distance: "euclidean" or "barycentric".
        aggregate_alpha: "prod" (the paper's), "sum" or "max".
        aggregate_rgb: "softmax" (the paper's) or "hard".
        cutoff: pairs with ``D <= cutoff`` outside the face are left out (documented exactness bound).
        faces_per_pixel: None for every pair above the cutoff, or K to keep the K nearest per pixel.
        max_pairs_per_chunk: candidate pairs processed at once (memory budget).
        shading_chunk: colour pairs shaded at once where the compiled CPU path shades in chunks (each
            chunk is shaded again in the backward pass instead of keeping its intermediate values; a few
            hundred bytes per pair while a chunk is live).
    """

    sigma: float = 1e-4
    gamma: float = 1e-4
    epsilon: float = 1e-3
    distance: str = "euclidean"
    aggregate_alpha: str = "prod"
    aggregate_rgb: str = "softmax"
    cutoff: float = 1e-4
    faces_per_pixel: int | None = None
    max_pairs_per_chunk: int = 8_000_000
    shading_chunk: int = 1 << 18

    def __post_init__(self) -> None:
        check_positive(self.sigma, "sigma")
        check_positive(self.gamma, "gamma")
        check_choice(self.distance, "distance", ("euclidean", "barycentric"))
        check_choice(self.aggregate_alpha, "aggregate_alpha", ("prod", "sum", "max"))
        check_choice(self.aggregate_rgb, "aggregate_rgb", ("softmax", "hard"))
        if not 0 < self.cutoff < 0.5:
            raise ValueError(f"cutoff must be in (0, 0.5), got {self.cutoff}")
        if self.faces_per_pixel is not None and (
            not isinstance(self.faces_per_pixel, int) or self.faces_per_pixel < 1
        ):
            raise ValueError(f"faces_per_pixel must be None or a positive int, got {self.faces_per_pixel!r}")
        for name in ("max_pairs_per_chunk", "shading_chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    def radius(self) -> float:
        """Distance (normalised units) beyond which ``D <= cutoff`` for the Euclidean distance."""
        return math.sqrt(self.sigma * math.log(1 / self.cutoff - 1))


@dataclass(frozen=True)
class SoftPairs:
    """The pixel-face pairs of a soft rasterisation, all ``(P, ...)`` with autograd.

    Attributes:
        pixel: flat pixel index ``b * H * W + i * W + j``.
        camera: camera ``b`` of the pixel.
        face: packed face id.
        prob: ``D``, the coverage probability.
        logit: ``s d^2 / sigma``, so that ``prob = sigmoid(logit)``.
        bary: ``(P, 3)`` perspective-correct barycentrics of the pixel centre, clipped to the face (None
            when ``soft_pairs`` was asked for coverage only).
        depth: camera-space depth of the face point at those barycentrics (None likewise).
        instance: the face instance (``FaceInstances`` row) of the pair.
    """

    pixel: Tensor
    camera: Tensor
    face: Tensor
    prob: Tensor
    logit: Tensor
    bary: Tensor | None
    depth: Tensor | None
    instance: Tensor

    def surface(self) -> tuple[Tensor, Tensor]:
        """``(bary, depth)``; pairs made without them raise (``with_surface`` adds them)."""
        if self.bary is None or self.depth is None:
            raise ValueError("these pairs have no barycentrics or depths: pass them through with_surface")
        return self.bary, self.depth


def soft_pairs(
    inst: FaceInstances,
    cameras: Cameras,
    settings: SoftRasSettings,
    surface: str = "autograd",
    backend: str = "auto",
) -> SoftPairs:
    """Every pixel-face pair with ``D > cutoff`` (see the module docstring).

    ``surface`` says what the pairs' ``bary`` and ``depth`` are: "autograd" (differentiable), "values"
    (no autograd) or "none" (not computed, except for ``faces_per_pixel``, which orders pairs by depth).
    The colour path asks for "none": ``colour_pairs`` bounds the depths of all pairs and computes them for
    the few that may matter, and ``with_surface`` recomputes ``bary`` and ``depth`` with autograd for the
    pairs that are kept, which saves the passes over the pairs that only shape the silhouette. ``backend``
    finds the pairs near each face with the torch reference or the compiled twin (the same pairs)."""
    check_choice(surface, "surface", ("autograd", "values", "none"))
    H, W = cameras.image_size
    scale = min(H, W) / 2.0  # pixels per normalised unit
    tris, owner, radius = screen_triangles(inst, cameras, settings)
    find = pairs_near_by(backend, tris.device)
    near = find(tris, owner, inst.camera, (H, W), radius, settings.max_pairs_per_chunk)
    pixel, tri = near.pixel, near.tri
    centre = pixel_centres(pixel, H, W, tris.dtype)
    if settings.distance == "euclidean":
        d2 = edge_distance2(centre, tris, near.edge, near.t, index=tri)
        logit = torch.where(near.inside, d2, -d2) / (settings.sigma * scale * scale)
    else:
        lam = _screen_barycentrics(centre, gather_rows(tris, tri)).amin(1)
        logit = torch.sign(lam) * lam * lam / settings.sigma
    keep = torch.nonzero(logit.detach() > math.log(settings.cutoff / (1 - settings.cutoff))).flatten()
    pixel, logit, inst_id = (
        gather_rows(pixel, keep),
        gather_rows(logit, keep),
        gather_rows(owner, gather_rows(tri, keep)),
    )
    bary = depth = None
    if surface != "none" or settings.faces_per_pixel is not None:
        with torch.set_grad_enabled(surface == "autograd" and torch.is_grad_enabled()):
            bary, depth = clipped_barycentrics(surface_rows(inst), inst_id, centre[keep])
    pairs = SoftPairs(
        pixel,
        gather_rows(inst.camera, inst_id),
        gather_rows(inst.face, inst_id),
        torch.sigmoid(logit),
        logit,
        bary,
        depth,
        inst_id,
    )
    if settings.faces_per_pixel is not None:
        pairs = _nearest_pairs(pairs, settings.faces_per_pixel)
    return pairs


def screen_triangles(
    inst: FaceInstances, cameras: Cameras, settings: SoftRasSettings
) -> tuple[Tensor, Tensor, float | Tensor]:
    """``(tris, owner, radius)``: the instances' screen triangles after near-plane clipping (``(T, 3, 2)``
    pixels, with autograd), the instance of each, and the search radius in pixels beyond each triangle
    (one for all with the Euclidean distance, ``(T,)`` with the barycentric one)."""
    H, W = cameras.image_size
    near_i = gather_rows(cameras.near_t, inst.camera)
    tris, _, owner = raster_torch.clip_near(inst.corner_hom(), inst.corner_depth(), near_i)
    if settings.distance == "euclidean":
        return tris, owner, settings.radius() * min(H, W) / 2.0
    # min(lambda) > -r is the face scaled by 1 + 3 r about its centroid: within 3 r longest edges
    edges = (tris - tris.roll(1, dims=1)).norm(dim=-1).amax(1).detach()
    return tris, owner, 3 * math.sqrt(settings.sigma * math.log(1 / settings.cutoff - 1)) * edges


def with_surface(pairs: SoftPairs, inst: FaceInstances, image_size: tuple[int, int]) -> SoftPairs:
    """``pairs`` with ``bary`` and ``depth`` recomputed with autograd (see ``soft_pairs``)."""
    H, W = image_size
    centre = pixel_centres(pairs.pixel, H, W, inst.hom.dtype)
    bary, depth = clipped_barycentrics(surface_rows(inst), pairs.instance, centre)
    return replace(pairs, bary=bary, depth=depth)


def pixel_centres(pixel: Tensor, H: int, W: int, dtype: torch.dtype) -> Tensor:
    """``(P, 2)`` centres ``(col + 0.5, row + 0.5)`` of flat pixel indices ``b * H * W + row * W + col``."""
    col = pixel % W
    row = torch.div(pixel, W, rounding_mode="floor") % H
    return torch.stack([col, row], -1).to(dtype) + 0.5


def _screen_barycentrics(p: Tensor, t: Tensor) -> Tensor:
    """``(P, 3)`` 2D barycentrics of points in screen triangles (negative outside)."""
    a, b, c = t.unbind(1)
    area = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    safe = torch.where(area == 0, torch.ones_like(area), area)

    def cross(u: Tensor, v: Tensor) -> Tensor:
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    return torch.stack([cross(c - b, p - b), cross(a - c, p - c), cross(b - a, p - a)], 1) / safe[:, None]


def surface_rows(inst: FaceInstances) -> tuple[Tensor, Tensor]:
    """``(planes, z)`` for ``clipped_barycentrics``: the plane equations of ``e_k`` per face instance as 9
    contiguous rows ``(9, I)``, and the corner depths as 3 rows ``(3, I)``. Slicing columns of a ``(P, 9)``
    gather instead costs a full-size zero fill per slice in the backward pass."""
    planes = raster_torch.barycentric_planes(inst.corner_hom()).reshape(-1, 9).T.contiguous()
    return planes, inst.corner_depth().T.contiguous()


def clipped_barycentrics(
    rows: tuple[Tensor, Tensor], inst_id: Tensor, centre: Tensor
) -> tuple[Tensor, Tensor]:
    """Perspective-correct barycentrics of the pixel centres on their face instances (``surface_rows``),
    clipped to the face and renormalised (the paper's colour lookup), and the depth they give."""
    planes, z = rows
    u, v = centre[:, 0].contiguous(), centre[:, 1].contiguous()

    def row(k: int) -> Tensor:
        return gather_rows(planes[k], inst_id)

    e = [torch.addcmul(torch.addcmul(row(3 * k + 2), row(3 * k), u), row(3 * k + 1), v) for k in range(3)]
    s = e[0] + e[1] + e[2]
    inv = torch.where(s == 0, torch.ones_like(s), s).reciprocal()
    b = [(ek * inv).clamp_min(0) for ek in e]
    total = b[0] + b[1] + b[2]
    ok = total > 0
    inv_total = torch.where(ok, total, torch.ones_like(total)).reciprocal()
    third = torch.full_like(total, 1 / 3)
    b = [torch.where(ok, bk * inv_total, third) for bk in b]
    depth = b[0] * gather_rows(z[0], inst_id)
    for k in (1, 2):
        depth = torch.addcmul(depth, b[k], gather_rows(z[k], inst_id))
    return torch.stack(b, 1), depth


def _nearest_pairs(pairs: SoftPairs, k: int) -> SoftPairs:
    """Keep the ``k`` nearest pairs (by depth) of every pixel."""
    return select_pairs(pairs, nearest_per_pixel(pairs.pixel, pairs.surface()[1], k))


def select_pairs(pairs: SoftPairs, index: Tensor) -> SoftPairs:
    """The pairs at ``index`` (keeps autograd)."""

    def pick(x: Tensor | None) -> Tensor | None:
        return None if x is None else gather_rows(x, index)

    return SoftPairs(
        pixel=gather_rows(pairs.pixel, index),
        camera=gather_rows(pairs.camera, index),
        face=gather_rows(pairs.face, index),
        prob=gather_rows(pairs.prob, index),
        logit=gather_rows(pairs.logit, index),
        bary=pick(pairs.bary),
        depth=pick(pairs.depth),
        instance=gather_rows(pairs.instance, index),
    )


def colour_pairs(
    pairs: SoftPairs,
    num_pixels: int,
    near: Tensor,
    far: Tensor,
    settings: SoftRasSettings,
    surface: tuple[FaceInstances, tuple[int, int]] | None = None,
) -> Tensor:
    """Indices of the pairs that matter for the softmax colour: those whose weight ``D exp(z / gamma)`` is at
    least ``cutoff`` times the largest weight of their pixel (the background's included). Shading only
    these changes each pixel's colour by less than ``cutoff`` per left-out pair, relative to the largest.

    Pairs without depths (``soft_pairs(..., surface="none")``) need ``surface = (instances, image size)``:
    a pair's depth lies between its face's nearest and farthest corner (clipped barycentrics are convex
    weights), which bounds its weight; the pairs whose upper bound falls below their pixel's largest lower
    bound by more than the cutoff (plus a margin of 1 % for rounding) are left out without their depth, and
    the rest get their depth and the exact test. The result is the same."""
    if settings.aggregate_rgb != "softmax":
        return torch.arange(pairs.pixel.shape[0], device=pairs.pixel.device)
    log_cut = math.log(1 / settings.cutoff)
    with torch.no_grad():
        n, f = gather_rows(near, pairs.camera), gather_rows(far, pairs.camera)
        span = f - n  # the weight's log is log D + (f - depth) / span / gamma
        log_d = torch.nn.functional.logsigmoid(pairs.logit)
        background = torch.full(
            (num_pixels,), settings.epsilon / settings.gamma, dtype=log_d.dtype, device=log_d.device
        )
        pixel, candidates, depth = pairs.pixel, None, pairs.depth
        if depth is None:
            if surface is None:
                raise ValueError("colour_pairs needs surface=(instances, image_size) for pairs without depth")
            inst, (H, W) = surface
            z = inst.corner_depth().detach()
            z_lo, z_hi = (gather_rows(t, pairs.instance) for t in (z.amin(1), z.amax(1)))
            upper = log_d + (f - z_lo) / span / settings.gamma
            lower = log_d + (f - z_hi) / span / settings.gamma
            floor = background.scatter_reduce(0, pixel, lower, "amax", include_self=True)
            candidates = torch.nonzero(upper >= gather_rows(floor, pixel) - log_cut - 0.01).flatten()
            pixel, inst_id = gather_rows(pixel, candidates), gather_rows(pairs.instance, candidates)
            centre = pixel_centres(pixel, H, W, inst.hom.dtype)
            _, depth = clipped_barycentrics(surface_rows(inst), inst_id, centre)
            log_d, f, span = (gather_rows(t, candidates) for t in (log_d, f, span))
        log_w = log_d + (f - depth) / span / settings.gamma
        top = background.scatter_reduce(0, pixel, log_w, "amax", include_self=True)
        keep = torch.nonzero(log_w >= gather_rows(top, pixel) - log_cut).flatten()
    return keep if candidates is None else gather_rows(candidates, keep)


def aggregate_alpha(pairs: SoftPairs, num_pixels: int, mode: str) -> Tensor:
    """``(num_pixels,)`` silhouette from the pairs' probabilities (module docstring)."""
    if mode == "prod":
        log_transmit = torch.zeros(num_pixels, dtype=pairs.prob.dtype, device=pairs.prob.device)
        log_transmit = log_transmit.index_add(0, pairs.pixel, -softplus(pairs.logit))
        return 1 - torch.exp(log_transmit)
    if mode == "sum":
        total = pairs.prob.new_zeros(num_pixels).index_add(0, pairs.pixel, pairs.prob)
        return total.clamp_max(1)
    return pairs.prob.new_zeros(num_pixels).scatter_reduce(
        0, pairs.pixel, pairs.prob, "amax", include_self=True
    )


def aggregate_rgb(
    pairs: SoftPairs,
    colors: Tensor,
    background: Tensor,
    num_pixels: int,
    near: Tensor,
    far: Tensor,
    settings: SoftRasSettings,
) -> Tensor:
    """``(num_pixels, C)`` colour from the pairs' shaded colours ``(P, C)`` (module docstring)."""
    C = colors.shape[-1]
    if settings.aggregate_rgb == "hard":
        return _hard_rgb(pairs, colors, background, num_pixels)
    n, f = gather_rows(near, pairs.camera), gather_rows(far, pairs.camera)
    logits = (f - pairs.surface()[1]) / (f - n) / settings.gamma
    bg_logit = settings.epsilon / settings.gamma
    top = torch.full((num_pixels,), bg_logit, dtype=colors.dtype, device=colors.device)
    top = top.scatter_reduce(0, pairs.pixel, logits.detach(), "amax", include_self=True)
    weight = pairs.prob * torch.exp(logits - gather_rows(top, pairs.pixel))
    bg_weight = torch.exp(bg_logit - top)
    norm = bg_weight.index_add(0, pairs.pixel, weight)
    acc = colors.new_zeros(num_pixels, C).index_add(0, pairs.pixel, weight[:, None] * colors)
    return (acc + bg_weight[:, None] * background) / norm[:, None]


def _hard_rgb(pairs: SoftPairs, colors: Tensor, background: Tensor, num_pixels: int) -> Tensor:
    covered = torch.nonzero(pairs.prob.detach() >= 0.5).flatten()
    depth = gather_rows(pairs.surface()[1].detach(), covered)
    best = torch.full((num_pixels,), torch.inf, dtype=depth.dtype, device=depth.device)
    best = best.scatter_reduce(0, gather_rows(pairs.pixel, covered), depth, "amin", include_self=True)
    win = gather_rows(
        covered, torch.nonzero(depth == gather_rows(best, gather_rows(pairs.pixel, covered))).flatten()
    )
    out = background.to(colors.dtype).expand(num_pixels, colors.shape[-1]).clone()
    return out.index_copy(0, gather_rows(pairs.pixel, win), gather_rows(colors, win))
