"""The showcase behind ``gradiance demo``: pictures and an ``index.html`` under one folder.

1. The bundled meshes (Spot with its texture, the Utah teapot) from an orbit of cameras: textured, lit
   (ambient plus a directional light, Blinn-Phong) and antialiased, with depth and normal images.
2. Spot rendered by every mesh method side by side.
3. Gradient images: the derivative of every pixel with respect to a sideways translation of Spot, per
   method, beside the pixel-area reference.
4. Pose from one silhouette, 30 degrees off, with every method: rotation error per step (a plot).
5. Spot reconstructed from 12 silhouettes starting from an icosphere (a GIF of the optimisation).
6. Spot's texture recovered from 8 shaded views together with the SH lighting.

The page is self-contained: the pictures lie beside it and nothing is fetched from the network. A small
inline script marks ``<body data-images-loaded="n/m">`` once the page has loaded, so a headless browser
can check that every picture decoded.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class ShowcaseSizes:
    """Sizes of the showcase's sections (the default runs in a few minutes on a 2-core CPU)."""

    methods_size: int = 128
    gradient_size: int = 32
    pose_size: int = 64
    pose_steps: int = 150
    shape_size: int = 64
    shape_views: int = 12
    shape_steps: int = 150
    texture_size: int = 64
    texture_views: int = 8
    texture_steps: int = 300
    splat_size: int = 64
    splat_gaussians: int = 800
    splat_steps: int = 150
    volume_size: int = 48
    volume_resolution: int = 32
    volume_steps: int = 200
    implicit_size: int = 128
    sdf_size: int = 32
    sdf_steps: int = 150


TINY = ShowcaseSizes(
    32, 8, 16, 3, 16, 4, 3, 16, 2, 3, 16, 30, 3, 16, 8, 3, implicit_size=16, sdf_size=12, sdf_steps=3
)


def run_showcase(out: Path, size: int = 256, sizes: ShowcaseSizes | None = None) -> Path:
    """Write the showcase pictures and ``index.html`` into ``out``; return the page's path. ``size`` is
    the resolution of the orbit renders; ``sizes`` those of the other sections."""
    sz = sizes or ShowcaseSizes()
    out.mkdir(parents=True, exist_ok=True)
    cameras = orbit_cameras(4, size)
    settings = RenderSettings(model="blinn_phong", background=(1.0, 1.0, 1.0))
    parts = [_intro(size, len(cameras))]
    for name in ("spot", "teapot"):
        mesh = normalize_to_unit_sphere(load_asset(name))
        start = time.perf_counter()
        with torch.no_grad():
            result = render(mesh, cameras, studio_lights(), method="antialias", settings=settings)
        seconds = time.perf_counter() - start
        parts.append(
            f"<h2>{html.escape(name)} ({len(mesh.verts)} vertices, {int(mesh.faces.shape[0])} faces, "
            f"{len(cameras)} views in {seconds:.2f} s)</h2>"
        )
        for fname, (img, caption) in _pictures(name, result).items():
            save_image(out / fname, tile(img).clamp(0, 1))
            parts.append(_figure(fname, caption))
    sections = (_methods_section, _gradient_section, _pose_section, _shape_section, _texture_section)
    for section in (*sections, _splat_section, _volume_section, _implicit_section):
        start = time.perf_counter()
        html_part = section(out, sz)
        parts.append(html_part.replace("{seconds}", f"{time.perf_counter() - start:.1f}"))
    parts.append(_LOADED_SCRIPT + "</body></html>")
    index = out / "index.html"
    index.write_text("\n".join(parts))
    return index


_LOADED_SCRIPT = (
    "<script>window.addEventListener('load',function(){var i=document.images,n=0;"
    "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0){n++;}}"
    "document.body.setAttribute('data-images-loaded',n+'/'+i.length);});</script>"
)


