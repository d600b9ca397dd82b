"""``gradiance fit shape|pose|appearance``: a fitting application run end to end on synthetic views of a
mesh, with everything it produced written under one folder.

The mesh (a file, or the name of a bundled asset) is normalised to the unit sphere and rendered by
``views`` ring cameras; these renders are the targets. ``shape`` reconstructs it from the silhouettes,
starting from an icosphere; ``pose`` recovers a rotation of 30 degrees about a seeded random axis (and a
small shift) from the silhouettes; ``appearance`` recovers its texture and SH lighting from shaded views
(the mesh needs UVs). The folder receives the result mesh (``result.obj``), the targets and the final
renders side by side (``views.png``), a GIF of the first view during the optimisation
(``optimisation.gif``), ``results.json``, ``results.md`` and ``report.html``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..core import Cameras, Lights, Meshes, normalize_to_unit_sphere, sample_surface
from ..core.lights import AmbientLight, DirectionalLights, SHLighting
from ..eval.metrics import chamfer_distance, psnr, silhouette_iou
from ..eval.suite import Report
from ..io import load_asset, load_gltf, load_obj, load_ply_mesh, save_image, save_obj
from ..mesh import render
from ..mesh.render import RenderOutput
from .appearance import AppearanceConfig, fit_appearance, with_texture
from .common import History, ring_cameras
from .pose import PoseConfig, fit_pose, posed, rotation_error_degrees
from .shape import ShapeConfig, fit_shape

FIT_KINDS = ("shape", "pose", "appearance")


def load_any_mesh(source: str) -> Meshes:
    """A mesh from an OBJ, PLY, glTF or GLB file, or a bundled asset by name ("spot", "teapot")."""
    path = Path(source)
    if not path.exists():
        return load_asset(source)
    suffix = path.suffix.lower()
    if suffix == ".obj":
        return load_obj(path)
    if suffix == ".ply":
        return load_ply_mesh(path)
    if suffix in (".gltf", ".glb"):
        return load_gltf(path)
    raise ValueError(f"mesh must be an .obj, .ply, .gltf or .glb file or an asset name, got {source!r}")


class _Frames:
    """Collects the first view of each snapshot as a GIF frame (colour, or the silhouette)."""

    def __init__(self, use_alpha: bool) -> None:
        self.use_alpha = use_alpha
        self.frames: list[Image.Image] = []

    def __call__(self, step: int, image: Tensor, alpha: Tensor) -> None:
        pic = alpha[0].expand(*alpha.shape[1:-1], 3) if self.use_alpha else image[0]
        self.frames.append(Image.fromarray((pic.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()))

    def save(self, path: Path) -> None:
        if self.frames:
            self.frames[0].save(path, save_all=True, append_images=self.frames[1:], duration=80, loop=0)


@dataclass
class _Outcome:
    """What one kind of fit produced: the result mesh, its history, the target renders, the lights to show
    the result with, and the kind's own metrics."""

    result: Meshes
    history: History
    truth: RenderOutput
    lights: Lights
    metrics: dict[str, float]
    texture: Tensor | None = None


