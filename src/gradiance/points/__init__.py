"""Differentiable point splatting: project points, weight the pixels of each screen-space footprint by a
kernel, composite by depth (``rasterize_points``, ``render_points``)."""

from .rasterize import (
    KERNELS,
    RADIUS_MODES,
    PointFragments,
    PointRasterSettings,
    kernel_weight,
    project_points,
    rasterize_points,
)
from .render import MAX_OPACITY, PointRenderOutput, render_points

__all__ = [
    "KERNELS",
    "MAX_OPACITY",
    "RADIUS_MODES",
    "PointFragments",
    "PointRasterSettings",
    "PointRenderOutput",
    "kernel_weight",
    "project_points",
    "rasterize_points",
    "render_points",
]