def _intro(size: int, views: int) -> str:
    return "\n".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'><title>gradiance showcase</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "img{max-width:100%;image-rendering:pixelated}figcaption{color:#444}</style>",
            "</head><body><h1>gradiance showcase</h1>",
            f"<p>Each mesh is normalised to the unit sphere and rendered by {views} <code>look_at</code> "
            f"cameras in an orbit ({size}x{size} pixels) with "
            "<code>gradiance.mesh.render(..., method='antialias')</code>: a vectorised z-buffer, "
            "perspective-correct interpolation, bilinear texturing, Blinn-Phong shading and analytic edge "
            "antialiasing (Laine et al. 2020), all in PyTorch on the CPU. Below, every mesh method on the "
            "same scene, their gradients, and the inverse problems they solve.</p>",
        ]
    )


def _figure(fname: str, caption: str) -> str:
    return (
        f"<figure><img src='{fname}' alt='{html.escape(caption)}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _spot_scene(size: int) -> tuple[Any, Cameras]:
    mesh = normalize_to_unit_sphere(load_asset("spot"))
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4]]), image_size=(size, size), fov=45.0)
    return mesh, cams


def _upscaled_png(path: Path, img: Tensor, factor: int) -> None:
    """Save a ``(H, W, 3)`` float image in [0, 1] or uint8, enlarged ``factor`` times (nearest)."""
    x = img.float() / 255 if img.dtype == torch.uint8 else img
    big = x.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    save_image(path, big.clamp(0, 1))


def _methods_section(out: Path, sz: ShowcaseSizes) -> str:
    from ..eval.methods import get_method
    from ..mesh.render import available_methods

    mesh, cams = _spot_scene(sz.methods_size)
    names = available_methods()
    splats = ("points", "gaussians")
    with torch.no_grad():
        images = [render(mesh, cams, studio_lights(), method=m).image[0] for m in names]
        for name in splats:  # the same mesh as points and as one flat Gaussian per face
            images.append(get_method(name)(mesh, cams, studio_lights())[0][0])  # over black, as the rest
    save_image(out / "methods.png", torch.cat(images, 1).clamp(0, 1))
    return "\n".join(
        [
            "<h2>Every method on one scene ({seconds} s)</h2>",
            _figure(
                "methods.png",
                "Left to right: " + ", ".join([*names, *splats]) + ". hard, nmr and opendr show the same "
                "z-buffered image (they differ in their gradients); antialias blends silhouette edges; "
                "softras and dibr blur coverage so that every pixel sees nearby faces; points splats four "
                "points per face and gaussians one flat Gaussian per face (3D Gaussian splatting).",
            ),
        ]
    )


def _gradient_section(out: Path, sz: ShowcaseSizes) -> str:
    from ..eval.gradients import diverging_colormap, gradient_image
    from ..eval.suite import first_image, spot_view, supersampled_image

    names = ["antialias", "softras", "dibr", "nmr", "opendr"]
    ref_view = spot_view(sz.gradient_size, "hard")
    images = {
        "pixel-area reference": gradient_image(
            partial(supersampled_image, ref_view, "translation", 8), 0.0, "finite_difference", 0.03
        )
    }
    for name in names:
        images[name] = gradient_image(
            partial(first_image, spot_view(sz.gradient_size, name), "translation"), 0.0
        )
    strip = []
    for img in images.values():
        scale = float(torch.quantile(img.abs().double().flatten(), 0.99)) or None
        strip.append(diverging_colormap(img, scale))
    _upscaled_png(out / "gradients.png", torch.cat(strip, 1), 4)
    return "\n".join(
        [
            "<h2>Gradient images ({seconds} s)</h2>",
            _figure(
                "gradients.png",
                "d(pixel)/d(x) for Spot moving sideways: left, central differences of the 8x supersampled "
                "render (the pixel-area reference); then " + ", ".join(names) + " from autograd, one "
                "backward pass per pixel. Red is positive, blue negative, each picture on its own scale. "
                "`gradiance eval gradients` scores them.",
            ),
        ]
    )


