"""Rendering 3D Gaussians (Kerbl et al. 2023): EWA projection, pixel-Gaussian pairs, front-to-back
compositing.

Projection (Zwicker et al. 2002, "EWA Splatting", eq. 31; Kerbl et al. eq. 5): with ``t = R mu + t_cam`` the
camera-space mean and ``J`` the Jacobian of the perspective map at ``t`` (whose ``x/z`` and ``y/z`` are
first clamped to 1.3 times the image's extent, as the paper's code does),
``Sigma' = J R Sigma R^T J^T + 0.3 I``: the 2D covariance in pixels with the 0.3-pixel low-pass term. Its
inverse is the conic ``(a, b, c)`` and its footprint radius ``ceil(3 sqrt(lambda_max))`` pixels. Gaussians
whose mean is not beyond the camera's near plane, or that reach no pixel of the image (below; with tiles, the
reference's rule: an empty tile rectangle), are culled.

Rasterisation: a Gaussian reaches every pixel of the 16 x 16 tiles its footprint square touches
(``tile_size``; the paper's tile binning, which decides which pixels evaluate which Gaussians), or with
``tile_size=None`` only the pixels whose centre lies in the square. At pixel centre ``p``,
``alpha = min(0.99, o exp(-d^T Sigma'^-1 d / 2))`` with ``d = p - mu'``; pairs with ``alpha < 1/255`` are
skipped; the candidates are only the pixels of those tiles within the box where ``alpha`` can reach
``1/255`` at all (``_within_reach``), which changes no pair. The pairs of each pixel are sorted by the
depth of their Gaussian's mean (the paper sorts per tile, which orders every pixel of the tile the same
way) and composited front to back with early termination
at transmittance ``1e-4`` (``gradiance.core.compositing``). Work and memory grow with the pairs, which are
generated in chunks under ``max_pairs_per_chunk`` candidates; autograd reaches every parameter and the
camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..backends.torch.rasterize import bounding_boxes, chunk_slices, expand_boxes
from ..core.cameras import Cameras
from ..core.compositing import composite
from ..core.packing import gather_rows
from .model import Gaussians


@dataclass(frozen=True)
class GaussianSettings:
    """Knobs of ``render_gaussians`` (defaults: the paper's).

    Attributes:
        tile_size: pixels per tile side (16), or None to evaluate only the footprint square.
        low_pass: variance in pixels^2 added to the 2D covariance (0.3).
        min_alpha: pairs below this opacity are skipped (1/255).
        max_alpha: opacities are clamped to this (0.99).
        min_transmittance: early termination threshold (1e-4).
        frustum_clamp: ``x/z`` and ``y/z`` enter the Jacobian clamped to this multiple of the image's extent.
        max_pairs_per_chunk: candidate pixel-Gaussian pairs evaluated at once (memory budget).
    """

    tile_size: int | None = 16
    low_pass: float = 0.3
    min_alpha: float = 1.0 / 255.0
    max_alpha: float = 0.99
    min_transmittance: float = 1e-4
    frustum_clamp: float = 1.3
    max_pairs_per_chunk: int = 8_000_000

    def __post_init__(self) -> None:
        if self.tile_size is not None and (not isinstance(self.tile_size, int) or self.tile_size < 1):
            raise ValueError(f"tile_size must be None or a positive int, got {self.tile_size!r}")
        if not 0 < self.max_alpha < 1:
            raise ValueError(f"max_alpha must be in (0, 1), got {self.max_alpha}")
        if not 0 <= self.min_alpha < self.max_alpha:
            raise ValueError(f"min_alpha must be in [0, max_alpha), got {self.min_alpha}")
        if self.low_pass < 0:
            raise ValueError(f"low_pass must be >= 0, got {self.low_pass}")


@dataclass(frozen=True)
class Projected:
    """Screen-space Gaussians for ``B`` cameras, all ``(B, N, ...)``.

    Attributes:
        means2d: ``(B, N, 2)`` pixel coordinates of the means.
        depth: ``(B, N)`` camera-space depth of the means.
        conics: ``(B, N, 3)`` ``(a, b, c)`` of the inverse 2D covariance ``[[a, b], [b, c]]``.
        radii: ``(B, N)`` int64 footprint radius in pixels, 0 for culled Gaussians.
        colors: ``(B, N, C)`` view-dependent colours.
    """

    means2d: Tensor
    depth: Tensor
    conics: Tensor
    radii: Tensor
    colors: Tensor


@dataclass(frozen=True)
class GaussianRenderOutput:
    """``B`` images of ``H x W`` pixels.

    Attributes:
        image: ``(B, H, W, C)`` composited colour plus ``(1 - alpha)`` times the background.
        alpha: ``(B, H, W, 1)``.
        depth: ``(B, H, W, 1)`` expected depth of the covered part (accumulated depth over alpha; 0 where
            alpha is 0).
        count: ``(B, H, W, 1)`` int64 number of Gaussians blended at each pixel.
        projected: the screen-space Gaussians.
    """

    image: Tensor
    alpha: Tensor
    depth: Tensor
    count: Tensor
    projected: Projected


def project_gaussians(gaussians: Gaussians, cameras: Cameras, settings: GaussianSettings) -> Projected:
    """EWA projection and culling (module docstring)."""
    if cameras.projection != "perspective":
        raise ValueError("render_gaussians needs perspective cameras")
    if cameras.distortion is not None:
        raise ValueError("render_gaussians does not model lens distortion; undistort the images first")
    H, W = cameras.image_size
    means = gaussians.means.to(cameras.dtype)
    t = cameras.world_to_camera(means)  # (B, N, 3)
    z = t[..., 2]
    visible = z > cameras.near_t[:, None]
    zs = torch.where(visible, z, torch.ones_like(z))  # culled Gaussians get harmless values
    fx, fy = cameras.focal_t[:, 0, None], cameras.focal_t[:, 1, None]
    cx, cy = cameras.principal_t[:, 0, None], cameras.principal_t[:, 1, None]
    k = settings.frustum_clamp
    tx = torch.maximum(torch.minimum(t[..., 0] / zs, k * (W - cx) / fx), -k * cx / fx) * zs
    ty = torch.maximum(torch.minimum(t[..., 1] / zs, k * (H - cy) / fy), -k * cy / fy) * zs
    zero = torch.zeros_like(zs)
    J = torch.stack(
        [
            torch.stack([fx / zs, zero, -fx * tx / zs**2], -1),
            torch.stack([zero, fy / zs, -fy * ty / zs**2], -1),
        ],
        -2,
    )  # (B, N, 2, 3)
    T = J @ cameras.R[:, None]
    cov = T @ gaussians.covariances().to(cameras.dtype)[None] @ T.transpose(-1, -2)
    a = cov[..., 0, 0] + settings.low_pass
    b = cov[..., 0, 1]
    c = cov[..., 1, 1] + settings.low_pass
    det = (a * c - b * b).clamp_min(1e-12)
    mid = 0.5 * (a + c)
    lam = mid + torch.sqrt(torch.clamp_min(mid * mid - det, 0.1))
    radii = torch.ceil(3 * torch.sqrt(lam.detach())).long()
    uv = torch.stack([fx * t[..., 0] / zs + cx, fy * t[..., 1] / zs + cy], -1)
    radii = torch.where(visible, radii, torch.zeros_like(radii))
    _, _, width, height = _boxes(uv.reshape(-1, 2), radii.reshape(-1), H, W, settings.tile_size)
    radii = torch.where((width * height).reshape(radii.shape) > 0, radii, torch.zeros_like(radii))
    conics = torch.stack([c / det, -b / det, a / det], -1)
    colors = gaussians.colors(cameras.camera_centers())
    return Projected(uv, z, conics, radii, colors)


def _boxes(
    uv: Tensor, radii: Tensor, H: int, W: int, tile: int | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x0, y0, width, height)`` pixel boxes each Gaussian reaches (module docstring)."""
    u, v, r = uv[:, 0].detach(), uv[:, 1].detach(), radii.to(uv.dtype)
    empty = radii == 0
    if tile is None:  # pixel centres j + 0.5 within [u - r, u + r]
        x0, y0, width, height = bounding_boxes(uv.detach()[:, None], H, W, r)
    else:  # the paper's getRect, on pixel coordinates whose centres are integers (ours minus 0.5)
        gx, gy = math.ceil(W / tile), math.ceil(H / tile)
        tx0 = torch.floor((u - 0.5 - r) / tile).clamp(0, gx)
        tx1 = torch.floor((u - 0.5 + r + tile - 1) / tile).clamp(0, gx)
        ty0 = torch.floor((v - 0.5 - r) / tile).clamp(0, gy)
        ty1 = torch.floor((v - 0.5 + r + tile - 1) / tile).clamp(0, gy)
        x0, y0 = (tx0 * tile).long(), (ty0 * tile).long()
        x1 = torch.minimum(tx1 * tile, torch.tensor(float(W))).long() - 1
        y1 = torch.minimum(ty1 * tile, torch.tensor(float(H))).long() - 1
        width, height = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
    return x0, y0, torch.where(empty, 0, width), torch.where(empty, 0, height)


def _within_reach(
    uv: Tensor,
    conic: Tensor,
    opacity: Tensor,
    x0: Tensor,
    y0: Tensor,
    bw: Tensor,
    bh: Tensor,
    min_alpha: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The boxes shrunk to the pixels where a Gaussian's alpha can reach ``min_alpha``, which changes no
    result and saves evaluating most candidates of a tile: ``o exp(-m^2 / 2) >= min_alpha`` needs
    ``m^2 <= 2 ln(o / min_alpha)``, and the ellipse ``d^T Q d <= m^2`` (``Q`` the conic) lies within
    ``|d_x| <= m sqrt(S_xx)``, ``|d_y| <= m sqrt(S_yy)`` with ``S = Q^-1`` the 2D covariance (half a pixel
    of margin absorbs rounding). A Gaussian with ``o <= min_alpha`` reaches no pixel."""
    q0, q1, q2 = conic.unbind(-1)
    det = q0 * q2 - q1 * q1
    m2 = 2 * torch.log(opacity.to(uv.dtype) / min_alpha)
    ex = torch.sqrt(m2.clamp_min(0) * q2 / det) + 0.5
    ey = torch.sqrt(m2.clamp_min(0) * q0 / det) + 0.5
    usable = torch.isfinite(ex) & torch.isfinite(ey) & (det > 0)
    ax0 = torch.where(usable, torch.ceil(uv[:, 0] - ex - 0.5), -math.inf).clamp(-1, 2**30).long()
    ay0 = torch.where(usable, torch.ceil(uv[:, 1] - ey - 0.5), -math.inf).clamp(-1, 2**30).long()
    ax1 = torch.where(usable, torch.floor(uv[:, 0] + ex - 0.5), math.inf).clamp(-1, 2**30).long()
    ay1 = torch.where(usable, torch.floor(uv[:, 1] + ey - 0.5), math.inf).clamp(-1, 2**30).long()
    nx0, ny0 = torch.maximum(x0, ax0), torch.maximum(y0, ay0)
    nw = (torch.minimum(x0 + bw - 1, ax1) - nx0 + 1).clamp_min(0)
    nh = (torch.minimum(y0 + bh - 1, ay1) - ny0 + 1).clamp_min(0)
    reaches = (m2 >= 0) & (bw > 0) & (bh > 0)
    return nx0, ny0, torch.where(reaches, nw, 0), torch.where(reaches, nh, 0)


def _alpha(
    uv: Tensor,
    conic: Tensor,
    opacities: Tensor,
    item: Tensor,
    col: Tensor,
    row: Tensor,
    N: int,
    settings: GaussianSettings,
) -> tuple[Tensor, Tensor]:
    """``(alpha, power)`` of pairs ``(item, pixel (row, col))`` (module docstring)."""
    d = torch.stack([col + 0.5, row + 0.5], -1).to(uv.dtype) - gather_rows(uv, item)
    q = gather_rows(conic, item)
    o = gather_rows(opacities, item % N)
    alpha, power = _PairAlpha.apply(d, q, o, settings.max_alpha)
    return alpha, power


def _power(d: Tensor, q: Tensor) -> Tensor:
    return -0.5 * (q[:, 0] * d[:, 0] ** 2 + q[:, 2] * d[:, 1] ** 2) - q[:, 1] * d[:, 0] * d[:, 1]


class _PairAlpha(torch.autograd.Function):
    """``alpha = min(max_alpha, o exp(min(power, 0)))`` with ``power = -d^T Q d / 2`` of each pair, from
    its offset ``d`` ``(P, 2)``, conic ``q = (a, b, c)`` ``(P, 3)`` and opacity ``o`` ``(P,)``; also returns
    ``power`` (no gradient). The backward keeps only the inputs (autograd through the expression held
    about twice as much per pair):
    ``g_power = g_alpha o e`` where neither clamp is active (``e = exp(power)``), ``g_o = g_alpha e``,
    ``g_q = g_power (-d_x^2 / 2, -d_x d_y, -d_y^2 / 2)``, ``g_d = -g_power Q d``."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, d: Tensor, q: Tensor, o: Tensor, max_alpha: float
    ) -> tuple[Tensor, Tensor]:
        power = _power(d, q)
        alpha = torch.clamp_max(o * torch.exp(power.clamp_max(0)), max_alpha)
        ctx.save_for_backward(d, q, o)
        ctx.max_alpha = max_alpha  # type: ignore[attr-defined]
        ctx.mark_non_differentiable(power)
        return alpha, power

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, g_alpha: Tensor, _: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, None]:
        d, q, o = ctx.saved_tensors  # type: ignore[attr-defined]
        power = _power(d, q)
        e = torch.exp(power.clamp_max(0))
        g_raw = torch.where(o * e <= ctx.max_alpha, g_alpha, 0)  # type: ignore[attr-defined]
        g_power = torch.where(power <= 0, g_raw * o * e, 0)
        dx, dy = d[:, 0], d[:, 1]
        g_q = g_power[:, None] * torch.stack([-0.5 * dx * dx, -dx * dy, -0.5 * dy * dy], 1)
        g_d = -g_power[:, None] * torch.stack([q[:, 0] * dx + q[:, 1] * dy, q[:, 1] * dx + q[:, 2] * dy], 1)
        return g_d, g_q, g_raw * e, None


