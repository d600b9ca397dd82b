"""The modular mesh pipeline: rasterize, interpolate, texture, antialias, and ``render`` composing them."""

from .antialias import antialias, edge_neighbors
from .interpolate import interpolate
from .rasterize import Fragments, RasterSettings, rasterize
from .regularizers import edge_length_loss, flatten_loss, laplacian_smoothing, normal_consistency
from .render import (
    RenderOutput,
    RenderSettings,
    available_methods,
    register_method,
    render,
    render_silhouette,
)
from .texture import mip_pyramid, texture, texture_by_material

__all__ = [
    "Fragments",
    "RasterSettings",
    "RenderOutput",
    "RenderSettings",
    "antialias",
    "available_methods",
    "edge_length_loss",
    "edge_neighbors",
    "flatten_loss",
    "interpolate",
    "laplacian_smoothing",
    "mip_pyramid",
    "normal_consistency",
    "rasterize",
    "register_method",
    "render",
    "render_silhouette",
    "texture",
    "texture_by_material",
]
