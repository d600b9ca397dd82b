"""Rendering voxel grids by ray marching: collect what each pixel's ray crosses, then aggregate it.

For every pixel centre's ray (``gradiance.core.rays.camera_rays``), the part inside the grid's box and
between the camera's near and far depth is collected in one of two ways:

- "stratified": ``samples_per_ray`` equal intervals over that part, each evaluated at its midpoint (or a
  random point, ``randomized``) with the trilinear field of ``Volumes.sample``;
- "traversal": every voxel the ray passes through with the length of the ray inside it
  (``traverse_voxels``), each taken at the voxel's own value (no interpolation), so the quadrature is the
  exact line integral of the piecewise-constant grid.

The samples are then aggregated by ``gradiance.core.raymarch.aggregate_rays`` (emission-absorption,
absorption only, maximum, ray termination). Rays that miss the box get alpha 0, depth 0 and the
background. A batch of ``B`` cameras sees one grid or a batch of ``B`` grids, one per camera. Rays are
processed in chunks of at most ``max_samples_per_chunk`` samples; autograd keeps every chunk's samples
for the backward pass.

Bad input: rays that miss the box (or run parallel to its faces outside it) and empty near-far ranges get
zero-length samples, so alpha 0, depth 0, the background and zero, finite gradients; rays parallel to grid
planes inside the box are walked without dividing by zero. Grids without voxels along an axis, empty
boxes and negative or non-finite densities raise ``ValueError`` when the ``Volumes`` is built; occupancies
above 1 raise for "maximum" and "ray_termination".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..core.checks import check_choice
from ..core.raymarch import AGGREGATIONS, RayAggregate, aggregate_rays
from ..core.rays import CameraRays, camera_rays, clip_to_box, stratified_samples
from ..core.volumes import Volumes
from .traversal import traverse_voxels

SAMPLERS = ("stratified", "traversal")


@dataclass(frozen=True)
class VolumeRenderSettings:
    """Knobs of ``render_volume``.

    Attributes:
        sampler: "stratified" or "traversal" (module docstring).
        samples_per_ray: intervals per ray for "stratified".
        randomized: evaluate each stratified interval at a random point instead of its midpoint (training).
        aggregation: one of ``gradiance.core.raymarch.AGGREGATIONS``.
        background: features of the background (length ``C``), or None for zeros.
        max_samples_per_chunk: samples processed at once (memory budget; at least one ray's worth).
    """

    sampler: str = "stratified"
    samples_per_ray: int = 128
    randomized: bool = False
    aggregation: str = "emission_absorption"
    background: tuple[float, ...] | None = None
    max_samples_per_chunk: int = 2_000_000

    def __post_init__(self) -> None:
        check_choice(self.sampler, "sampler", SAMPLERS)
        check_choice(self.aggregation, "aggregation", AGGREGATIONS)
        if self.aggregation == "ray_termination" and self.sampler != "traversal":
            raise ValueError(
                "aggregation 'ray_termination' needs sampler='traversal': its events are the voxels a ray "
                "crosses (with stratified samples the result would depend on the number of samples)"
            )
        for name in ("samples_per_ray", "max_samples_per_chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class VolumeRenderOutput:
    """Images of ``B`` cameras.

    Attributes:
        image: ``(B, H, W, C)`` aggregated features (``C = 0`` for grids without features).
        alpha: ``(B, H, W, 1)``.
        depth: ``(B, H, W, 1)`` expected camera-space depth, 0 where nothing was hit.
        weights: ``(B, H, W, S)`` per-sample weights (traversal pads with zeros to the longest ray).
        sample_depth: ``(B, H, W, S)`` the samples' camera-space depths (padding, of weight 0, holds finite
            placeholders).
    """

    image: Tensor
    alpha: Tensor
    depth: Tensor
    weights: Tensor
    sample_depth: Tensor

    def as_rays(self) -> RayAggregate:
        """The pixels as ``B * H * W`` rays, row-major per camera (e.g. for ``ray_consistency_loss``)."""
        S, C = self.weights.shape[-1], self.image.shape[-1]
        R = self.alpha.numel()
        return RayAggregate(
            self.image.reshape(R, C),
            self.alpha.reshape(-1),
            self.depth.reshape(-1),
            self.weights.reshape(R, S),
            self.sample_depth.reshape(R, S),
        )


def render_volume(
    volumes: Volumes,
    cameras: Cameras,
    settings: VolumeRenderSettings | None = None,
    generator: torch.Generator | None = None,
) -> VolumeRenderOutput:
    """Render ``volumes`` seen by ``cameras`` (module docstring). ``generator`` drives ``randomized``."""
    settings = settings or VolumeRenderSettings()
    if not isinstance(volumes, Volumes):
        raise TypeError(f"volumes must be a gradiance Volumes, got {type(volumes).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be gradiance Cameras, got {type(cameras).__name__}")
    B = len(cameras)
    if volumes.densities.device != cameras.device:
        raise ValueError(
            f"volumes are on {volumes.densities.device} but cameras on {cameras.device}; move one explicitly"
        )
    rays = camera_rays(cameras.to(dtype=volumes.densities.dtype))
    P = rays.origins.shape[1]
    per_ray = settings.samples_per_ray if settings.sampler == "stratified" else sum(volumes.resolution)
    step = settings.max_samples_per_chunk // (B * per_ray)
    if step < 1:
        raise ValueError(
            f"one pixel of every camera takes {B * per_ray} samples but VolumeRenderSettings."
            f"max_samples_per_chunk is {settings.max_samples_per_chunk}; raise it (or render fewer cameras)"
        )
    parts = [
        march_volume(volumes, rays.select(slice(a, a + step)), settings, generator) for a in range(0, P, step)
    ]
    S = max(p.weights.shape[1] for p in parts)  # traversal: pad every chunk to the longest ray
    H, W = cameras.image_size

    # parts are chunks of pixels over every camera: (B * chunk) rows each, camera-major
    def image(xs: list[Tensor]) -> Tensor:
        chunks = [x.reshape(B, x.shape[0] // B, *x.shape[1:]) for x in xs]
        return torch.cat(chunks, 1).reshape(B, H, W, *xs[0].shape[1:])

    feats = image([p.features for p in parts])
    alpha = image([p.alpha[:, None] for p in parts])
    depth = image([p.depth[:, None] for p in parts])
    weights = [torch.nn.functional.pad(p.weights, (0, S - p.weights.shape[1])) for p in parts]
    samples = [torch.nn.functional.pad(p.sample_depth, (0, S - p.weights.shape[1])) for p in parts]
    return VolumeRenderOutput(feats, alpha, depth, image(weights), image(samples))


def _background(background: tuple[float, ...] | None, C: int, like: Tensor) -> Tensor | None:
    if background is None:
        return None
    if len(background) != C:
        raise ValueError(f"background must have {C} values (one per feature channel), got {len(background)}")
    return torch.tensor(background, dtype=like.dtype, device=like.device)


def march_volume(
    volumes: Volumes,
    rays: CameraRays,
    settings: VolumeRenderSettings | None = None,
    generator: torch.Generator | None = None,
) -> RayAggregate:
    """Aggregate ``B x n`` rays (``CameraRays`` of ``B`` cameras, ``n`` rays each, e.g. ``select``-ed or
    ``flatten``-ed for random rays) through ``volumes`` (1 grid, or one per camera): ``B * n`` rows,
    camera-major. Rays are not chunked here (``render_volume`` chunks)."""
    settings = settings or VolumeRenderSettings()
    B, n = rays.origins.shape[:2]
    if len(volumes) not in (1, B):
        raise ValueError(f"volumes must hold 1 grid or one per camera ({B}), got {len(volumes)}")
    background = _background(settings.background, volumes.num_features, volumes.densities)
    origins, directions = rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3)
    t_near, t_far, z_per_t = rays.t_near.reshape(-1), rays.t_far.reshape(-1), rays.z_per_t.reshape(-1)
    grid = torch.arange(B, device=origins.device).repeat_interleave(n) if len(volumes) > 1 else None
    lo = volumes.lo_t[grid] if grid is not None else volumes.lo_t.expand(B * n, 3)
    hi = volumes.hi_t[grid] if grid is not None else volumes.hi_t.expand(B * n, 3)
    if settings.sampler == "traversal":
        seg = traverse_voxels(origins, directions, lo, hi, volumes.resolution, t_near, t_far)
        samples = seg.samples
        g = (grid if grid is not None else torch.zeros_like(t_near, dtype=torch.long))[:, None]
        sigma, feats = volumes.voxel_values(g.expand_as(seg.valid).reshape(-1), seg.voxels.reshape(-1, 3))
        sigma = sigma.reshape(seg.valid.shape) * seg.valid
        feats = feats.reshape(*seg.valid.shape, -1)
    else:
        start, end = clip_to_box(origins, directions, t_near, t_far, lo, hi)
        samples = stratified_samples(start, end, settings.samples_per_ray, settings.randomized, generator)
        points = samples.points(origins, directions)
        G = len(volumes)
        sigma, feats = volumes.sample(points.reshape(G, -1, 3))
        sigma = sigma.reshape(samples.t.shape)
        feats = feats.reshape(*samples.t.shape, -1)
    depth = samples.t * z_per_t[:, None]
    return aggregate_rays(sigma, samples.lengths, feats, depth, settings.aggregation, background)