def _pose_section(out: Path, sz: ShowcaseSizes) -> str:
    from ..eval.methods import convergence_methods
    from .pose import PoseConfig, fit_pose, posed, rotation_error_degrees

    mesh, cams = _spot_scene(sz.pose_size)
    mesh = mesh.geometry()
    truth = torch.nn.functional.normalize(torch.tensor([0.3, 1.0, 0.2]), dim=0) * math.radians(30)
    with torch.no_grad():
        target = render(posed(mesh, truth, torch.zeros(3)), cams).alpha
    curves = {}
    for name in convergence_methods():
        try:
            fit = fit_pose(
                mesh,
                cams,
                target,
                method=name,
                config=PoseConfig(steps=sz.pose_steps),
                track=lambda r, t: {"error": rotation_error_degrees(r, truth)},
            )
        except NotImplementedError:
            continue
        curves[name] = fit.histories[0].column("error")
    caption = (
        "Rotation error (degrees) per Adam step, recovering Spot's pose from one silhouette 30 degrees off."
    )
    if not _plot(out / "pose.png", lambda ax: _pose_plot(ax, curves)):
        return (
            "<h2>Pose from a silhouette</h2><p>(the plot needs matplotlib: pip install 'gradiance[eval]')</p>"
        )
    finals = ", ".join(f"{k} {v[-1]:.1f}" for k, v in curves.items())
    return "\n".join(
        ["<h2>Pose from a silhouette ({seconds} s)</h2>", _figure("pose.png", f"{caption} Final: {finals}.")]
    )


