"""``render_points``: differentiable point splatting in one call, rasterise then composite.

Each fragment of ``rasterize_points`` (a pixel ``x`` covered by point ``p`` with kernel weight ``k_p(x)``) is
composited by ``gradiance.core.compositing.composite`` with opacity ``a_p(x)``, nearest first:

- "alpha" (front-to-back "over", as PyTorch3D's ``AlphaCompositor``): ``a = min(k, MAX_OPACITY)``;
  the clamp keeps ``a < 1`` as the compositor's transmittance ``prod (1 - a)`` in log space needs
  (a disk point lets 1% of what lies behind it through).
- "weighted_sum" (PyTorch3D's ``WeightedCompositor``): ``a = k``, colour ``sum_p a_p f_p``.
- "normalized_weighted_sum" (PyTorch3D's ``NormWeightedCompositor``): ``a = k``, colour
  ``sum_p a_p f_p / sum_p a_p``.

``points_per_pixel = K`` blends only the K nearest fragments of each pixel. The pixel's coverage is
``alpha = 1 - prod (1 - a)`` ("alpha") or ``min(1, sum a)`` (the sums), and the image is the composited
colour over the background, ``image = c + (1 - alpha) * background`` with ``c`` the composited colour for
"alpha" and "weighted_sum" (already premultiplied by coverage) and ``alpha`` times the normalised colour
for "normalized_weighted_sum" (so partially covered pixels blend into the background smoothly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..core.checks import check_choice, check_tensor
from ..core.compositing import MODES, composite
from ..core.packing import gather_rows
from ..core.pointclouds import PointClouds
from .rasterize import PointFragments, PointRasterSettings, rasterize_points

MAX_OPACITY = 0.99
"""Largest opacity of a fragment under "alpha" compositing (the kernel weight is clamped to it)."""


@dataclass(frozen=True)
class PointRenderOutput:
    """What ``render_points`` returns for ``B`` cameras, ``H x W`` pixels and ``C`` feature channels.

    Attributes:
        image: ``(B, H, W, C)`` composited colours (or features) over the background (module docstring).
        alpha: ``(B, H, W, 1)`` coverage in ``[0, 1]``, 0 where no point covers the pixel.
        depth: ``(B, H, W, 1)`` expected camera-space depth of the covered part,
            ``sum_p w_p z_p / sum_p w_p`` with ``w_p`` the compositing weights; 0 where uncovered.
        point_id: ``(B, H, W, 1)`` int64; ``point_id[b, i, j] = p`` when packed point ``p`` is the nearest
            point blended into pixel ``(i, j)`` of image ``b``, -1 where none is.
        fragments: the rasteriser's output, for further stages.
    """

    image: Tensor
    alpha: Tensor
    depth: Tensor
    point_id: Tensor
    fragments: PointFragments


def _point_features(pointclouds: PointClouds, features: Tensor | None) -> Tensor:
    """``(P, C)`` per-point features: ``features``, else the cloud's colours, else white ``(P, 3)``."""
    P = pointclouds.points.shape[0]
    if features is None:
        if pointclouds.colors is None:
            return pointclouds.points.new_ones(P, 3)
        feats, name = pointclouds.colors, "pointclouds.colors"
    else:
        feats, name = features, "features"
        check_tensor(features, "features", (P, None), device=pointclouds.device)
    if feats.dtype != pointclouds.dtype:
        raise TypeError(f"{name} is {feats.dtype} but pointclouds.points is {pointclouds.dtype}")
    if not bool(torch.isfinite(feats).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return feats


def _background(background: Tensor | Sequence[float] | None, like: Tensor) -> Tensor:
    """``(C,)`` background of the feature tensor ``like`` ``(P, C)`` (zeros when None)."""
    C = like.shape[1]
    if background is None:
        return like.new_zeros(C)
    if isinstance(background, Tensor):
        check_tensor(background, "background", (C,), device=like.device, finite=True)
        return background.to(like.dtype)
    values = list(background)
    if len(values) != C or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in values):
        raise ValueError(
            f"background must be {C} finite floats (one per feature channel), got {background!r}"
        )
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def render_points(
    pointclouds: PointClouds,
    cameras: Cameras,
    settings: PointRasterSettings | None = None,
    *,
    compositing: str = "alpha",
    background: Tensor | Sequence[float] | None = None,
    features: Tensor | None = None,
    backend: str = "auto",
) -> PointRenderOutput:
    """Splat point clouds into images (module docstrings of this file and of ``rasterize``).

    Args:
        pointclouds: 1 cloud (broadcast to every camera) or one per camera, with per-point ``radii``
            unless ``settings.radius`` is set.
        cameras: ``B`` cameras.
        settings: radius, kernel, K nearest points per pixel and memory budget (``PointRasterSettings``).
        compositing: "alpha", "weighted_sum" or "normalized_weighted_sum".
        background: ``(C,)`` tensor or ``C`` floats for uncovered pixels; None is 0.
        features: ``(P, C)`` per-point features to splat instead of ``pointclouds.colors``; without
            either, points are white (``C = 3``).
        backend: "auto" or "torch" (see ``rasterize_points``).

    Returns:
        ``PointRenderOutput``; gradients flow to positions, colours/features, radii, the background and
        the cameras (not through the "disk" kernel's weight, which is piecewise constant).
    """
    check_choice(compositing, "compositing", MODES)
    settings = PointRasterSettings() if settings is None else settings
    if not isinstance(pointclouds, PointClouds):
        raise TypeError(f"pointclouds must be a gradiance PointClouds, got {type(pointclouds).__name__}")
    feats = _point_features(pointclouds, features)
    bg = _background(background, feats)
    frags = rasterize_points(pointclouds, cameras, settings, backend=backend)
    B, (H, W), C = len(cameras), cameras.image_size, feats.shape[1]
    n = B * H * W
    opacity = frags.weight.clamp(max=MAX_OPACITY) if compositing == "alpha" else frags.weight
    f = gather_rows(feats, frags.point)
    # one extra channel of ones accumulates sum_p w_p, the normaliser of the expected depth
    out = composite(
        frags.pixel,
        frags.depth,
        opacity,
        torch.cat([f, torch.ones_like(f[:, :1])], 1),
        n,
        compositing,
        max_per_pixel=settings.points_per_pixel,
    )
    colour, total, alpha = out.features[:, :C], out.features[:, C], out.alpha
    if compositing == "normalized_weighted_sum":
        colour = colour * alpha[:, None]
    image = colour + (1 - alpha)[:, None] * bg
    ok = total > torch.finfo(total.dtype).eps
    depth = torch.where(
        ok, out.depth / torch.where(ok, total, torch.ones_like(total)), torch.zeros_like(total)
    )
    m = frags.point.shape[0]
    with_none = torch.cat([frags.point, frags.point.new_full((1,), -1)])
    point_id = gather_rows(with_none, torch.where(out.first >= 0, out.first, m))
    return PointRenderOutput(
        image=image.reshape(B, H, W, C),
        alpha=alpha.reshape(B, H, W, 1),
        depth=depth.reshape(B, H, W, 1),
        point_id=point_id.reshape(B, H, W, 1),
        fragments=frags,
    )