def _pairs(
    proj: Projected, opacities: Tensor, H: int, W: int, settings: GaussianSettings
) -> tuple[Tensor, Tensor, Tensor]:
    """``(pixel, item, alpha)`` of every pair with ``alpha >= min_alpha``; ``item = b * N + n``. Candidates
    are screened without autograd; only the kept pairs are evaluated again with it, so that the memory
    the backward pass holds grows with the kept pairs, not with the candidates (with tiles, most of
    them)."""
    B, N = proj.radii.shape
    uv, conic = proj.means2d.reshape(B * N, 2), proj.conics.reshape(B * N, 3)
    x0, y0, bw, bh = _boxes(uv, proj.radii.reshape(-1), H, W, settings.tile_size)
    if settings.min_alpha > 0:
        o = opacities.detach().repeat(B)
        x0, y0, bw, bh = _within_reach(uv.detach(), conic.detach(), o, x0, y0, bw, bh, settings.min_alpha)
    counts = bw * bh
    live = torch.nonzero(counts > 0).flatten()
    items, cols, rows = [], [], []
    budget = settings.max_pairs_per_chunk
    name = "GaussianSettings.max_pairs_per_chunk"
    for part in chunk_slices(gather_rows(counts, live), budget, name, "Gaussian"):
        ids = live[part]
        local, col, row = expand_boxes(counts[ids], x0[ids], y0[ids], bw[ids])
        item = gather_rows(ids, local)
        with torch.no_grad():
            alpha, power = _alpha(
                uv.detach(), conic.detach(), opacities.detach(), item, col, row, N, settings
            )
            keep = torch.nonzero((alpha >= settings.min_alpha) & (power <= 0)).flatten()
        items.append(gather_rows(item, keep))
        cols.append(gather_rows(col, keep))
        rows.append(gather_rows(row, keep))
    if not items:
        z = torch.zeros(0, dtype=torch.int64, device=uv.device)
        return z, z, uv.new_zeros(0)
    item, col, row = torch.cat(items), torch.cat(cols), torch.cat(rows)
    alpha, _ = _alpha(uv, conic, opacities, item, col, row, N, settings)
    b = torch.div(item, N, rounding_mode="floor")
    return (b * H + row) * W + col, item, alpha


