"""Tiny scenes shared by the mesh renderer tests."""

from __future__ import annotations

import torch

from gradiance.core import Cameras, Meshes, look_at

DT = torch.float64


def triangle_soup(
    seed: int = 0, n_faces: int = 4, near: float = 0.01, far: float = 100.0
) -> tuple[Meshes, Cameras]:
    """``n_faces`` random, unconnected, vertex-coloured triangles near the origin and two cameras at 8x10."""
    g = torch.Generator().manual_seed(seed)
    verts = (torch.rand(n_faces * 3, 3, generator=g, dtype=DT) - 0.5) * torch.tensor(
        [1.6, 1.6, 1.0], dtype=DT
    )
    faces = torch.arange(n_faces * 3).reshape(n_faces, 3)
    colors = torch.rand(n_faces * 3, 3, generator=g, dtype=DT)
    eyes = torch.tensor([[0.2, 0.1, -3.0], [-1.0, 0.5, -2.5]], dtype=DT)
    cams = look_at(eyes, image_size=(8, 10), fov=35.0, near=near, far=far)
    return Meshes.single(verts, faces, vert_colors=colors), cams
