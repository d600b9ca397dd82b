"""Recovering a voxel grid, or a small neural field, from 24 rendered views of Spot.

Spot (normalised to a bounding-box diagonal of 1 about the origin) is rendered from the 24 views of the
NMR/SoftRas protocol (``apps.recon.protocol``: elevation 30 degrees, azimuth every 15 degrees) as
premultiplied RGBA, hard-rendered at twice the size and box-filtered. Eight held-out views sit between the
training azimuths at elevations of 15 and 45 degrees.

``fit_voxel_grid`` optimises a density and colour grid over ``[-0.5, 0.5]^3`` with emission-absorption
ray marching (stratified, randomised samples), Adam and random batches of rays, on the squared error of
premultiplied RGB and alpha plus a squared-difference smoothness prior (``total_variation``; Plenoxels,
Fridovich-Keil et al. 2022, use its square-root form).
The density is ``softplus(d) / h`` for a voxel size ``h`` (so ``softplus(d)`` is a voxel's optical depth)
and the colour ``sigmoid(c)``. ``fit_field`` does the same for a ``NeRFField`` with hierarchical sampling.

``evaluate_volume`` reports the PSNR of premultiplied RGB on the held-out and training views (the mean
over views of each view's PSNR) and the IoU of the grid's occupancy against Spot's solid voxelisation at
the grid's resolution. A voxel is occupied when its optical depth exceeds a threshold (``voxel_iou`` at
0.1, i.e. an opacity of 0.095; also reported at 0.3 and 0.5, since soft surfaces make the IoU depend on
it), with the cavities that no ray can reach filled (pictures never see inside an object). The visual
hull of the 24 training silhouettes at the same resolution is reported beside it as the shape the
silhouettes alone determine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from ..core.cameras import Cameras, look_at
from ..core.meshes import Meshes
from ..core.rays import camera_rays
from ..core.volumes import Volumes
from ..eval.metrics import psnr
from ..eval.suite import Report
from ..eval.voxels import fill_enclosed, visual_hull, voxel_iou, voxelize
from ..io.assets import load_asset
from ..volume import (
    FieldRenderSettings,
    NeRFField,
    OccupancyGrid,
    VolumeRenderSettings,
    march_field,
    march_volume,
    render_field,
    render_volume,
)
from ..volume.regularizers import total_variation
from .common import descend_on_random_rays, render_rgba
from .recon.protocol import DISTANCE, FOV, RENDER_LIGHTS, VIEWS, view_cameras

BOX = (-0.5, 0.5)
LO, HI = (BOX[0],) * 3, (BOX[1],) * 3


def spot_mesh() -> Meshes:
    """Spot, centred on its bounding box and scaled to a bounding-box diagonal of 1."""
    mesh = load_asset("spot")
    lo, hi = mesh.verts.min(0).values, mesh.verts.max(0).values
    verts = (mesh.verts - (lo + hi) / 2) / torch.linalg.vector_norm(hi - lo)
    return mesh.with_verts(verts)


def held_out_cameras(image_size: int) -> Cameras:
    """Eight views between the training azimuths (``-15 v - 7.5`` degrees for ``v = 0, 3, ..., 21``) at
    elevations alternating 15 and 45 degrees, at the protocol's distance and field of view."""
    az = torch.deg2rad(-15.0 * torch.arange(0, VIEWS, 3, dtype=torch.float64) - 7.5)
    el = torch.deg2rad(torch.tensor([15.0, 45.0] * 4, dtype=torch.float64))
    eyes = DISTANCE * torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], -1)
    return look_at(eyes.float(), image_size=(image_size, image_size), fov=FOV)


@dataclass(frozen=True)
class SpotViews:
    """Training and held-out pictures of Spot: ``(B, H, W, 4)`` premultiplied RGBA and their cameras."""

    train: Tensor
    train_cameras: Cameras
    held_out: Tensor
    held_out_cameras: Cameras
    mesh: Meshes


def spot_views(image_size: int = 64) -> SpotViews:
    """Spot from the protocol's 24 views and the 8 held-out views (module docstring)."""
    mesh = spot_mesh()
    train_cams = view_cameras(torch.arange(VIEWS), image_size)
    test_cams = held_out_cameras(image_size)
    return SpotViews(
        render_rgba(mesh, train_cams, RENDER_LIGHTS),
        train_cams,
        render_rgba(mesh, test_cams, RENDER_LIGHTS),
        test_cams,
        mesh,
    )


@dataclass(frozen=True)
class VolumeFitConfig:
    """Knobs of ``fit_voxel_grid`` and ``fit_field`` (defaults: the full-size run of ``volume_report``):
    grid resolution, Adam steps and learning rate, rays per step, samples per ray, the TV weight, each
    voxel's initial optical depth, the grid's sampler ("stratified" or "traversal"), the seed, and whether
    the field's fit skips empty space with an ``OccupancyGrid``."""

    resolution: int = 64
    steps: int = 1000
    rays_per_step: int = 4096
    samples_per_ray: int = 96
    lr: float = 0.1
    tv_weight: float = 1e-3
    initial_depth: float = 0.02
    sampler: str = "stratified"
    seed: int = 0
    skip_empty: bool = True


