"""The showcase behind ``gradiance demo``: pictures and an ``index.html`` under one folder.

It renders the bundled meshes (Spot with its texture, the Utah teapot) from an orbit of cameras with the
mesh pipeline: textured, lit (ambient plus a directional light, Blinn-Phong) and antialiased, with their
depth and normal images. Later issues add gradient images, pose fitting and reconstruction.
"""

from __future__ import annotations

import html
import math
import time
from pathlib import Path

import torch
from torch import Tensor

from ..core.cameras import Cameras, look_at
from ..core.lights import AmbientLight, DirectionalLights, Lights
from ..core.mesh_ops import normalize_to_unit_sphere
from ..io import load_asset, save_image
from ..mesh.render import RenderOutput, RenderSettings, render


def orbit_cameras(n: int, size: int, radius: float = 2.6, elevation_deg: float = 20.0) -> Cameras:
    """``n`` ``look_at`` cameras evenly spaced in azimuth around the origin, slightly above it."""
    az = torch.arange(n, dtype=torch.float32) * (2 * math.pi / n) + 0.6
    el = math.radians(elevation_deg)
    eye = torch.stack(
        [az.sin() * math.cos(el), torch.full_like(az, math.sin(el)), az.cos() * math.cos(el)], -1
    )
    return look_at(radius * eye, image_size=(size, size), fov=40.0)


def studio_lights() -> Lights:
    """A soft ambient term and one white directional light from the upper front-left."""
    return Lights(
        ambient=AmbientLight(torch.full((3,), 0.35)),
        directional=DirectionalLights(torch.tensor([[0.4, 1.0, 0.7]]), torch.full((1, 3), 0.75)),
    )


def depth_to_gray(depth: Tensor, alpha: Tensor) -> Tensor:
    """``(B, H, W, 3)`` grey image: near surfaces bright, far ones dark, background black."""
    covered = alpha > 0
    if not bool(covered.any()):
        return depth.expand(*depth.shape[:-1], 3)
    lo, hi = depth[covered].min(), depth[covered].max()
    gray = torch.where(covered, 1 - 0.8 * (depth - lo) / (hi - lo + 1e-12), torch.zeros_like(depth))
    return gray.expand(*depth.shape[:-1], 3)


def tile(images: Tensor) -> Tensor:
    """``(B, H, W, C)`` images side by side as one ``(H, B * W, C)`` image."""
    return torch.cat(list(images), dim=1)


def _pictures(name: str, out: RenderOutput) -> dict[str, tuple[Tensor, str]]:
    return {
        f"{name}_color.png": (out.image, "textured, Blinn-Phong lit, antialiased render"),
        f"{name}_depth.png": (depth_to_gray(out.depth, out.alpha), "camera-space depth (near is bright)"),
        f"{name}_normals.png": (0.5 + 0.5 * out.normals, "world-space shading normals, 0.5 + 0.5 n"),
        f"{name}_alpha.png": (out.alpha.expand(*out.alpha.shape[:-1], 3), "antialiased coverage (alpha)"),
    }


def run_showcase(out: Path, size: int = 256) -> Path:
    """Write the showcase pictures and ``index.html`` into ``out``; return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    cameras = orbit_cameras(4, size)
    settings = RenderSettings(model="blinn_phong", background=(1.0, 1.0, 1.0))
    sections = []
    for name in ("spot", "teapot"):
        mesh = normalize_to_unit_sphere(load_asset(name))
        start = time.perf_counter()
        with torch.no_grad():
            result = render(mesh, cameras, studio_lights(), method="antialias", settings=settings)
        seconds = time.perf_counter() - start
        pictures = _pictures(name, result)
        for fname, (img, _) in pictures.items():
            save_image(out / fname, tile(img).clamp(0, 1))
        sections.append((name, len(mesh.verts), int(mesh.faces.shape[0]), seconds, pictures))
    index = out / "index.html"
    index.write_text(_page(sections, size, len(cameras)))
    return index


def _page(
    sections: list[tuple[str, int, int, float, dict[str, tuple[Tensor, str]]]], size: int, views: int
) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>gradiance showcase</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%}</style>",
        "</head><body><h1>gradiance showcase</h1>",
        f"<p>Each mesh is normalised to the unit sphere and rendered by {views} <code>look_at</code> "
        f"cameras in an orbit ({size}x{size} pixels) with "
        "<code>gradiance.mesh.render(..., method='antialias')</code>: a vectorised z-buffer, "
        "perspective-correct interpolation, bilinear texturing, Blinn-Phong shading and analytic edge "
        "antialiasing (Laine et al. 2020), all in PyTorch on the CPU.</p>",
    ]
    for name, nv, nf, seconds, pictures in sections:
        parts.append(
            f"<h2>{html.escape(name)} ({nv} vertices, {nf} faces, {views} views in {seconds:.2f} s)</h2>"
        )
        for fname, (_, caption) in pictures.items():
            parts.append(f"<figure><img src='{fname}' alt='{html.escape(caption)}'>")
            parts.append(f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
