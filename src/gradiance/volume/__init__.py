"""Voxel grids and neural fields rendered by differentiable ray marching."""

from ..core.raymarch import AGGREGATIONS, RayAggregate, aggregate_rays
from ..core.volumes import Volumes
from .render import VolumeRenderOutput, VolumeRenderSettings, render_volume
from .traversal import VoxelSegments, traverse_voxels

__all__ = [
    "AGGREGATIONS",
    "RayAggregate",
    "VolumeRenderOutput",
    "VolumeRenderSettings",
    "Volumes",
    "VoxelSegments",
    "aggregate_rays",
    "render_volume",
    "traverse_voxels",
]
