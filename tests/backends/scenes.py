"""Scenes shared by the backend tests: many small faces seen from a few cameras."""

from __future__ import annotations

import torch

from gradiance.core.cameras import Cameras, look_at
from gradiance.core.meshes import Meshes
from gradiance.core.primitives import icosphere


def bumpy_sphere(dtype: torch.dtype, seed: int = 0) -> Meshes:
    """An icosphere with noisy vertices: many small faces, overlaps and slivers (ties are likely on the
    exact grid of pixel centres only by chance, so a shared vertex on a centre is added too)."""
    mesh = icosphere(3, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    noise = 0.08 * torch.randn(mesh.verts.shape, generator=g, dtype=dtype)
    return mesh.with_verts(mesh.verts + noise)


def orbit(B: int, size: int, dtype: torch.dtype, distance: float = 2.6) -> Cameras:
    angles = torch.linspace(0.0, 2.0, B, dtype=dtype)
    eyes = torch.stack(
        [distance * torch.sin(angles), 0.4 * torch.ones_like(angles), -distance * torch.cos(angles)], 1
    )
    return look_at(eyes, image_size=(size, size + 7), fov=50.0, near=0.1, far=10.0)