@dataclass
class VolumeFit:
    """What a fit produced: the grid (or field), the loss per step, the seconds it took and the grid's
    sampler (``render_fit`` renders with the sampler it was trained with)."""

    volumes: Volumes | None
    nerf: NeRFField | None
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    sampler: str = "stratified"


def _grid_volumes(d: Tensor, c: Tensor) -> Volumes:
    h = (BOX[1] - BOX[0]) / d.shape[1]
    return Volumes(torch.nn.functional.softplus(d) / h, torch.sigmoid(c), lo=LO, hi=HI)


def fit_voxel_grid(views: Tensor, cameras: Cameras, config: VolumeFitConfig | None = None) -> VolumeFit:
    """Fit a density and colour grid to premultiplied RGBA ``views`` ``(B, H, W, 4)`` (module docstring)."""
    config = config or VolumeFitConfig()
    R, dev = config.resolution, check_views(views, cameras)
    d = torch.full((1, R, R, R), math.log(math.expm1(config.initial_depth)), device=dev, requires_grad=True)
    c = torch.zeros(1, R, R, R, 3, device=dev, requires_grad=True)
    rays = camera_rays(cameras).flatten()
    target = views.reshape(-1, 4)
    settings = VolumeRenderSettings(config.sampler, config.samples_per_ray, randomized=True)

    def loss_fn(step: int, pick: Tensor, g: torch.Generator) -> Tensor:
        out = march_volume(_grid_volumes(d, c), rays.select(pick), settings, g)
        loss = _rgba_loss(out.features, out.alpha, target[pick])
        return loss + config.tv_weight * (total_variation(d) + total_variation(c))

    fit = VolumeFit(None, None, sampler=config.sampler)
    fit.losses, fit.seconds = descend_on_random_rays(
        [d, c], loss_fn, target.shape[0], config.steps, config.rays_per_step, config.lr, config.seed
    )
    fit.volumes = _grid_volumes(d.detach(), c.detach())
    return fit


def check_views(views: Tensor, cameras: Cameras) -> torch.device:
    """The device of the fit; ``views`` must be ``(B, H, W, 4)`` for ``cameras`` and on their device."""
    B, (H, W) = len(cameras), cameras.image_size
    if views.shape != (B, H, W, 4):
        raise ValueError(
            f"views must have shape {(B, H, W, 4)} (premultiplied RGBA), got {tuple(views.shape)}"
        )
    if views.device != cameras.device:
        raise ValueError(f"views are on {views.device} but cameras on {cameras.device}; move one explicitly")
    return views.device


def _rgba_loss(rgb: Tensor, alpha: Tensor, target: Tensor) -> Tensor:
    return ((rgb - target[:, :3]) ** 2).mean() + ((alpha - target[:, 3]) ** 2).mean()


