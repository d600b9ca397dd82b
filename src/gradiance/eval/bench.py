"""Convergence benchmark: seeded inverse problems that every registered method
(``gradiance.eval.methods``) runs the same way, through the applications of ``gradiance.apps``. Tasks (each
deterministic for a given seed, on shapes that ship with gradiance or are procedural, ``SCENES``):

- ``pose_task``: the 6-DoF pose of Spot (or another of ``SCENES``) from one silhouette or one shaded
  image, starting ``initial_degrees`` away about a random axis (and 0.05 units off); success is a final
  rotation error under 5 degrees.
- ``shape_task``: a level-3 icosphere deformed to the silhouettes of Spot, the teapot or a torus from
  ``views`` views with Laplacian and edge-length regularisers; chamfer (L2 and L1), normal consistency,
  F-score at 0.02, volume IoU and silhouette IoU against the true shape after a fixed budget.
- ``appearance_task``: Spot's texture and 9-coefficient spherical-harmonics lighting recovered together
  from shaded views; the PSNR of the texture over the texels the views observe, after the per-channel
  scale that the product albedo x light leaves undetermined.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..apps.appearance import AppearanceConfig, fit_appearance, with_texture
from ..apps.common import ring_cameras
from ..apps.pose import PoseConfig, fit_pose, posed, rotation_error_degrees
from ..apps.shape import ShapeConfig, fit_shape
from ..core import Lights, Meshes, look_at, normalize_to_unit_sphere, sample_surface, torus
from ..core.lights import AmbientLight, DirectionalLights, SHLighting
from ..io import load_asset
from ..mesh import render
from .methods import get_method
from .metrics import chamfer_distance, f_score, normal_consistency, psnr, silhouette_iou, volume_iou


def spot() -> Meshes:
    """Spot, normalised to the unit sphere, with its texture."""
    return normalize_to_unit_sphere(load_asset("spot"))


SCENES = ("spot", "teapot", "torus")
"""The benchmark's shapes: Spot and the Utah teapot (bundled) and a procedural torus (a hole, which a
sphere cannot deform into without changing its topology: silhouettes fit, the volume does not)."""


def scene(name: str) -> Meshes:
    """A benchmark shape by name (``SCENES``), geometry only, normalised to the unit sphere."""
    if name == "spot":
        return spot().geometry()
    if name == "teapot":
        return normalize_to_unit_sphere(load_asset("teapot")).geometry()
    if name == "torus":
        return normalize_to_unit_sphere(torus(0.65, 0.3, 32, 16))
    raise ValueError(f"scene must be one of {SCENES}, got {name!r}")


_POSE_LIGHTS = Lights(
    ambient=AmbientLight(torch.full((3,), 0.4)),
    directional=DirectionalLights(torch.tensor([[0.6, 0.5, 0.8]]), torch.full((1, 3), 0.6)),
)


@dataclass(frozen=True)
class PoseResult:
    """One pose trial: errors after the last step, and the first step (1-based) under 5 degrees."""

    method: str
    shape: str
    target: str
    initial_degrees: float
    trial: int
    rotation_error_degrees: float
    translation_error: float
    success: bool
    iterations_to_success: int | None
    seconds: float


def pose_task(
    method: str,
    initial_degrees: float,
    trial: int,
    target: str = "silhouette",
    steps: int = 150,
    size: int = 64,
    seed: int = 0,
    shape: str = "spot",
) -> PoseResult:
    """Recover the pose of ``shape`` (``SCENES``; Spot by default) with ``method`` (see the module
    docstring); Adam, learning rate 0.02, cosine schedule. Trial ``t`` of a given seed always draws the
    same axis and offset."""
    if target not in ("silhouette", "shaded"):
        raise ValueError(f"target must be 'silhouette' or 'shaded', got {target!r}")
    fn = get_method(method)
    mesh = scene(shape)
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4]]), image_size=(size, size), fov=45.0)
    lights = _POSE_LIGHTS if target == "shaded" else None
    g = torch.Generator().manual_seed(seed * 100_003 + trial)
    axis = torch.nn.functional.normalize(torch.randn(3, generator=g), dim=0)
    true_rot = axis * math.radians(initial_degrees)
    true_shift = torch.nn.functional.normalize(torch.randn(3, generator=g), dim=0) * 0.05
    with torch.no_grad():
        image, alpha = fn(posed(mesh, true_rot, true_shift), cams, lights)
    start = time.perf_counter()
    fit = fit_pose(
        mesh,
        cams,
        alpha,
        target_rgb=image if lights is not None else None,
        lights=lights,
        method=fn,
        config=PoseConfig(steps=steps, lr=0.02),
        track=lambda r, t: {"rotation_error": rotation_error_degrees(r, true_rot)},
    )
    seconds = time.perf_counter() - start
    errors = fit.histories[0].column("rotation_error")
    first = next((k + 1 for k, e in enumerate(errors) if e < 5.0), None)
    err = rotation_error_degrees(fit.rotation, true_rot)
    return PoseResult(
        method,
        shape,
        target,
        float(initial_degrees),
        trial,
        err,
        float((fit.translation - true_shift).norm()),
        err < 5.0,
        first,
        seconds,
    )


@dataclass(frozen=True)
class ShapeResult:
    """Accuracy of the deformed icosphere against the true shape after the budget."""

    method: str
    shape: str
    views: int
    steps: int
    chamfer_l2: float
    chamfer_l1: float
    normal_consistency: float
    f_score: float
    volume_iou: float
    silhouette_iou: float
    seconds: float


def shape_task(
    method: str,
    views: int = 12,
    steps: int = 150,
    size: int = 64,
    seed: int = 0,
    surface_samples: int = 5000,
    volume_samples: int = 20_000,
    shape: str = "spot",
) -> ShapeResult:
    """Deform a level-3 icosphere (radius 0.75) into ``shape`` (``SCENES``) from ``views`` hard silhouettes
    (Adam, learning rate 0.01, weights 0.01 Laplacian and 0.1 edge length), and measure it (module
    docstring) with ``surface_samples`` points per surface and ``volume_samples`` points for the volume
    IoU."""
    truth = scene(shape)
    cams = ring_cameras(views, size)
    target = render(truth, cams).alpha
    start = time.perf_counter()
    fit = fit_shape(cams, target, method=get_method(method), config=ShapeConfig(steps=steps))
    seconds = time.perf_counter() - start
    final = fit.mesh
    g = torch.Generator().manual_seed(seed)
    pf, nf, _, _ = sample_surface(final, surface_samples, generator=g)
    pt, nt, _, _ = sample_surface(truth, surface_samples, generator=g)
    return ShapeResult(
        method,
        shape,
        views,
        steps,
        float(chamfer_distance(pf, pt)[0]),
        float(chamfer_distance(pf, pt, norm=1)[0]),
        float(normal_consistency(pf, nf, pt, nt)[0]),
        float(f_score(pf, pt, 0.02)[0]),
        float(volume_iou(final, truth, volume_samples, generator=g)[0]),
        float(silhouette_iou(render(final, cams).alpha, target).mean()),
        seconds,
    )


@dataclass(frozen=True)
class AppearanceResult:
    """Recovered texture and lighting: texture PSNR (observed texels, per-channel scale aligned), image
    PSNR of the fitted views and the relative error of the SH coefficients after the same scale."""

    method: str
    views: int
    steps: int
    texture_psnr: float
    image_psnr: float
    sh_relative_error: float
    seconds: float


def appearance_task(
    method: str, views: int = 8, steps: int = 200, size: int = 64, texture_size: int = 32, seed: int = 0
) -> AppearanceResult:
    """Fit a ``texture_size``\\ :sup:`2` texture (from grey) and SH lighting (from a constant environment)
    to shaded views of Spot under known random SH lighting (Adam, learning rate 0.03)."""
    fn = get_method(method)
    base = spot()
    truth_tex = _downsample(_spot_texture(base), texture_size)
    g = torch.Generator().manual_seed(seed)
    sh_true = torch.zeros(9, 3)
    sh_true[0] = 2 * math.sqrt(math.pi) * 0.8
    sh_true[1:4] = (torch.rand(3, 3, generator=g) - 0.5) * 1.2
    sh_true[4:] = (torch.rand(5, 3, generator=g) - 0.5) * 0.4
    cams = ring_cameras(views, size)
    with torch.no_grad():
        target, _ = fn(with_texture(base, truth_tex), cams, Lights(sh=SHLighting(sh_true)))
    start = time.perf_counter()
    fit = fit_appearance(
        base, cams, target, method=fn, config=AppearanceConfig(steps=steps, texture_size=texture_size)
    )
    seconds = time.perf_counter() - start
    with torch.no_grad():
        image, _ = fn(with_texture(base, fit.texture), cams, fit.lights)
        fitted, ref = fit.texture[fit.observed], truth_tex[fit.observed]  # (S, 3)
        # the per-channel scale that albedo x light leaves free, by least squares
        scale = (fitted * ref).sum(0) / (fitted * fitted).sum(0).clamp_min(1e-12)
        tex_psnr = float(psnr((fitted * scale)[None, None], ref[None, None])[0])
        assert fit.lights.sh is not None
        sh_err = float((fit.lights.sh.coefficients[0] / scale - sh_true).norm() / sh_true.norm())
        img_psnr = float(psnr(image, target).mean())
    return AppearanceResult(method, views, steps, tex_psnr, img_psnr, sh_err, seconds)


def _spot_texture(mesh: Meshes) -> Tensor:
    maps = [m.diffuse_map for ms in mesh.materials for m in ms if m.diffuse_map is not None]
    if not maps:
        raise ValueError("Spot has no texture in this installation")
    return maps[0][..., :3].float()


def _downsample(tex: Tensor, size: int) -> Tensor:
    """``(size, size, 3)`` area-averaged copy of a texture."""
    return torch.nn.functional.interpolate(tex.permute(2, 0, 1)[None], (size, size), mode="area")[0].permute(
        1, 2, 0
    )


def as_rows(
    results: list[PoseResult] | list[ShapeResult] | list[AppearanceResult],
) -> list[dict[str, object]]:
    """The results as JSON-ready dictionaries."""
    return [asdict(r) for r in results]
