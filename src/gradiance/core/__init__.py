"""Cameras, transforms, structures, lights, materials and shading shared by every renderer."""

from .cameras import Cameras, look_at, look_at_rotation
from .lights import AmbientLight, DirectionalLights, Lights, PointLights, SHLighting, sh_basis
from .materials import PhongMaterial
from .mesh_ops import normalize_to_unit_sphere, sample_surface, signed_volume, subdivide
from .meshes import Meshes, SurfaceMaterial
from .pointclouds import PointClouds
from .primitives import cube, cylinder, icosphere, plane, torus, uv_sphere
from .shading import shade

__all__ = [
    "AmbientLight",
    "Cameras",
    "DirectionalLights",
    "Lights",
    "Meshes",
    "PhongMaterial",
    "PointClouds",
    "PointLights",
    "SHLighting",
    "SurfaceMaterial",
    "cube",
    "cylinder",
    "icosphere",
    "look_at",
    "look_at_rotation",
    "normalize_to_unit_sphere",
    "plane",
    "sample_surface",
    "sh_basis",
    "shade",
    "signed_volume",
    "subdivide",
    "torus",
    "uv_sphere",
]
