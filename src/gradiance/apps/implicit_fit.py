"""Recovering Spot as a neural signed distance function from its 24 rendered views, by surface rendering
with implicit gradients (IDR, Yariv et al. 2020) or by volumetric rendering (NeuS, Wang et al. 2021).

The pictures are those of ``apps.volume_fit`` (Spot normalised to a bounding-box diagonal of 1, the 24
views of the NMR/SoftRas protocol, premultiplied RGBA). Both fits optimise a ``NeuralSDF`` (geometric
initialisation to a sphere of radius 0.5) and a ``RenderingNetwork`` with Adam on random batches of rays:

- "idr": sphere tracing inside the box ``[-0.6, 0.6]^3``; on rays that hit and are inside the silhouette,
  the L1 error of the colour at the implicitly differentiated hit point; on the other rays, the binary
  cross-entropy of the soft silhouette ``sigmoid(-a min_t f)`` with the mask, ``a`` doubling every quarter
  of the steps (IDR, eqs. 7-9); and the eikonal term at the hits and at random points in the box.
- "neus": NeuS rendering with stratified and importance samples, the L1 error of premultiplied colour,
  the binary cross-entropy of the accumulated opacity with the mask, and the eikonal term at the samples.
  The sharpness ``s = exp(10 v)`` is learned (NeuS, section 3.4).

``evaluate_sdf_fit`` extracts the zero level set by marching cubes (``resolution^3`` over the box) and
reports the chamfer distance and F-score (threshold 0.02, a 50th of the object's size) against Spot's
surface, with 4096 points sampled on each, and the silhouette IoU and PSNR (premultiplied RGB, surface
rendering) on the held-out views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..core.mesh_ops import sample_surface
from ..core.rays import box_tensors, camera_rays, clip_to_box, uniform
from ..eval.metrics import chamfer_and_f_score, psnr, silhouette_iou
from ..eval.suite import Report
from ..implicit.extract import extract_mesh
from ..implicit.neural import NeuralSDF, RenderingNetwork
from ..implicit.neus import eikonal_loss, march_neus
from ..implicit.render import ImplicitRenderSettings, find_hits, render_implicit, soft_silhouette
from ..implicit.tracing import (
    attach_hit_gradients,
    field_gradient,
    field_gradient_with_features,
    unit_normals,
)
from .common import descend_on_random_rays
from .volume_fit import SpotViews, check_views, spot_views

BOX = 0.6
METHODS = ("idr", "neus")


@dataclass(frozen=True)
class SdfFitConfig:
    """Knobs of ``fit_neural_sdf``: the method, steps, rays per step, Adam's learning rate (decayed tenfold
    over the steps), the networks' width and depth, the eikonal weight, NeuS's samples per ray (half
    stratified, half importance) and the seed."""

    method: str = "idr"
    steps: int = 2000
    rays_per_step: int = 1024
    lr: float = 5e-4
    width: int = 128
    depth: int = 4
    eikonal_weight: float = 0.1
    samples_per_ray: int = 64
    seed: int = 0


@dataclass
class SdfFit:
    """The fitted networks, the loss per step and the seconds it took."""

    sdf: NeuralSDF
    appearance: RenderingNetwork
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


BOX_CORNERS = ((-BOX,) * 3, (BOX,) * 3)


def _box_rays(cameras: Cameras) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    rays = camera_rays(cameras).flatten()
    o, d = rays.origins[0], rays.directions[0]
    near, far = clip_to_box(o, d, rays.t_near[0], rays.t_far[0], *box_tensors(BOX_CORNERS, o))
    return o, d, near, far


def initial_networks(config: SdfFitConfig, device: torch.device | str = "cpu") -> SdfFit:
    """The networks ``fit_neural_sdf`` starts from (seeded by ``config.seed``): a ``NeuralSDF`` initialised
    to a sphere of radius 0.5 and a ``RenderingNetwork``, with no steps taken."""
    torch.manual_seed(config.seed)
    skip = config.depth // 2
    sdf = NeuralSDF(frequencies=6, width=config.width, depth=config.depth, skip=skip, features=32)
    app = RenderingNetwork(features=32, width=config.width, depth=2, direction_frequencies=2)
    return SdfFit(sdf.to(device), app.to(device))


def fit_neural_sdf(views: Tensor, cameras: Cameras, config: SdfFitConfig | None = None) -> SdfFit:
    """Fit a neural SDF to premultiplied RGBA ``views`` ``(B, H, W, 4)`` (module docstring)."""
    config = config or SdfFitConfig()
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {config.method!r}")
    dev = check_views(views, cameras)
    fit = initial_networks(config, dev)
    sdf, app = fit.sdf, fit.appearance
    variance = torch.nn.Parameter(torch.tensor(0.3, device=dev))
    o, d, near, far = _box_rays(cameras)
    target = views.reshape(-1, 4)

    def loss_fn(step: int, pick: Tensor, g: torch.Generator) -> Tensor:
        rays = (o[pick], d[pick], near[pick], far[pick])
        if config.method == "idr":
            sharpness = 50.0 * 2 ** min(3, 4 * step // max(config.steps, 1))
            return _idr_loss(sdf, app, rays, target[pick], sharpness, config, g)
        return _neus_loss(sdf, app, rays, target[pick], torch.exp(10 * variance), config, g)

    params = [*sdf.parameters(), *app.parameters(), variance]
    fit.losses, fit.seconds = descend_on_random_rays(
        params,
        loss_fn,
        target.shape[0],
        config.steps,
        config.rays_per_step,
        config.lr,
        config.seed,
        decay=0.1,
    )
    return fit


def _idr_loss(
    sdf: NeuralSDF,
    app: RenderingNetwork,
    rays: tuple[Tensor, Tensor, Tensor, Tensor],
    target: Tensor,
    sharpness: float,
    config: SdfFitConfig,
    g: torch.Generator,
) -> Tensor:
    o, d, near, far = rays
    hits = find_hits(sdf, o, d, near, far, ImplicitRenderSettings(max_steps=64, epsilon=1e-4))
    mask = target[:, 3] > 0.5
    good = hits.hit & mask
    t = attach_hit_gradients(sdf, o, d, hits)
    idx = good.nonzero()[:, 0]
    x = o[idx] + t[idx, None] * d[idx]
    _, grad, feats = field_gradient_with_features(sdf.with_features, x, create_graph=True)
    rgb = app(x, unit_normals(grad), d[idx], feats)
    colour = (rgb - target[idx, :3] / target[idx, 3:].clamp_min(1e-3)).abs().sum() / len(o)
    rest = (~good).nonzero()[:, 0]
    soft = soft_silhouette(sdf, o[rest], d[rest], near[rest], far[rest], 32, sharpness, hits.t[rest])
    bce = torch.nn.functional.binary_cross_entropy(
        soft.clamp(1e-6, 1 - 1e-6), mask[rest].float(), reduction="sum"
    )
    mask_term = bce / (sharpness * len(o))
    random = (uniform((len(o), 3), o, g) * 2 - 1) * BOX
    _, grad_r = field_gradient(sdf, torch.cat([random, x.detach()]), create_graph=True)
    return colour + 100.0 * mask_term + config.eikonal_weight * eikonal_loss(grad_r)


def _neus_loss(
    sdf: NeuralSDF,
    app: RenderingNetwork,
    rays: tuple[Tensor, Tensor, Tensor, Tensor],
    target: Tensor,
    inv_s: Tensor,
    config: SdfFitConfig,
    g: torch.Generator,
) -> Tensor:
    o, d, near, far = rays
    half = max(config.samples_per_ray // 2, 1)
    out = march_neus(
        sdf.with_features,
        app,
        o,
        d,
        near,
        far,
        inv_s,
        num_samples=half,
        importance=half,
        randomized=True,
        generator=g,
    )
    colour = (out.rays.features - target[:, :3]).abs().mean()
    alpha = out.rays.alpha.clamp(1e-4, 1 - 1e-4)
    mask_term = torch.nn.functional.binary_cross_entropy(alpha, (target[:, 3] > 0.5).float())
    return colour + 0.1 * mask_term + config.eikonal_weight * eikonal_loss(out.gradients)


def render_sdf_fit(fit: SdfFit, cameras: Cameras) -> tuple[Tensor, Tensor]:
    """``(rgb (B, H, W, 3) premultiplied, alpha (B, H, W, 1))`` of the fitted surface by surface rendering
    (``render_implicit``; the silhouette is where sphere tracing hits), without gradients."""

    def albedo(points: Tensor, normals: Tensor, directions: Tensor) -> Tensor:
        return fit.appearance(points, normals, directions, fit.sdf.with_features(points)[1])

    settings = ImplicitRenderSettings(
        max_steps=128, box=BOX_CORNERS, rays_per_chunk=8192, soft_silhouette=False
    )
    with torch.no_grad():
        out = render_implicit(fit.sdf, cameras, albedo=albedo, settings=settings)
    return out.image * out.alpha, out.alpha


def evaluate_sdf_fit(
    fit: SdfFit, views: SpotViews, resolution: int = 64, samples: int = 4096
) -> dict[str, float]:
    """Chamfer distance and F-score of the extracted mesh against Spot, and held-out silhouette IoU and PSNR
    (module docstring)."""
    g = torch.Generator().manual_seed(0)
    row: dict[str, float] = {"seconds": fit.seconds}
    try:
        mesh = extract_mesh(fit.sdf, resolution, -BOX, BOX)
    except ValueError:
        row.update({"chamfer": math.inf, "f_score": 0.0})
    else:
        pred = sample_surface(mesh, samples, generator=g)[0]
        truth = sample_surface(views.mesh, samples, generator=g)[0]
        chamfer, f = chamfer_and_f_score(pred, truth, 0.02)
        row.update({"chamfer": float(chamfer[0]), "f_score": float(f[0])})
    rgb, alpha = render_sdf_fit(fit, views.held_out_cameras)
    row["silhouette_iou_held_out"] = float(silhouette_iou(alpha, views.held_out[..., 3:]).mean())
    row["psnr_held_out"] = float(psnr(rgb, views.held_out[..., :3]).mean())
    return row


@dataclass(frozen=True)
class SdfReportSizes:
    """Sizes of ``implicit_report``: the pictures' size, each method's config, and marching cubes'
    resolution."""

    image_size: int
    idr: SdfFitConfig
    neus: SdfFitConfig
    resolution: int


FULL = SdfReportSizes(
    64, SdfFitConfig(steps=1500), SdfFitConfig("neus", steps=1000, rays_per_step=256, samples_per_ray=64), 96
)
QUICK = SdfReportSizes(
    32,
    SdfFitConfig(steps=300, rays_per_step=512, width=64, lr=1e-3),
    SdfFitConfig("neus", steps=300, rays_per_step=256, width=64, lr=1e-3, samples_per_ray=32),
    64,
)
TINY = SdfReportSizes(
    16,
    SdfFitConfig(steps=3, rays_per_step=64, width=16, depth=2),
    SdfFitConfig("neus", steps=3, rays_per_step=32, width=16, depth=2, samples_per_ray=8),
    16,
)


def implicit_report(quick: bool = False, tiny: bool = False) -> Report:
    """``gradiance eval implicit``: a neural SDF fitted to Spot's 24 views by IDR-style surface rendering and
    by NeuS, beside the initial sphere, scored by ``evaluate_sdf_fit``; the held-out views pictured (truth
    first)."""
    sz = TINY if tiny else QUICK if quick else FULL
    views = spot_views(sz.image_size)
    initial = initial_networks(sz.idr)
    fits = {
        "initial sphere": initial,
        "idr": fit_neural_sdf(views.train, views.train_cameras, sz.idr),
        "neus": fit_neural_sdf(views.train, views.train_cameras, sz.neus),
    }
    report = Report(kind="implicit", title="gradiance eval implicit (Spot, 24 views)")
    for name, fit in fits.items():
        config = sz.neus if name == "neus" else sz.idr
        row: dict[str, object] = {"method": name, "image_size": sz.image_size, "steps": len(fit.losses)}
        row["rays_per_step"] = config.rays_per_step
        row.update(evaluate_sdf_fit(fit, views, sz.resolution))
        report.rows.append(row)
    report.tables["Spot from 24 views: extracted mesh and held-out silhouettes"] = report.rows
    pictures = [views.held_out[..., :3]] + [
        render_sdf_fit(fit, views.held_out_cameras)[0] for fit in fits.values()
    ]
    grid = torch.cat([torch.cat(list(p), 1) for p in pictures], 0)
    report.images["held_out_views.png"] = (grid.clamp(0, 1) * 255).round().to(torch.uint8)
    return report
