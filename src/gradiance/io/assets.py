"""Meshes bundled with gradiance, and the larger test meshes kept outside the package.

Bundled (in ``gradiance/data/assets``, found with ``importlib.resources``):

- ``"spot"``: "Spot" the cow by Keenan Crane, triangulated, with UVs and its texture
  (``spot_texture.png``). Released into the public domain by its author (``spot_README.txt``).
- ``"teapot"``: the Utah teapot (Martin Newell, 1975), triangles without UVs; treated as public domain.

Coordinates are the sources' own (Spot is about 1 unit tall, the teapot about 6 units wide); normalise in
code (e.g. ``gradiance.core.mesh_ops.normalize_to_unit_sphere``).

Not bundled: the Stanford bunny (Stanford 3D Scanning Repository, free for research with
acknowledgement) lives in the repository's shared asset folder; ``shared_asset_path("bunny")`` finds it or
returns None so that tests and benchmarks can skip cleanly.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path

import torch

from gradiance.core.meshes import Meshes, SurfaceMaterial

from .images import load_image
from .obj import load_obj

_ASSETS = {"spot": "spot.obj", "teapot": "teapot.obj"}
_TEXTURES = {"spot": "spot_texture.png"}


def list_assets() -> list[str]:
    """Names accepted by ``load_asset`` and ``asset_path``, sorted."""
    return sorted(_ASSETS)


def _bundled(file_name: str) -> Path:
    root = resources.files("gradiance") / "data" / "assets" / file_name
    if not isinstance(root, Path):  # e.g. installed inside a zip file
        raise RuntimeError(f"gradiance's bundled asset {file_name} is not a file on disk ({root})")
    return root


def asset_path(name: str) -> Path:
    """Path of the bundled OBJ file of asset ``name`` (one of ``list_assets()``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in _ASSETS:
        raise ValueError(f"unknown asset {name!r}; available assets: {list_assets()}")
    return _bundled(_ASSETS[name])


def load_asset(
    name: str, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Meshes:
    """Load a bundled mesh as a single-mesh ``Meshes``.

    ``"spot"`` comes with ``uvs (T, 2)``/``face_uvs (F, 3)`` and one ``SurfaceMaterial`` named ``"spot"``
    whose ``diffuse_map`` is ``spot_texture.png`` as ``(H, W, 3)`` in [0, 1] (the OBJ has no ``mtllib``, so
    the texture is attached here; every face has material 0). ``"teapot"`` has positions and faces only.
    Terms: Spot is public domain (Keenan Crane); the Utah teapot is treated as public domain.

    Args:
        name: one of ``list_assets()``.
        device: where the tensors live (default CPU).
        dtype: float dtype of positions, UVs and the texture.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    mesh = load_obj(asset_path(name), device=device, dtype=dtype)
    texture = _TEXTURES.get(name)
    if texture is None:
        return mesh
    material = SurfaceMaterial(
        name=name,
        diffuse=torch.ones(3, device=device, dtype=dtype),
        specular=torch.zeros(3, device=device, dtype=dtype),
        shininess=torch.tensor(1.0, device=device, dtype=dtype),
        diffuse_map=load_image(_bundled(texture), device=device, dtype=dtype),
    )
    face_materials = torch.zeros(mesh.faces.shape[0], dtype=torch.int64, device=mesh.device)
    return replace(mesh, materials=((material,),), face_materials=face_materials)


def shared_asset_path(name: str) -> Path | None:
    """Path of a test asset that is not bundled (e.g. ``"bunny"`` -> ``bunny.obj``), or None if absent.

    Looks in the folder named by the ``GRADIANCE_ASSETS`` environment variable, then in
    ``../shared/assets`` next to the repository root (for a source checkout). ``name`` may include the
    extension; without one, ``.obj`` is assumed.

    Raises:
        ValueError: ``name`` is not a plain file name (letters, digits, ``_``, ``-``, ``.``).
    """
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name) or ".." in name:
        raise ValueError(f"name must be a plain file name such as 'bunny', got {name!r}")
    file_name = name if Path(name).suffix else f"{name}.obj"
    folders = []
    if os.environ.get("GRADIANCE_ASSETS"):
        folders.append(Path(os.environ["GRADIANCE_ASSETS"]))
    repo_root = Path(__file__).resolve().parents[3]  # <root>/src/gradiance/io/assets.py
    folders.append(repo_root.parent / "shared" / "assets")
    for folder in folders:
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None
