"""The methods the evaluation suite and the applications run, by name.

A method is a function ``(meshes, cameras, lights) -> (image (B, H, W, 3), alpha (B, H, W, 1))``
registered by name (``register_eval_method``). Every mesh method of ``gradiance.mesh.render`` is
registered with the settings below; peers (``gradiance.eval.peers``) are registered when importable; other
renderers plug in by registering one such function: "points" splats a fixed point sampling of the mesh
(``mesh_points``), "gaussians" one flat Gaussian per face (``gradiance.gaussians.gaussians_from_meshes``);
volumes and implicit surfaces will do likewise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..core import Cameras, Lights, Meshes, PointClouds, shade
from ..core.packing import gather_rows
from ..gaussians import gaussians_from_meshes, render_gaussians
from ..mesh import RenderSettings, render
from ..mesh.dibr import DIBRSettings
from ..mesh.pixel_shading import PixelSamples, pixel_albedo
from ..mesh.render import available_methods
from ..mesh.softras import SoftRasSettings
from ..points import PointRasterSettings, render_points
from . import peers

EvalRender = Callable[[Meshes, Cameras, "Lights | None"], tuple[Tensor, Tensor]]
_EVAL_METHODS: dict[str, EvalRender] = {}

# Settings of the mesh methods in these tasks: the smoothing of the soft renderers is set for 64-pixel views.
TASK_SETTINGS: dict[str, RenderSettings] = {
    "softras": RenderSettings(softras=SoftRasSettings(sigma=3e-4)),
    "dibr": RenderSettings(dibr=DIBRSettings(delta=1e-3)),
}


def register_eval_method(name: str, fn: EvalRender) -> None:
    """Make the benchmark run ``fn(meshes, cameras, lights) -> (image (B, H, W, 3), alpha (B, H, W, 1))``
    under ``name``."""
    _EVAL_METHODS[name] = fn


def eval_methods() -> list[str]:
    """Names the benchmark can run."""
    return sorted(_EVAL_METHODS)


def _mesh_method(name: str) -> EvalRender:
    settings = TASK_SETTINGS.get(name, RenderSettings())

    def run(meshes: Meshes, cameras: Cameras, lights: Lights | None) -> tuple[Tensor, Tensor]:
        out = render(meshes, cameras, lights, method=name, settings=settings)
        return out.image, out.alpha

    return run


for _name in available_methods():
    register_eval_method(_name, _mesh_method(_name))

POINT_BARYCENTRICS = (
    (1 / 3, 1 / 3, 1 / 3),
    (2 / 3, 1 / 6, 1 / 6),
    (1 / 6, 2 / 3, 1 / 6),
    (1 / 6, 1 / 6, 2 / 3),
)
"""The fixed barycentric samples of every face that ``mesh_points`` turns into points."""
POINT_RADIUS_SCALE = 0.6
"""World radius of the "points" method's points, as a fraction of their face's mean edge length ..."""
POINT_MIN_PIXELS = 0.75
"""... and at least this many pixels at the mesh's centre (so that coarse views have no holes)."""
POINT_SETTINGS = PointRasterSettings(radius_mode="world", kernel="gaussian")
"""The Gaussian kernel: on Spot at 48 pixels its translation and rotation gradients agree better with
finite differences (of itself and of the pixel-area reference) than the quadratic kernel's, whose slope
jumps where a footprint enters a pixel."""


def mesh_points(meshes: Meshes, lights: Lights | None, cameras: Cameras | None = None) -> PointClouds:
    """A deterministic point cloud per mesh: one point at each of ``POINT_BARYCENTRICS`` of every face.

    Positions are interpolated from the vertices (so gradients reach them); colours are the mesh's albedo
    there (texture by UV, material colour, vertex colours; white without any), Lambert-shaded once per point
    with its face's (one-sided) normal when ``lights`` are given; radii are ``POINT_RADIUS_SCALE`` times the
    face's mean edge length, and with ``cameras`` at least ``POINT_MIN_PIXELS`` pixels at the mesh's
    vertex centroid (averaged over the cameras); they are detached (a fixed footprint, not a shape
    parameter). Footprints reach past the surface's outline, so silhouettes come out slightly larger
    than the mesh's (about 10% in area for Spot at 128 pixels). Per-camera lights (batch size > 1) are
    not supported (``NotImplementedError``).
    """
    S = len(POINT_BARYCENTRICS)
    points, colors = surface_colors(meshes, POINT_BARYCENTRICS, lights)
    with torch.no_grad():
        fv = meshes.face_verts()
        radius = POINT_RADIUS_SCALE * torch.linalg.vector_norm(fv - fv.roll(1, dims=1), dim=-1).mean(1)
        if cameras is not None:
            smallest = POINT_MIN_PIXELS * _pixel_size(meshes, cameras)
            radius = torch.maximum(radius, gather_rows(smallest, meshes.face_to_mesh))
        radii = radius.repeat_interleave(S).clamp_min(1e-6)
    return PointClouds(points, meshes.face_offsets * S, colors=colors, radii=radii, validate=False)