def render_gaussians(
    gaussians: Gaussians,
    cameras: Cameras,
    settings: GaussianSettings | None = None,
    background: Tensor | None = None,
) -> GaussianRenderOutput:
    """Render ``gaussians`` from each of ``cameras`` (module docstring).

    Args:
        gaussians: one scene, shared by every camera.
        cameras: ``B`` perspective cameras without distortion.
        settings: see ``GaussianSettings``.
        background: ``(C,)`` colour behind the Gaussians (default 0).
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be a gradiance Gaussians, got {type(gaussians).__name__}")
    settings = settings or GaussianSettings()
    B, (H, W), N = len(cameras), cameras.image_size, len(gaussians)
    proj = project_gaussians(gaussians, cameras, settings)
    C = proj.colors.shape[-1]
    bg = proj.colors.new_zeros(C) if background is None else background.to(proj.colors)
    if bg.shape != (C,):
        raise ValueError(f"background must have shape ({C},), got {tuple(bg.shape)}")
    pixel, item, alpha = _pairs(proj, gaussians.opacities.to(cameras.dtype), H, W, settings)
    depth = gather_rows(proj.depth.reshape(B * N), item)
    colors = gather_rows(proj.colors.reshape(B * N, C), item)
    out = composite(
        pixel, depth, alpha, colors, B * H * W, "alpha", min_transmittance=settings.min_transmittance
    )
    image = out.features + (1 - out.alpha)[:, None] * bg
    covered = out.alpha > 0
    expected = torch.where(covered, out.depth / torch.where(covered, out.alpha, 1), 0)
    return GaussianRenderOutput(
        image=image.reshape(B, H, W, C),
        alpha=out.alpha.reshape(B, H, W, 1),
        depth=expected.reshape(B, H, W, 1),
        count=out.count.reshape(B, H, W, 1),
        projected=proj,
    )
