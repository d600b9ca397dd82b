"""Judging renderers: gradient checks and images, metrics, convergence and speed benchmarks, reports."""

from . import peers  # noqa: F401  (registers the peers that are importable)
from .gradients import (
    EXACT,
    VISIBILITY,
    GradientComparison,
    GradientThresholds,
    autograd_gradient,
    check_gradients,
    compare_gradients,
    diverging_colormap,
    finite_difference_gradient,
    finite_difference_jvp,
    gradient_image,
    supersampled,
)
from .metrics import (
    chamfer_distance,
    f_score,
    nearest_neighbors,
    normal_consistency,
    psnr,
    silhouette_iou,
    ssim,
    volume_iou,
    winding_number,
)

__all__ = [
    "EXACT",
    "VISIBILITY",
    "GradientComparison",
    "GradientThresholds",
    "autograd_gradient",
    "chamfer_distance",
    "check_gradients",
    "compare_gradients",
    "diverging_colormap",
    "f_score",
    "finite_difference_gradient",
    "finite_difference_jvp",
    "gradient_image",
    "nearest_neighbors",
    "normal_consistency",
    "psnr",
    "silhouette_iou",
    "ssim",
    "supersampled",
    "volume_iou",
    "winding_number",
]
