"""Neural fields rendered by ray marching: positional encoding, a NeRF-style MLP, hierarchical sampling and an
occupancy grid that skips empty space.

A field is any ``nn.Module`` (or callable) mapping ``(points (N, 3), directions (N, 3))`` to
``(density (N,), features (N, C))`` with ``density >= 0``. ``march_field`` renders rays through it as
NeRF does (Mildenhall et al. 2020, section 5): stratified samples over ``[near, far]``, aggregated by
``gradiance.core.raymarch``; with ``importance_samples > 0`` a second, fine pass adds samples drawn from
the coarse weights and renders the union (section 5.2), with ``fine_field`` or the same field. An
``OccupancyGrid`` (the empty-space skipping of instant-NGP, Mueller et al. 2022, section 4) marks cells
where the field's density is negligible; samples there get density 0 without evaluating the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..core.cameras import Cameras
from ..core.checks import check_choice, check_tensor
from ..core.encoding import PositionalEncoding
from ..core.raymarch import AGGREGATIONS, RayAggregate, aggregate_rays
from ..core.rays import (
    BoxCorners,
    RaySamples,
    box_tensors,
    camera_rays,
    clip_to_box,
    resample,
    stratified_samples,
    uniform,
)

Field = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class NeRFField(nn.Module):
    """The NeRF MLP (Mildenhall et al. 2020, appendix A), sized by its arguments: ``depth`` layers of
        ``width`` ReLU units on the encoded position with the encoded input concatenated again to the input of
    layer ``skip``,
        a density head (softplus, so densities are non-negative and the gradient never dies), and a colour
        head on the features and the encoded view direction ending in a sigmoid. ``features`` channels out."""

    def __init__(
        self,
        position_frequencies: int = 10,
        direction_frequencies: int = 4,
        width: int = 256,
        depth: int = 8,
        skip: int = 4,
        features: int = 3,
    ) -> None:
        super().__init__()
        if not 0 < skip < depth:
            raise ValueError(f"skip must lie in (0, depth), got skip={skip}, depth={depth}")
        self.encode_position = PositionalEncoding(position_frequencies)
        self.encode_direction = PositionalEncoding(direction_frequencies)
        n_in = self.encode_position.output_size(3)
        self.skip = skip
        self.layers = nn.ModuleList(
            nn.Linear(n_in if i == 0 else width + (n_in if i == skip else 0), width) for i in range(depth)
        )
        self.density = nn.Linear(width, 1)
        self.bottleneck = nn.Linear(width, width)
        self.colour = nn.Sequential(
            nn.Linear(width + self.encode_direction.output_size(3), width // 2),
            nn.ReLU(),
            nn.Linear(width // 2, features),
        )

    def forward(self, points: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        x = enc = self.encode_position(points)
        for i, layer in enumerate(self.layers):
            x = torch.relu(layer(torch.cat([x, enc], -1) if i == self.skip else x))
        density = nn.functional.softplus(self.density(x)[..., 0])
        h = torch.cat([self.bottleneck(x), self.encode_direction(directions)], -1)
        return density, torch.sigmoid(self.colour(h))


class OccupancyGrid(nn.Module):
    """A ``resolution^3`` grid of cells over the box ``[lo, hi]^3`` that marks where a field is not empty.

    ``update(field)`` evaluates the field's density at one random point per cell and keeps
    ``max(decay * previous, new)`` per cell (instant-NGP's update), and a cell is occupied while that value
    exceeds ``threshold``. Until the first update every cell is occupied. ``occupied(points)`` is False
    only for points in cells known to be empty (points outside the box are reported empty).
    """

    density: Tensor

    def __init__(
        self, resolution: int = 64, lo: float = -1.0, hi: float = 1.0, threshold: float = 0.01
    ) -> None:
        super().__init__()
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        if not hi > lo:
            raise ValueError(f"hi must be greater than lo, got lo={lo}, hi={hi}")
        self.resolution, self.lo, self.hi, self.threshold = resolution, lo, hi, threshold
        self.register_buffer("density", torch.full((resolution,) * 3, float("inf")))

    @property
    def mask(self) -> Tensor:
        """``(R, R, R)`` bool: True where a cell is occupied."""
        return self.density > self.threshold

    @torch.no_grad()
    def update(
        self, field: Field, decay: float = 0.95, generator: torch.Generator | None = None, chunk: int = 65536
    ) -> None:
        R = self.resolution
        param = next(iter(field.parameters()), None) if isinstance(field, nn.Module) else None
        like = self.density.new_empty(0, dtype=param.dtype if param is not None else self.density.dtype)
        axis = torch.arange(R, dtype=like.dtype, device=like.device)
        idx = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        pts = self.lo + (idx + uniform((R**3, 3), like, generator)) * (self.hi - self.lo) / R
        dirs = torch.nn.functional.normalize(uniform((R**3, 3), like, generator) - 0.5, dim=-1)
        dens = torch.cat(
            [field(p, d)[0].reshape(-1) for p, d in zip(pts.split(chunk), dirs.split(chunk), strict=True)]
        )
        dens = dens.reshape(R, R, R).to(self.density.dtype)
        old = torch.where(torch.isinf(self.density), dens, self.density)
        self.density.copy_(torch.maximum(old * decay, dens))

    def occupied(self, points: Tensor) -> Tensor:
        """``(...)`` bool for ``(..., 3)`` points."""
        cell = torch.floor((points - self.lo) / (self.hi - self.lo) * self.resolution).long()
        inside = ((cell >= 0) & (cell < self.resolution)).all(-1)
        cell = cell.clamp(0, self.resolution - 1)
        return self.mask[cell[..., 0], cell[..., 1], cell[..., 2]] & inside


@dataclass(frozen=True)
class FieldRenderSettings:
    """Knobs of ``march_field`` and ``render_field``.

    Attributes:
        samples_per_ray: stratified (coarse) intervals per ray.
        importance_samples: extra samples of the fine pass (0: no fine pass).
        randomized: random points inside the stratified intervals and random quantiles (training).
        aggregation: one of ``gradiance.core.raymarch.AGGREGATIONS``.
        background: features of the background (length ``C``), or None for zeros.
        box: ``(lo, hi)`` corners of the box that bounds the scene (rays are sampled only inside it and
            between the camera's near and far depth), or None for near to far.
        rays_per_chunk: rays evaluated at once by ``render_field``.
    """

    samples_per_ray: int = 64
    importance_samples: int = 0
    randomized: bool = False
    aggregation: str = "emission_absorption"
    background: tuple[float, ...] | None = None
    box: BoxCorners | None = None
    rays_per_chunk: int = 8192

    def __post_init__(self) -> None:
        check_choice(self.aggregation, "aggregation", AGGREGATIONS)
        for name in ("samples_per_ray", "rays_per_chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.importance_samples, int) or self.importance_samples < 0:
            raise ValueError(f"importance_samples must be an int >= 0, got {self.importance_samples!r}")
        if self.box is not None and not all(h > lo for lo, h in zip(*self.box, strict=True)):
            raise ValueError(f"box must be (lo, hi) with hi > lo on every axis, got {self.box}")


@dataclass(frozen=True)
class FieldMarch:
    """Per-ray results of ``march_field``: the coarse pass and, with importance samples, the fine pass
    (None otherwise), each with its samples."""

    coarse: RayAggregate
    coarse_samples: RaySamples
    fine: RayAggregate | None
    fine_samples: RaySamples | None

    @property
    def final(self) -> RayAggregate:
        """The fine pass where there is one, else the coarse pass."""
        return self.fine if self.fine is not None else self.coarse


def march_field(
    field: Field,
    origins: Tensor,
    directions: Tensor,
    near: Tensor,
    far: Tensor,
    settings: FieldRenderSettings | None = None,
    *,
    z_per_t: Tensor | None = None,
    fine_field: Field | None = None,
    occupancy: OccupancyGrid | None = None,
    generator: torch.Generator | None = None,
) -> FieldMarch:
    """Render ``R`` rays through a field (module docstring).

    Args:
        field: the (coarse) field.
        origins, directions: ``(R, 3)`` rays with unit directions.
        near, far: ``(R,)`` the range of ``t`` to sample (clipped to ``settings.box``).
        z_per_t: ``(R,)`` camera-space depth per unit ``t`` (``CameraRays.z_per_t``) for the depth output;
            None reports ``t`` itself.
        fine_field: the field of the fine pass (None: ``field``).
        occupancy: skip samples in cells this grid marks empty.
    """
    settings = settings or FieldRenderSettings()
    if occupancy is not None:
        _check_inside_grid(settings, occupancy)
    sizes: dict[str, int] = {}
    check_tensor(origins, "origins", ("R", 3), sizes=sizes)
    check_tensor(directions, "directions", ("R", 3), sizes=sizes, device=origins.device)
    check_tensor(near, "near", ("R",), sizes=sizes, device=origins.device)
    check_tensor(far, "far", ("R",), sizes=sizes, device=origins.device)
    start, end = near, far
    if settings.box is not None:
        start, end = clip_to_box(origins, directions, near, far, *box_tensors(settings.box, origins))
    scale = z_per_t[:, None] if z_per_t is not None else 1.0
    background = None
    if settings.background is not None:
        background = torch.tensor(settings.background, dtype=origins.dtype, device=origins.device)
    coarse_samples = stratified_samples(start, end, settings.samples_per_ray, settings.randomized, generator)
    sigma, feats = _evaluate(field, coarse_samples, origins, directions, occupancy)
    coarse = aggregate_rays(
        sigma, coarse_samples.lengths, feats, coarse_samples.t * scale, settings.aggregation, background
    )
    if not settings.importance_samples:
        return FieldMarch(coarse, coarse_samples, None, None)
    fine_samples = resample(
        coarse_samples,
        coarse.weights,
        settings.importance_samples,
        start,
        end,
        settings.randomized,
        generator,
    )
    sigma, feats = _evaluate(fine_field or field, fine_samples, origins, directions, occupancy)
    fine = aggregate_rays(
        sigma, fine_samples.lengths, feats, fine_samples.t * scale, settings.aggregation, background
    )
    return FieldMarch(coarse, coarse_samples, fine, fine_samples)


def _check_inside_grid(settings: FieldRenderSettings, occupancy: OccupancyGrid) -> None:
    """Samples outside an occupancy grid count as empty, so the rays' box must lie inside the grid."""
    box = settings.box
    if box is None or min(box[0]) < occupancy.lo or max(box[1]) > occupancy.hi:
        raise ValueError(
            f"with an occupancy grid, settings.box must lie inside the grid's cube [{occupancy.lo}, "
            f"{occupancy.hi}]^3 (samples outside it would count as empty), got {box}"
        )


def _evaluate(
    field: Field, samples: RaySamples, origins: Tensor, directions: Tensor, occupancy: OccupancyGrid | None
) -> tuple[Tensor, Tensor]:
    """``(sigma (R, S), features (R, S, C))``: the field at the samples of positive length (and, with an
    occupancy grid, in occupied cells); zero elsewhere without evaluating it."""
    points = samples.points(origins, directions)
    keep = samples.lengths > 0
    if occupancy is not None:
        keep = keep & occupancy.occupied(points.detach())
    flat = keep.reshape(-1).nonzero()[:, 0]
    dirs = directions[:, None].expand_as(points).reshape(-1, 3)
    density, feats = field(points.reshape(-1, 3)[flat], dirs[flat])
    n = keep.numel()
    if density.shape != (flat.numel(),) or feats.dim() != 2 or feats.shape[0] != flat.numel():
        raise ValueError(
            f"field must return density (N,) and features (N, C) for N = {flat.numel()} points, got "
            f"{tuple(density.shape)} and {tuple(feats.shape)}"
        )
    sigma = density.new_zeros(n).index_put((flat,), density)
    out = feats.new_zeros(n, feats.shape[1]).index_put((flat,), feats)
    return sigma.reshape(keep.shape), out.reshape(*keep.shape, -1)


@dataclass(frozen=True)
class FieldRenderOutput:
    """Images of ``B`` cameras: ``image (B, H, W, C)``, ``alpha (B, H, W, 1)`` and the expected camera-space
    ``depth (B, H, W, 1)`` (0 where nothing is hit)."""

    image: Tensor
    alpha: Tensor
    depth: Tensor


def render_field(
    field: Field,
    cameras: Cameras,
    settings: FieldRenderSettings | None = None,
    *,
    fine_field: Field | None = None,
    occupancy: OccupancyGrid | None = None,
    generator: torch.Generator | None = None,
) -> FieldRenderOutput:
    """Every pixel of ``cameras`` (the fine pass where there is one), ``settings.rays_per_chunk`` rays at a
    time. Differentiable; wrap in ``torch.no_grad()`` to render large images for evaluation."""
    settings = settings or FieldRenderSettings()
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be gradiance Cameras, got {type(cameras).__name__}")
    rays = camera_rays(cameras)
    B, H, W = len(cameras), *cameras.image_size
    flat = [x.reshape(B * H * W, -1) for x in (rays.origins, rays.directions)]
    rng = [x.reshape(-1) for x in (rays.t_near, rays.t_far, rays.z_per_t)]
    parts = []
    for a in range(0, B * H * W, settings.rays_per_chunk):
        s = slice(a, a + settings.rays_per_chunk)
        march = march_field(
            field,
            flat[0][s],
            flat[1][s],
            rng[0][s],
            rng[1][s],
            settings,
            z_per_t=rng[2][s],
            fine_field=fine_field,
            occupancy=occupancy,
            generator=generator,
        )
        parts.append(march.final)
    image = torch.cat([p.features for p in parts]).reshape(B, H, W, -1)
    alpha = torch.cat([p.alpha for p in parts]).reshape(B, H, W, 1)
    depth = torch.cat([p.depth for p in parts]).reshape(B, H, W, 1)
    return FieldRenderOutput(image, alpha, depth)
