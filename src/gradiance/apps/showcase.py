"""The showcase behind ``gradiance demo``: pictures and an ``index.html`` under one folder.

At this stage it shows the foundation: the bundled meshes, normalised and seen by a batch of ``look_at``
cameras, drawn as z-buffered projected vertices coloured by their texture, their normals and their depth.
The rendering issues grow it into the full showcase.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import torch
from torch import Tensor

from ..core.cameras import Cameras, look_at
from ..core.mesh_ops import normalize_to_unit_sphere
from ..core.meshes import Meshes
from ..io import load_asset, save_image


def orbit_cameras(n: int, size: int, radius: float = 2.6, elevation_deg: float = 20.0) -> Cameras:
    """``n`` ``look_at`` cameras evenly spaced in azimuth around the origin."""
    az = torch.arange(n, dtype=torch.float32) * (2 * math.pi / n)
    el = math.radians(elevation_deg)
    eye = torch.stack(
        [az.sin() * math.cos(el), torch.full_like(az, math.sin(el)), az.cos() * math.cos(el)], -1
    )
    return look_at(radius * eye, image_size=(size, size), fov=40.0)


def vertex_colors_from_texture(mesh: Meshes) -> Tensor:
    """``(V, 3)`` colour of each vertex: its first material's texture at one of the vertex's UVs
    (nearest texel), or mid grey when the mesh has no texture."""
    grey = torch.full((mesh.verts.shape[0], 3), 0.6)
    tex = mesh.materials[0][0].diffuse_map if mesh.materials and mesh.materials[0] else None
    if tex is None or mesh.uvs is None or mesh.face_uvs is None:
        return grey
    uv = torch.zeros(mesh.verts.shape[0], 2).index_copy(
        0, mesh.faces.reshape(-1), mesh.uvs[mesh.face_uvs.reshape(-1)]
    )
    h, w = tex.shape[:2]
    col = (uv[:, 0] * w).long().clamp(0, w - 1)
    row = ((1 - uv[:, 1]) * h).long().clamp(0, h - 1)
    return tex[row, col, :3]


def splat_vertices(
    cameras: Cameras, points: Tensor, colors: Tensor, radius: int = 1
) -> tuple[Tensor, Tensor]:
    """Draw each point as a ``(2 radius + 1)^2`` pixel square, nearest point wins (a z-buffer).

    Returns ``(image, depth)``: ``image[b, i, j]`` is the colour of the nearest point covering pixel
    ``(i, j)`` in camera ``b`` (``(B, H, W, C)``, zero where none) and ``depth`` its depth
    (``(B, H, W, 1)``, zero where none).
    """
    H, W = cameras.image_size
    B = len(cameras)
    pix, depth = cameras.project(points)
    offsets = torch.arange(-radius, radius + 1)
    di, dj = torch.meshgrid(offsets, offsets, indexing="ij")
    col = pix[..., 0].floor().long()[..., None] + dj.reshape(-1)
    row = pix[..., 1].floor().long()[..., None] + di.reshape(-1)
    z = depth[..., None].expand_as(col)
    valid = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    batch = torch.arange(B)[:, None, None].expand_as(col)
    key = ((batch * H + row) * W + col)[valid]
    z, src = z[valid], torch.arange(points.shape[0])[None, :, None].expand_as(col)[valid]
    zbuf = torch.full((B * H * W,), math.inf).scatter_reduce(0, key, z, "amin")
    win = z == zbuf[key]
    image = torch.zeros(B * H * W, colors.shape[1])
    image[key[win]] = colors[src[win]]
    zimg = torch.where(torch.isinf(zbuf), torch.zeros_like(zbuf), zbuf)
    return image.reshape(B, H, W, -1), zimg.reshape(B, H, W, 1)


def _depth_to_gray(depth: Tensor) -> Tensor:
    covered = depth > 0
    if not bool(covered.any()):
        return depth.expand(*depth.shape[:-1], 3)
    lo, hi = depth[covered].min(), depth[covered].max()
    gray = torch.where(covered, 1 - 0.8 * (depth - lo) / (hi - lo + 1e-12), torch.zeros_like(depth))
    return gray.expand(*depth.shape[:-1], 3)


def _tile(images: Tensor) -> Tensor:
    """``(B, H, W, C)`` images side by side as one ``(H, B * W, C)`` image."""
    return torch.cat(list(images), dim=1)


def run_showcase(out: Path, size: int = 256) -> Path:
    """Write the showcase pictures and ``index.html`` into ``out``; return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    cameras = orbit_cameras(4, size)
    sections = []
    for name in ("spot", "teapot"):
        mesh = normalize_to_unit_sphere(load_asset(name))
        with torch.no_grad():
            texture_img, depth = splat_vertices(cameras, mesh.verts, vertex_colors_from_texture(mesh))
            normal_img, _ = splat_vertices(cameras, mesh.verts, 0.5 + 0.5 * mesh.compute_vert_normals())
        files = {
            f"{name}_vertices.png": (texture_img, "vertices coloured by the texture (grey when none)"),
            f"{name}_normals.png": (normal_img, "vertices coloured by their area-weighted normals"),
            f"{name}_depth.png": (_depth_to_gray(depth), "camera-space depth of the nearest vertex"),
        }
        for fname, (img, _) in files.items():
            save_image(out / fname, _tile(img).clamp(0, 1))
        sections.append((name, len(mesh.verts), int(mesh.faces.shape[0]), files))
    index = out / "index.html"
    index.write_text(_page(sections, size))
    return index


def _page(sections: list[tuple[str, int, int, dict[str, tuple[Tensor, str]]]], size: int) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>gradiance showcase</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%}</style>",
        "</head><body><h1>gradiance showcase</h1>",
        "<p>Each mesh is normalised to the unit sphere and seen by four <code>look_at</code> cameras in an "
        f"orbit ({size}x{size} pixels, OpenCV convention). Every vertex is projected with "
        "<code>Cameras.project</code> and drawn as a 3x3 pixel square; the nearest vertex wins.</p>",
    ]
    for name, nv, nf, files in sections:
        parts.append(f"<h2>{html.escape(name)} ({nv} vertices, {nf} faces)</h2>")
        for fname, (_, caption) in files.items():
            parts.append(f"<figure><img src='{fname}' alt='{html.escape(caption)}'>")
            parts.append(f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