def fit_field(
    views: Tensor, cameras: Cameras, config: VolumeFitConfig | None = None, width: int = 64
) -> VolumeFit:
    """Fit a ``NeRFField`` (8 position and 3 direction frequencies, 4 layers of ``width``) to the same
    pictures: ``config.samples_per_ray`` is split evenly between stratified and importance samples, both
    passes are supervised (Mildenhall et al. 2020, eq. 6), Adam at ``config.lr`` decays tenfold over the
    steps, and with ``config.skip_empty`` a 32^3 ``OccupancyGrid`` spares the network the empty space;
    ``resolution`` and ``tv_weight`` are unused."""
    config = config or VolumeFitConfig(lr=5e-3)
    dev = check_views(views, cameras)
    torch.manual_seed(config.seed)
    nerf = NeRFField(position_frequencies=8, direction_frequencies=3, width=width, depth=4, skip=2).to(dev)
    rays = camera_rays(cameras).flatten()
    target = views.reshape(-1, 4)
    half = max(config.samples_per_ray // 2, 1)
    settings = FieldRenderSettings(half, half, randomized=True, box=(LO, HI))
    # empty-space skipping: a cell is empty once its density would make a sample of a cell's length less
    # than 1 % opaque (instant-NGP's update every 16 steps, after 64 steps of warm-up)
    cells = 32
    grid = OccupancyGrid(cells, BOX[0], BOX[1], threshold=0.01 * cells / (BOX[1] - BOX[0])).to(dev)
    occupancy = grid if config.skip_empty else None

    def update_grid(step: int, g: torch.Generator) -> None:
        if config.skip_empty and step >= 64 and step % 16 == 0:
            grid.update(nerf, generator=g)

    def loss_fn(step: int, pick: Tensor, g: torch.Generator) -> Tensor:
        r = rays.select(pick)
        o, dirs, near, far = (x[0] for x in (r.origins, r.directions, r.t_near, r.t_far))
        march = march_field(nerf, o, dirs, near, far, settings, occupancy=occupancy, generator=g)
        loss = _rgba_loss(march.coarse.features, march.coarse.alpha, target[pick])
        return loss + _rgba_loss(march.final.features, march.final.alpha, target[pick])

    fit = VolumeFit(None, nerf)
    fit.losses, fit.seconds = descend_on_random_rays(
        list(nerf.parameters()),
        loss_fn,
        target.shape[0],
        config.steps,
        config.rays_per_step,
        config.lr,
        config.seed,
        decay=0.1,
        before_step=update_grid,
    )
    return fit


def render_fit(fit: VolumeFit, cameras: Cameras, samples_per_ray: int = 128) -> Tensor:
    """``(B, H, W, 4)`` premultiplied RGBA of a fitted grid or field (no gradients)."""
    with torch.no_grad():
        if fit.volumes is not None:
            settings = VolumeRenderSettings(fit.sampler, samples_per_ray)
            out = render_volume(fit.volumes, cameras, settings)
            return torch.cat([out.image, out.alpha], -1)
        if fit.nerf is None:
            raise ValueError("the fit holds neither a grid nor a field")
        half = samples_per_ray // 2
        field_out = render_field(fit.nerf, cameras, FieldRenderSettings(half, half, box=(LO, HI)))
        return torch.cat([field_out.image, field_out.alpha], -1)


def evaluate_volume(
    fit: VolumeFit, views: SpotViews, occupancy_thresholds: tuple[float, ...] = (0.1, 0.3, 0.5)
) -> dict[str, float]:
    """PSNR (held-out and training views, premultiplied RGB) and, for grids, voxel IoU against Spot's
    solid voxelisation and the visual hull's IoU (module docstring)."""
    held = render_fit(fit, views.held_out_cameras)
    train = render_fit(fit, views.train_cameras)
    row = {
        "psnr_held_out": float(psnr(held[..., :3], views.held_out[..., :3]).mean()),
        "psnr_train": float(psnr(train[..., :3], views.train[..., :3]).mean()),
        "seconds": fit.seconds,
    }
    if fit.volumes is not None:
        R = fit.volumes.resolution[0]
        h = (BOX[1] - BOX[0]) / R
        truth = voxelize(views.mesh, R, *BOX)[0]
        for i, threshold in enumerate(occupancy_thresholds):
            occupied = fill_enclosed(fit.volumes.densities[0] * h > threshold)
            key = "voxel_iou" if i == 0 else f"voxel_iou_{threshold:g}"
            row[key] = float(voxel_iou(occupied[None], truth[None])[0])
        hull = visual_hull(views.train[..., 3:], views.train_cameras, R, *BOX)
        row["visual_hull_iou"] = float(voxel_iou(hull[None], truth[None])[0])
    return row


@dataclass(frozen=True)
class VolumeReportSizes:
    """Sizes of ``volume_report``: image size, the grid fits' config and the field fit's config and width."""

    image_size: int
    grid: VolumeFitConfig
    nerf: VolumeFitConfig
    nerf_width: int


FULL = VolumeReportSizes(
    64, VolumeFitConfig(), VolumeFitConfig(steps=2000, rays_per_step=1024, samples_per_ray=64, lr=5e-3), 64
)
QUICK = VolumeReportSizes(
    48,
    VolumeFitConfig(resolution=32, steps=300, samples_per_ray=48),
    VolumeFitConfig(steps=500, rays_per_step=512, samples_per_ray=48, lr=5e-3),
    48,
)
TINY = VolumeReportSizes(
    16,
    VolumeFitConfig(resolution=8, steps=4, rays_per_step=256, samples_per_ray=12),
    VolumeFitConfig(steps=4, rays_per_step=128, samples_per_ray=8, lr=5e-3),
    16,
)


def volume_report(quick: bool = False, tiny: bool = False) -> Report:
    """``gradiance eval volume``: a voxel grid fitted with stratified samples, one fitted with exact voxel
    traversal and a NeRF-style field, each from Spot's 24 views, scored by ``evaluate_volume``, with the
    held-out views pictured (truth in the first row)."""
    sz = TINY if tiny else QUICK if quick else FULL
    views = spot_views(sz.image_size)
    fits = {
        "grid, stratified": fit_voxel_grid(views.train, views.train_cameras, sz.grid),
        "grid, traversal": fit_voxel_grid(
            views.train, views.train_cameras, replace(sz.grid, sampler="traversal")
        ),
        "neural field": fit_field(views.train, views.train_cameras, sz.nerf, sz.nerf_width),
    }
    report = Report(kind="volume", title="gradiance eval volume (Spot, 24 views)")
    for name, fit in fits.items():
        config = sz.nerf if fit.nerf is not None else sz.grid
        row: dict[str, object] = {"method": name, "image_size": sz.image_size, "steps": config.steps}
        if fit.volumes is not None:
            row["resolution"] = config.resolution
        row.update(evaluate_volume(fit, views))
        report.rows.append(row)
    report.tables["Spot from 24 views: held-out PSNR and voxel IoU"] = report.rows
    pictures = [views.held_out[..., :3]] + [
        render_fit(fit, views.held_out_cameras)[..., :3] for fit in fits.values()
    ]
    grid = torch.cat([torch.cat(list(p), 1) for p in pictures], 0)
    report.images["held_out_views.png"] = (grid.clamp(0, 1) * 255).round().to(torch.uint8)
    return report
