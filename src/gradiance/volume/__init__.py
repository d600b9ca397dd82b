"""Voxel grids and neural fields rendered by differentiable ray marching."""

from ..core.encoding import PositionalEncoding
from ..core.raymarch import AGGREGATIONS, RayAggregate, aggregate_rays, ray_consistency_loss
from ..core.volumes import Volumes
from .fields import (
    FieldMarch,
    FieldRenderOutput,
    FieldRenderSettings,
    NeRFField,
    OccupancyGrid,
    march_field,
    render_field,
)
from .render import VolumeRenderOutput, VolumeRenderSettings, march_volume, render_volume
from .traversal import VoxelSegments, traverse_voxels

__all__ = [
    "AGGREGATIONS",
    "FieldMarch",
    "FieldRenderOutput",
    "FieldRenderSettings",
    "NeRFField",
    "OccupancyGrid",
    "PositionalEncoding",
    "RayAggregate",
    "VolumeRenderOutput",
    "VolumeRenderSettings",
    "Volumes",
    "VoxelSegments",
    "aggregate_rays",
    "march_field",
    "march_volume",
    "ray_consistency_loss",
    "render_field",
    "render_volume",
    "traverse_voxels",
]