def run_fit(
    kind: str,
    source: str,
    out: Path,
    *,
    views: int = 8,
    method: str = "softras",
    size: int = 64,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Report:
    """Run one application (module docstring) and write its files into ``out``; returns the report."""
    if kind not in FIT_KINDS:
        raise ValueError(f"kind must be one of {FIT_KINDS}, got {kind!r}")
    mesh = normalize_to_unit_sphere(load_any_mesh(source))
    if kind == "appearance" and mesh.uvs is None:
        raise ValueError(f"appearance needs a mesh with UVs; {source!r} has none")
    cams = ring_cameras(views, size)
    out.mkdir(parents=True, exist_ok=True)
    frames = _Frames(use_alpha=kind != "appearance")
    common = {"method": method, "snapshot": frames}
    every = max(1, (steps or 150) // 40)
    start = time.perf_counter()
    if kind == "shape":
        done = _fit_shape(
            mesh, cams, ShapeConfig(steps=steps or 150, progress=progress, snapshot_every=every), seed, common
        )
    elif kind == "pose":
        done = _fit_pose(
            mesh, cams, PoseConfig(steps=steps or 150, progress=progress, snapshot_every=every), seed, common
        )
    else:
        done = _fit_appearance(
            mesh, cams, AppearanceConfig(steps=steps or 200, progress=progress, snapshot_every=every), common
        )
    if done.texture is not None:
        save_image(out / "texture.png", done.texture)
    summary: dict[str, Any] = {"kind": kind, "mesh": source, "views": views, "method": method, "size": size}
    summary.update(done.metrics, seconds=time.perf_counter() - start)
    with torch.no_grad():
        final = render(done.result, cams, done.lights)
    summary["silhouette_iou"] = float(silhouette_iou(final.alpha, done.truth.alpha).mean())
    save_obj(out / "result.obj", done.result if kind == "appearance" else done.result.geometry())
    frames.save(out / "optimisation.gif")
    report = Report(
        f"fit {kind}", rows=done.history.rows, tables={"result": [summary]}, title=f"gradiance fit {kind}"
    )
    target = done.truth.image if kind == "appearance" else done.truth.alpha
    report.images["views.png"] = _side_by_side(target, final)
    report.plots["loss.png"] = lambda ax: _plot_loss(ax, done.history.column("loss"))
    if (out / "optimisation.gif").exists():  # no frames when there were no steps
        report.files["optimisation.gif"] = out / "optimisation.gif"
    return report


def _fit_shape(
    mesh: Meshes, cams: Cameras, config: ShapeConfig, seed: int, common: dict[str, Any]
) -> _Outcome:
    with torch.no_grad():
        truth = render(mesh, cams, _LIGHTS)
    fit = fit_shape(cams, truth.alpha, config=config, **common)
    g = torch.Generator().manual_seed(seed)
    a, _, _, _ = sample_surface(fit.mesh, 5000, generator=g)
    b, _, _, _ = sample_surface(mesh.geometry(), 5000, generator=g)
    return _Outcome(fit.mesh, fit.history, truth, _LIGHTS, {"chamfer_l2": float(chamfer_distance(a, b)[0])})


def _fit_pose(mesh: Meshes, cams: Cameras, config: PoseConfig, seed: int, common: dict[str, Any]) -> _Outcome:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(3, generator=g), dim=0)
    true_rot, true_shift = axis * math.radians(30.0), torch.tensor([0.03, -0.02, 0.02])
    with torch.no_grad():
        truth = render(posed(mesh, true_rot, true_shift), cams, _LIGHTS)
    pose = fit_pose(mesh, cams, truth.alpha, config=config, **common)
    metrics = {
        "rotation_error_degrees": rotation_error_degrees(pose.rotation, true_rot),
        "translation_error": float((pose.translation - true_shift).norm()),
    }
    return _Outcome(pose.apply(mesh), pose.histories[pose.restart], truth, _LIGHTS, metrics)


def _fit_appearance(
    mesh: Meshes, cams: Cameras, config: AppearanceConfig, common: dict[str, Any]
) -> _Outcome:
    sh = torch.zeros(9, 3)
    sh[0], sh[2] = 2 * math.sqrt(math.pi) * 0.8, 0.5  # a bright environment, lit from above
    with torch.no_grad():
        truth = render(mesh, cams, Lights(sh=SHLighting(sh)))
    app = fit_appearance(mesh, cams, truth.image, config=config, **common)
    result = with_texture(mesh, app.texture.clamp(0, 1))
    with torch.no_grad():
        image_psnr = float(psnr(render(result, cams, app.lights).image, truth.image).mean())
    return _Outcome(
        result, app.history, truth, app.lights, {"image_psnr": image_psnr}, app.texture.clamp(0, 1)
    )


_LIGHTS = Lights(
    ambient=AmbientLight(torch.full((3,), 0.35)),
    directional=DirectionalLights(torch.tensor([[0.6, 0.5, 0.8]]), torch.full((1, 3), 0.65)),
)


def _side_by_side(target: Tensor, final: Any) -> Tensor:
    """Targets (top row) over final renders (bottom row), as one uint8 picture."""
    shown = final.image if target.shape[-1] == 3 else final.alpha
    top, bottom = (torch.cat(list(x.expand(*x.shape[:-1], 3)), 1) for x in (target, shown))
    return (torch.cat([top, bottom], 0).clamp(0, 1) * 255).round().to(torch.uint8)


def _plot_loss(ax: Any, loss: list[float]) -> None:
    ax.semilogy(range(1, len(loss) + 1), loss)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
