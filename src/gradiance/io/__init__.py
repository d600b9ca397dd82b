"""Mesh, point-cloud, texture and image files (OBJ/MTL, PLY, glTF/GLB, PNG/JPEG...) and bundled assets.

Every loader returns gradiance structures on the requested ``device``/``dtype`` and raises
``MeshFileError`` (a ``ValueError`` naming the file and, where known, the line) for malformed or hostile
files: references that leave the file's folder, counts above ``max_elements``, oversized images.
"""

from .assets import asset_path, list_assets, load_asset, shared_asset_path
from .errors import MeshFileError
from .gltf import load_gltf, save_gltf
from .images import MAX_IMAGE_PIXELS, load_image, save_image
from .obj import load_obj, save_obj
from .ply import load_ply, load_ply_mesh, load_ply_points, save_ply

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MeshFileError",
    "asset_path",
    "list_assets",
    "load_asset",
    "load_gltf",
    "load_image",
    "load_obj",
    "load_ply",
    "load_ply_mesh",
    "load_ply_points",
    "save_gltf",
    "save_image",
    "save_obj",
    "save_ply",
    "shared_asset_path",
]