def surface_colors(
    meshes: Meshes, barycentrics: tuple[tuple[float, float, float], ...], lights: Lights | None
) -> tuple[Tensor, Tensor]:
    """``(points, colors)``, each ``(F * S, 3)``: the surface point at each of the ``S`` barycentrics of
    every face (face-major) and the mesh's albedo there (texture by UV, material colour, vertex colours;
    white without any), Lambert-shaded with its face's (one-sided) normal when ``lights`` are given."""
    S, F = len(barycentrics), meshes.faces.shape[0]
    dev = meshes.device
    face = torch.arange(F, device=dev).repeat_interleave(S)
    bary = torch.tensor(barycentrics, dtype=meshes.dtype, device=dev).repeat(F, 1)
    px = PixelSamples(index=face, camera=torch.zeros_like(face), face=face, bary=bary, bary_derivs=None)
    points = px.interpolate(meshes.verts, meshes.faces)
    colors = pixel_albedo(px, meshes, "bilinear", "repeat")
    if lights is not None:
        if lights.batch_size != 1:
            raise NotImplementedError("surface colours are shaded with lights shared by every camera only")
        normals = gather_rows(meshes.face_normals(), face)
        colors = shade(points[None], normals[None], colors[None], None, lights, None, "lambert")[0]
    return points, colors


def _pixel_size(meshes: Meshes, cameras: Cameras) -> Tensor:
    """``(N,)`` world length of one pixel at each mesh's vertex centroid, averaged over the cameras."""
    owner = meshes.vert_to_mesh
    counts = (meshes.vert_offsets[1:] - meshes.vert_offsets[:-1]).clamp_min(1).to(meshes.dtype)
    centre = meshes.verts.new_zeros(len(meshes), 3).index_add(0, owner, meshes.verts) / counts[:, None]
    focal = cameras.focal_t.mean(-1)[:, None]  # (B, 1)
    if cameras.projection == "perspective":
        size = cameras.world_to_camera(centre)[..., 2].clamp_min(cameras.near_t[:, None]) / focal
    else:
        size = (1 / focal).expand(-1, len(meshes))
    return size.mean(0)


def _points_method(meshes: Meshes, cameras: Cameras, lights: Lights | None) -> tuple[Tensor, Tensor]:
    """The "points" method: ``mesh_points`` splatted with the Gaussian kernel and front-to-back alpha
    compositing (``gradiance.points.render_points``)."""
    out = render_points(mesh_points(meshes, lights, cameras), cameras, POINT_SETTINGS, compositing="alpha")
    return out.image, out.alpha


register_eval_method("points", _points_method)


def _gaussians_method(meshes: Meshes, cameras: Cameras, lights: Lights | None) -> tuple[Tensor, Tensor]:
    """The "gaussians" method: one flat Gaussian per face (``gaussians_from_meshes``) coloured by the
    albedo at the face's centroid, Lambert-shaded as ``surface_colors`` does, rendered by
    ``render_gaussians`` (the paper's tiles, sorting and compositing)."""
    if len(meshes) != 1:
        raise NotImplementedError("the gaussians method renders one mesh seen by every camera")
    _, colors = surface_colors(meshes, ((1 / 3, 1 / 3, 1 / 3),), lights)
    out = render_gaussians(gaussians_from_meshes(meshes, colors=colors), cameras)
    return out.image, out.alpha


register_eval_method("gaussians", _gaussians_method)

NO_VISIBILITY_GRADIENT = {"hard"}
"""Methods left out of the convergence runs by default: their silhouettes give no gradient to follow."""


def convergence_methods() -> list[str]:
    """The methods the convergence benchmark runs by default."""
    return [m for m in eval_methods() if m not in NO_VISIBILITY_GRADIENT]


def get_method(name: str) -> EvalRender:
    """The registered method ``name`` (a clear error listing the names otherwise)."""
    if name not in _EVAL_METHODS:
        raise ValueError(f"method must be one of {eval_methods()}, got {name!r}")
    return _EVAL_METHODS[name]


if peers.pytorch3d_available():
    register_eval_method("pytorch3d-softras", peers.pytorch3d_softras)
