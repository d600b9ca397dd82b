"""Rendering implicit surfaces: find each pixel's hit, differentiate it implicitly, shade it like a mesh.

For every pixel centre's ray, clipped to ``settings.box`` (when given) and the camera's near and far depth:

1. the first surface hit, by sphere tracing (signed distances) or a sampled secant search (any field that
   is positive outside, e.g. ``occupancy_as_field``), ``gradiance.implicit.tracing``;
2. the hit depth made differentiable with respect to the field's parameters and the camera by implicit
   differentiation (``attach_hit_gradients``);
3. the normal ``grad g / |grad g|`` at the hit, itself differentiable (``create_graph``), and the colour by
   ``gradiance.core.shading.shade`` with the same lights and materials as meshes, from an albedo that is a
   constant or a function of the hit point, its normal and the view direction (IDR's rendering network);
4. a soft silhouette for every ray, ``sigmoid(-sharpness * min_t g(o + t d))`` with the minimum over
   ``num_samples`` evenly spaced points and the hit (Yariv et al. 2020, eq. 7), so that rays that miss still
   receive gradients (give a ``box`` so that the samples are dense near the surface).

Outputs: colour (background where missed), hard alpha (the hit mask), soft alpha, camera-space depth (0
where missed) and world normals (0 where missed). Rays that start inside the surface, never converge or
leave the range are misses (``Hits``); everything stays finite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..core.checks import check_choice, check_positive_int, check_same_device
from ..core.lights import Lights
from ..core.materials import PhongMaterial
from ..core.rays import BoxCorners, box_tensors, camera_rays, clip_to_box
from ..core.shading import SHADING_MODELS, shade
from .tracing import (
    Field,
    Hits,
    attach_hit_gradients,
    field_gradient,
    secant_search,
    sphere_trace,
    unit_normals,
)

Albedo = Tensor | Callable[[Tensor, Tensor, Tensor], Tensor]
SEARCHES = ("sphere_trace", "secant")


@dataclass(frozen=True)
class ImplicitRenderSettings:
    """Knobs of ``render_implicit``.

    Attributes:
        search: "sphere_trace" (signed distances) or "secant" (any field positive outside).
        max_steps, epsilon, step_scale: sphere tracing's budget, tolerance and step relaxation.
        num_samples, secant_steps: the secant search's samples and refinements; ``num_samples`` also
            sets the samples of the soft silhouette's minimum.
        sharpness: of the soft silhouette.
        shading: "lambert", "phong" or "blinn_phong".
        background: colour where rays miss.
        box: ``(lo, hi)`` corners bounding the surface, or None for the camera's near to far range.
        rays_per_chunk: rays rendered at once (memory grows with it times ``num_samples``).
        soft_silhouette: compute the soft silhouette (``num_samples`` field evaluations per ray, most of the
            cost for a neural field); without it ``soft_alpha`` is the hard alpha.
    """

    search: str = "sphere_trace"
    max_steps: int = 128
    epsilon: float = 1e-4
    step_scale: float = 1.0
    num_samples: int = 64
    secant_steps: int = 8
    sharpness: float = 50.0
    shading: str = "lambert"
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    box: BoxCorners | None = None
    rays_per_chunk: int = 65536
    soft_silhouette: bool = True

    def __post_init__(self) -> None:
        check_choice(self.search, "search", SEARCHES)
        check_choice(self.shading, "shading", SHADING_MODELS)
        if not self.sharpness > 0:
            raise ValueError(f"sharpness must be > 0, got {self.sharpness}")
        for name in ("max_steps", "secant_steps", "rays_per_chunk"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.num_samples, "num_samples", minimum=2)
        if not self.epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon}")
        if not 0 < self.step_scale <= 1:
            raise ValueError(f"step_scale must lie in (0, 1], got {self.step_scale}")
        if self.box is not None and not all(h > lo for lo, h in zip(*self.box, strict=True)):
            raise ValueError(f"box must be (lo, hi) with hi > lo on every axis, got {self.box}")


@dataclass(frozen=True)
class ImplicitRenderOutput:
    """Images of ``B`` cameras: ``image (B, H, W, 3)``, ``alpha (B, H, W, 1)`` (1 where the ray hit),
    ``soft_alpha (B, H, W, 1)``, ``depth (B, H, W, 1)``, ``normals (B, H, W, 3)`` and the ``Hits``."""

    image: Tensor
    alpha: Tensor
    soft_alpha: Tensor
    depth: Tensor
    normals: Tensor
    hits: Hits


def find_hits(
    field: Field,
    origins: Tensor,
    directions: Tensor,
    near: Tensor,
    far: Tensor,
    settings: ImplicitRenderSettings,
) -> Hits:
    """The search of ``settings`` on ``(R, 3)`` rays over ``[near, far]``."""
    if settings.search == "sphere_trace":
        return sphere_trace(
            field,
            origins,
            directions,
            near,
            far,
            max_steps=settings.max_steps,
            epsilon=settings.epsilon,
            step_scale=settings.step_scale,
        )
    return secant_search(
        field,
        origins,
        directions,
        near,
        far,
        num_samples=settings.num_samples,
        secant_steps=settings.secant_steps,
    )


def soft_silhouette(
    field: Field,
    origins: Tensor,
    directions: Tensor,
    near: Tensor,
    far: Tensor,
    num_samples: int,
    sharpness: float,
    t_hit: Tensor | None = None,
) -> Tensor:
    """``(R,)`` ``sigmoid(-sharpness * g(o + t* d))`` with ``t*`` the sample of ``num_samples`` evenly spaced
    ones in ``[near, far]`` (and ``t_hit`` ``(R,)``, the search's result, when given) where ``g`` is least,
    chosen without gradient and evaluated with it. The samples must be dense enough to come near the
    surface: bound the rays by a box around it."""
    with torch.no_grad():
        frac = torch.linspace(0, 1, num_samples, dtype=near.dtype, device=near.device)
        ts = near.detach()[:, None] + (far - near).detach()[:, None] * frac
        if t_hit is not None:
            ts = torch.cat([ts, t_hit.detach()[:, None]], 1)
        pts = origins.detach()[:, None] + ts[..., None] * directions.detach()[:, None]
        g = field(pts.reshape(-1, 3)).reshape(ts.shape)
        t_min = torch.gather(ts, 1, g.argmin(1, keepdim=True))[:, 0]
    return torch.sigmoid(-sharpness * field(origins + t_min[:, None] * directions))


def render_implicit(
    field: Field,
    cameras: Cameras,
    lights: Lights | None = None,
    albedo: Albedo | None = None,
    material: PhongMaterial | None = None,
    settings: ImplicitRenderSettings | None = None,
) -> ImplicitRenderOutput:
    """Render the surface ``g = 0`` of ``field`` (``(N, 3)`` points to ``(N,)``, positive outside) seen by
    ``cameras`` (module docstring). ``albedo``: ``(3,)``, or a function of ``(points, normals,
    view_directions)``, each ``(N, 3)``, returning ``(N, 3)``; None is white. Without ``lights`` the colour
    is the albedo itself."""
    settings = settings or ImplicitRenderSettings()
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be gradiance Cameras, got {type(cameras).__name__}")
    if isinstance(albedo, Tensor):
        check_same_device(albedo=albedo, cameras=cameras.R)
    rays = camera_rays(cameras)
    B, H, W = len(cameras), *cameras.image_size
    o, d = rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3)
    near, far = rays.t_near.reshape(-1), rays.t_far.reshape(-1)
    if settings.box is not None:
        near, far = clip_to_box(o, d, near, far, *box_tensors(settings.box, o))
    z_per_t = rays.z_per_t.reshape(-1)
    parts = []
    for a in range(0, o.shape[0], settings.rays_per_chunk):
        c = slice(a, a + settings.rays_per_chunk)
        parts.append(
            _render_rays(field, o[c], d[c], near[c], far[c], z_per_t[c], albedo, lights, material, settings)
        )
    image, alpha, soft, depth, normals = (torch.cat([p[0][k] for p in parts]) for k in range(5))
    fields = ("t", "hit", "started_inside", "steps")
    hits = Hits(*(torch.cat([getattr(p[1], k) for p in parts]) for k in fields))
    return ImplicitRenderOutput(
        image.reshape(B, H, W, 3),
        alpha.reshape(B, H, W, 1),
        soft.reshape(B, H, W, 1),
        depth.reshape(B, H, W, 1),
        normals.reshape(B, H, W, 3),
        hits,
    )


def _render_rays(
    field: Field,
    o: Tensor,
    d: Tensor,
    near: Tensor,
    far: Tensor,
    z_per_t: Tensor,
    albedo: Albedo | None,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: ImplicitRenderSettings,
) -> tuple[list[Tensor], Hits]:
    """Steps 1 to 4 of the module docstring on ``(R, 3)`` rays: ``(colour, alpha, soft alpha, depth,
    normals, hits)``, per ray."""
    hits = find_hits(field, o, d, near, far, settings)
    t = attach_hit_gradients(field, o, d, hits)
    idx = hits.hit.nonzero()[:, 0]
    points = o[idx] + t[idx, None] * d[idx]
    _, grad = field_gradient(field, points, create_graph=torch.is_grad_enabled())
    normals = unit_normals(grad)
    colour = _colour(points, normals, d[idx], o[idx], albedo, lights, material, settings.shading)
    background = torch.tensor(settings.background, dtype=o.dtype, device=o.device)
    image = background.expand(o.shape[0], 3).index_put((idx,), colour)
    normal_image = o.new_zeros(o.shape[0], 3).index_put((idx,), normals)
    depth = (t * z_per_t).where(hits.hit, 0.0)
    soft = hits.hit.to(o.dtype)
    if settings.soft_silhouette:
        soft = soft_silhouette(field, o, d, near, far, settings.num_samples, settings.sharpness, hits.t)
    return [image, hits.hit.to(o.dtype), soft, depth, normal_image], hits


def _colour(
    points: Tensor,
    normals: Tensor,
    directions: Tensor,
    viewers: Tensor,
    albedo: Albedo | None,
    lights: Lights | None,
    material: PhongMaterial | None,
    model: str,
) -> Tensor:
    if albedo is None:
        base = torch.ones_like(points)
    elif isinstance(albedo, Tensor):
        if albedo.shape != (3,):
            raise ValueError(f"albedo must have shape (3,) or be a function, got {tuple(albedo.shape)}")
        base = albedo.to(points.dtype).expand_as(points)
    else:
        base = albedo(points, normals, directions)
        if base.shape != points.shape:
            raise ValueError(f"albedo must return ({points.shape[0]}, 3), got {tuple(base.shape)}")
    if lights is None:
        return base
    return shade(points[None], normals[None], base[None], viewers[None], lights, material, model)[0]