def _pose_plot(ax: Any, curves: dict[str, list[float]]) -> None:
    for name, errors in curves.items():
        ax.plot(range(1, len(errors) + 1), errors, label=name)
    ax.axhline(5.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("rotation error (degrees)")
    ax.legend(fontsize=8)


def _plot(path: Path, draw: Any) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    draw(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _gif(path: Path, frames: list[Tensor]) -> None:
    from PIL import Image

    pics = [Image.fromarray((f.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()) for f in frames]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=80, loop=0)


def _shape_section(out: Path, sz: ShowcaseSizes) -> str:
    from .common import ring_cameras
    from .shape import ShapeConfig, fit_shape

    truth = normalize_to_unit_sphere(load_asset("spot")).geometry()
    cams = ring_cameras(sz.shape_views, sz.shape_size)
    with torch.no_grad():
        target = render(truth, cams).alpha
    frames: list[Tensor] = []
    every = max(1, sz.shape_steps // 30)

    def keep(step: int, image: Tensor, alpha: Tensor) -> None:
        frames.append(torch.cat([target[0], alpha[0]], 1).expand(-1, -1, 3))

    fit = fit_shape(
        cams,
        target,
        method="softras",
        config=ShapeConfig(steps=sz.shape_steps, snapshot_every=every),
        snapshot=keep,
    )
    with torch.no_grad():
        shaded = render(fit.mesh, orbit_cameras(4, sz.methods_size), studio_lights()).image
    _gif(out / "reconstruction.gif", [f.repeat_interleave(2, 0).repeat_interleave(2, 1) for f in frames])
    save_image(out / "reconstruction.png", tile(shaded).clamp(0, 1))
    iou = fit.history.column("iou")[-1]
    return "\n".join(
        [
            f"<h2>Spot from {sz.shape_views} silhouettes ({{seconds}} s)</h2>",
            _figure(
                "reconstruction.gif",
                f"A level-3 icosphere deformed by SoftRas gradients with Laplacian and edge-length "
                f"regularisers ({sz.shape_steps} steps): the target silhouette of the first view (left) "
                f"and the current one (right). Final mean silhouette IoU {iou:.3f}.",
            ),
            _figure("reconstruction.png", "The reconstructed mesh, shaded, from four other views."),
        ]
    )


def _texture_section(out: Path, sz: ShowcaseSizes) -> str:
    from ..core.lights import SHLighting
    from .appearance import AppearanceConfig, fit_appearance, with_texture
    from .common import ring_cameras

    mesh = normalize_to_unit_sphere(load_asset("spot"))
    cams = ring_cameras(sz.texture_views, sz.texture_size)
    sh = torch.zeros(9, 3)
    sh[0], sh[2] = 2 * math.sqrt(math.pi) * 0.8, 0.5
    with torch.no_grad():
        target = render(mesh, cams, Lights(sh=SHLighting(sh))).image
    fit = fit_appearance(
        mesh,
        cams,
        target,
        method="hard",
        config=AppearanceConfig(steps=sz.texture_steps, texture_size=64, smoothness=0.05),
    )
    with torch.no_grad():
        result = render(with_texture(mesh, fit.texture.clamp(0, 1)), cams, fit.lights).image
    save_image(out / "texture_views.png", torch.cat([tile(target), tile(result)], 0).clamp(0, 1))
    save_image(out / "texture.png", fit.texture.clamp(0, 1))
    return "\n".join(
        [
            f"<h2>Texture and lighting from {sz.texture_views} views ({{seconds}} s)</h2>",
            _figure(
                "texture_views.png",
                "Targets (top: Spot's texture under SH lighting) and the fit (bottom): a 64x64 texture "
                "from grey (with a small smoothness term) and 9 SH coefficients per channel from a constant "
                "environment, through the hard render's gradients.",
            ),
            _figure("texture.png", "The recovered texture; texels no view sees stay grey."),
        ]
    )


def _splat_section(out: Path, sz: ShowcaseSizes) -> str:
    from .splat_fit import SplatFitConfig, fit_image, spot_texture

    target = spot_texture(sz.splat_size)
    frames: list[Tensor] = []
    every = max(1, sz.splat_steps // 30)

    def keep(step: int, image: Tensor) -> None:
        if step % every == 0:
            frames.append(torch.cat([target, image.clamp(0, 1)], 1))

    config = SplatFitConfig(num_gaussians=sz.splat_gaussians, steps=sz.splat_steps)
    fit = fit_image(target, config, on_step=keep)
    frames.append(torch.cat([target, fit.image.clamp(0, 1)], 1))
    _gif(out / "gaussians.gif", [_enlarged(f) for f in frames])
    value = fit.history.column("psnr")[-1]
    return "\n".join(
        [
            "<h2>3D Gaussian splatting on the CPU ({seconds} s)</h2>",
            _figure(
                "gaussians.gif",
                f"{sz.splat_gaussians} Gaussians fitted to Spot's texture (left) seen head-on, rendered with "
                f"tiles, depth sorting and early termination (Kerbl et al. 2023) and optimised with the "
                f"paper's L1 + D-SSIM loss for {sz.splat_steps} steps: PSNR {value:.1f} dB.",
            ),
        ]
    )


def _enlarged(image: Tensor, factor: int = 3) -> Tensor:
    """``(H, W, C)`` shown ``factor`` times larger with square pixels (small fits stay legible)."""
    return image.repeat_interleave(factor, 0).repeat_interleave(factor, 1)


def _volume_section(out: Path, sz: ShowcaseSizes) -> str:
    from ..core.volumes import Volumes
    from ..eval.voxels import voxelize
    from ..volume import VolumeRenderSettings, render_volume
    from .volume_fit import BOX, VolumeFitConfig, evaluate_volume, fit_voxel_grid, render_fit, spot_views

    views = spot_views(sz.volume_size)
    R = sz.volume_resolution
    config = VolumeFitConfig(resolution=R, steps=sz.volume_steps, samples_per_ray=R * 3 // 2)
    fit = fit_voxel_grid(views.train, views.train_cameras, config)
    scores = evaluate_volume(fit, views)
    fitted = render_fit(fit, views.held_out_cameras)[:4, ..., :3]
    save_image(
        out / "volume_fit.png", _enlarged(torch.cat([tile(views.held_out[:4, ..., :3]), tile(fitted)], 0))
    )
    solid = voxelize(views.mesh, R, *BOX).float()
    cams = views.held_out_cameras[:1]
    pictures = []
    for aggregation, values in (
        ("emission_absorption", solid * 4 * R),
        ("absorption", solid * 2),
        ("maximum", solid * 0.8),
        ("ray_termination", solid * 0.3),
    ):
        grid = Volumes(values, lo=(BOX[0],) * 3, hi=(BOX[1],) * 3)
        settings = VolumeRenderSettings(sampler="traversal", aggregation=aggregation)
        with torch.no_grad():
            pictures.append(render_volume(grid, cams, settings).alpha[0].expand(-1, -1, 3))
    save_image(out / "volume_aggregations.png", _enlarged(torch.cat(pictures, 1).clamp(0, 1)))
    return "\n".join(
        [
            "<h2>Voxel grids by ray marching ({seconds} s)</h2>",
            _figure(
                "volume_fit.png",
                f"A {R}^3 density and colour grid fitted to Spot's 24 protocol views in {sz.volume_steps} "
                f"steps (emission-absorption, stratified samples), seen from four held-out views (top: "
                f"truth): held-out PSNR {scores['psnr_held_out']:.1f} dB, voxel IoU "
                f"{scores['voxel_iou']:.2f} (the silhouettes' visual hull: {scores['visual_hull_iou']:.2f}).",
            ),
            _figure(
                "volume_aggregations.png",
                "Spot's solid voxelisation through exact voxel traversal, aggregated four ways (alpha): "
                "emission-absorption, absorption only (X-ray), maximum (perspective transformer nets) "
                "and ray termination (differentiable ray consistency).",
            ),
        ]
    )


def _implicit_section(out: Path, sz: ShowcaseSizes) -> str:
    from ..core import look_at
    from ..implicit import (
        Box,
        ImplicitRenderSettings,
        SmoothUnion,
        Sphere,
        Torus,
        Transformed,
        render_implicit,
    )
    from .implicit_fit import SdfFitConfig, evaluate_sdf_fit, fit_neural_sdf, render_sdf_fit
    from .volume_fit import spot_views

    scene = SmoothUnion(
        Transformed(Torus(major=0.45, minor=0.15), rotation=(1.2, 0.0, 0.0)),
        SmoothUnion(Box(half_size=(0.25, 0.25, 0.25), rounding=0.05), Sphere((0.0, 0.45, 0.0), 0.2), k=0.1),
        k=0.1,
    )
    eyes = torch.tensor([[0.0, 0.8, -2.6], [2.0, 1.0, -1.6], [2.6, 0.6, 0.4]])
    cams = look_at(eyes, image_size=(sz.implicit_size,) * 2, fov=40.0)
    settings = ImplicitRenderSettings(
        shading="blinn_phong", background=(1.0, 1.0, 1.0), box=((-1.0,) * 3, (1.0,) * 3)
    )
    with torch.no_grad():
        shot = render_implicit(
            scene, cams, studio_lights(), torch.tensor([0.9, 0.55, 0.3]), settings=settings
        )
    rows = [tile(shot.image), tile(0.5 + 0.5 * shot.normals), tile(shot.soft_alpha.expand(-1, -1, -1, 3))]
    save_image(out / "implicit_scene.png", torch.cat(rows, 0).clamp(0, 1))
    views = spot_views(sz.sdf_size)
    config = SdfFitConfig(steps=sz.sdf_steps, rays_per_step=512, width=64, lr=1e-3)
    fit = fit_neural_sdf(views.train, views.train_cameras, config)
    scores = evaluate_sdf_fit(fit, views, resolution=48, samples=2048)
    fitted, _ = render_sdf_fit(fit, views.held_out_cameras[:4])
    save_image(
        out / "implicit_fit.png",
        _enlarged(torch.cat([tile(views.held_out[:4, ..., :3]), tile(fitted)], 0).clamp(0, 1)),
    )
    return "\n".join(
        [
            "<h2>Implicit surfaces ({seconds} s)</h2>",
            _figure(
                "implicit_scene.png",
                "A smooth union of a torus, a rounded box and a sphere (signed distances), sphere traced and "
                "shaded with the meshes' lights: colour, normals from the field's gradient, and the soft "
                "silhouette sigmoid(-a min f) that gives rays which miss a gradient.",
            ),
            _figure(
                "implicit_fit.png",
                f"A neural SDF fitted to Spot's 24 views by surface rendering with implicit gradients (IDR) "
                f"in {sz.sdf_steps} steps, seen from held-out views (top: truth): F-score "
                f"{scores['f_score']:.2f} of the marching-cubes mesh, held-out silhouette IoU "
                f"{scores['silhouette_iou_held_out']:.2f}.",
            ),
        ]
    )
