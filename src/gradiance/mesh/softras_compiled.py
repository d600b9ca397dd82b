"""SoftRas on CPU through compiled kernels (``gradiance.backends.numba.soft_*``): the outputs of the pair
path in ``softras.py``, with memory per pixel and per face instead of per pair.

- Silhouette ("prod"): ``1 - exp(log_transmit)``; one pass over the pairs sums ``-softplus(x)`` per pixel
  without storing them (and the floor of the colour weights, for the next step); the backward pass visits
  them again.
- Colour pairs: a second pass lists the pairs ``softras.colour_pairs`` keeps (a compact list, 22 bytes a
  pair, no autograd).
- Colour ("softmax"): for the scenes ``fused_shading`` covers (smooth shading, no textures, constant
  ambient, point and directional lights), one kernel computes each colour pair's weight and shaded colour
  and adds them to per-pixel sums, and its backward pass recomputes them. Other scenes shade the colour
  pairs with the renderer's own torch shading in chunks of ``shading_chunk`` pairs, each recomputed in
  the backward pass (``torch.utils.checkpoint``), so memory grows with one chunk, not with every pair.

It covers the Euclidean distance, the "prod" silhouette, the "softmax" colour, every pair above the cutoff
(``faces_per_pixel=None``) and scenes where no face crosses the near plane; ``compiled_geometry`` returns
None otherwise, and the renderer takes the pair path. Gradients reach the vertices, vertex normals and
colours, the cameras' poses and intrinsics, and (through the chunked path) lights and materials; the near
and far planes in the colour weights get none (the reference differentiates them too).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..core.cameras import Cameras
from ..core.lights import Lights
from ..core.materials import PhongMaterial
from ..core.meshes import Meshes
from ..core.packing import gather_rows
from ..core.vectors import safe_normalize
from .instances import FaceInstances
from .softras import SoftRasSettings, screen_triangles, surface_rows

if TYPE_CHECKING:  # the kernels import numba, an optional dependency: imported where they run
    from ..backends.numba.soft_aggregate import ColourPairs, SoftGeometry
    from ..backends.numba.soft_shade import ShadingConstants

# colors (P, C) of pairs given (flat pixel, face instance, clipped barycentrics (P, 3))
Shade = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class FusedShading:
    """The scene as the one-pass colour kernel (``backends.numba.soft_shade``) takes it."""

    verts: Tensor
    normals: Tensor
    colors: Tensor
    faces: Tensor
    centres: Tensor
    constants: ShadingConstants


def fused_shading(
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    style: tuple[str, str, bool],
) -> FusedShading | None:
    """The scene for the one-pass colour kernel, or None where it does not cover it and the chunks of the
    renderer's own shading run instead. ``style = (shading, model, two_sided)``. Covered: smooth shading
    with the vertex normals in ``meshes.vert_normals`` (given, or computed once by the renderer),
    perspective cameras, white or vertex-coloured albedo (no material maps or colours), no lights or
    ambient, point (without attenuation) and directional lights, and one material, all shared by every
    camera and none needing gradients."""
    from ..backends.numba.soft_shade import MODELS, ShadingConstants

    shading, model, two_sided = style
    if (
        shading != "smooth"
        or meshes.vert_normals is None
        or model not in MODELS
        or cameras.projection != "perspective"
        or not (meshes.face_materials is None or not any(meshes.materials))
        or not _constant_lights(lights, material)
    ):
        return None
    dtype = meshes.verts.dtype
    zeros = meshes.verts.new_zeros(0, 3)
    if lights is None:
        model = "unlit"
    elif model != "lambert" and material is None:
        material = PhongMaterial().to(meshes.device, dtype)
    point, directional = (lights.point, lights.directional) if lights is not None else (None, None)
    ambient = lights.ambient if lights is not None else None
    constants = ShadingConstants(
        model=model,
        ambient=zeros.new_zeros(3) if ambient is None else ambient.color[0],
        point_positions=zeros if point is None else point.positions[0],
        point_colors=zeros if point is None else point.colors[0],
        directions=zeros if directional is None else safe_normalize(directional.directions[0]),
        direction_colors=zeros if directional is None else directional.colors[0],
        specular=zeros.new_zeros(3) if material is None else material.specular_color_t[0],
        shininess=1.0 if material is None else float(material.shininess_t[0]),
        two_sided=two_sided,
    )
    colors = zeros if meshes.vert_colors is None else meshes.vert_colors[:, :3]
    normals = meshes.vert_normals
    return FusedShading(meshes.verts, normals, colors, meshes.faces, cameras.camera_centers(), constants)


def _constant_lights(lights: Lights | None, material: PhongMaterial | None) -> bool:
    """Whether the lights and material are ones the kernel covers: shared, and needing no gradients."""
    tensors: list[Tensor] = []
    if material is not None:
        if material.batch_size != 1:
            return False
        tensors += [material.specular_color_t, material.shininess_t]
    if lights is not None:
        if lights.sh is not None or lights.batch_size != 1:
            return False
        if lights.point is not None and lights.point.attenuation is not None:
            return False
        values = [getattr(part, f.name) for part in lights.parts().values() for f in fields(part)]
        tensors += [t for t in values if isinstance(t, Tensor)]
    return not any(t.requires_grad for t in tensors)


def compiled_geometry(
    inst: FaceInstances, cameras: Cameras, settings: SoftRasSettings
) -> tuple[SoftGeometry, Tensor] | None:
    """``(geometry, owner)`` for the compiled kernels, or None where they do not apply (module docstring)."""
    from ..backends.numba.soft_aggregate import SoftGeometry, logit_threshold

    if (
        settings.distance != "euclidean"
        or settings.faces_per_pixel is not None
        or settings.aggregate_alpha != "prod"
        or inst.hom.dtype not in (torch.float32, torch.float64)
    ):
        return None
    tris, owner, radius = screen_triangles(inst, cameras, settings)
    if torch.unique(owner).numel() < owner.numel():  # a face split by the near plane
        return None
    H, W = cameras.image_size
    scale = min(H, W) / 2.0
    geo = SoftGeometry(
        tris=tris,
        tri_camera=gather_rows(inst.camera, owner),
        image_size=(H, W),
        num_cameras=len(cameras),
        radius=torch.as_tensor(radius, dtype=tris.dtype).expand(tris.shape[0]),
        scale=settings.sigma * scale * scale,
        threshold=logit_threshold(settings.cutoff),
    )
    return geo, owner


def compiled_alpha(geo: SoftGeometry) -> Tensor:
    """``(num_pixels,)`` "prod" silhouette ``1 - prod_j (1 - D_j)``."""
    from ..backends.numba.soft_aggregate import soft_log_transmit

    return 1 - torch.exp(soft_log_transmit(geo)[0])


def compiled_softras(
    geo: SoftGeometry,
    owner: Tensor,
    inst: FaceInstances,
    cameras: Cameras,
    settings: SoftRasSettings,
    shade: Shade | FusedShading,
    background: Tensor,
) -> tuple[Tensor, Tensor]:
    """``(alpha (num_pixels,), rgb (num_pixels, C))``: the "prod" silhouette and the "softmax" colour
    (``softras.aggregate_rgb`` over ``softras.colour_pairs``), the colour in one compiled pass for a
    ``FusedShading``, else shaded by ``shade`` in chunks."""
    from ..backends.numba.soft_aggregate import ColourWeights, colour_candidates, soft_log_transmit
    from ..backends.numba.soft_weights import PairConstants, pair_weights

    near, far = (gather_rows(t, geo.tri_camera) for t in (cameras.near_t, cameras.far_t))
    rows = surface_rows(inst)  # per instance once, outside the chunks
    weights = ColourWeights(
        corner_z=gather_rows(rows[1].T, owner),
        planes=gather_rows(rows[0].T, owner),
        far=far,
        span=far - near,
        gamma=settings.gamma,
        background=settings.epsilon / settings.gamma,
        log_cut=math.log(1 / settings.cutoff),
    )
    log_transmit, floor = soft_log_transmit(geo, weights)  # one pass: the silhouette and the weight floor
    alpha = 1 - torch.exp(log_transmit)
    pairs, top = colour_candidates(geo, weights, settings.max_pairs_per_chunk, floor)
    top = top.to(geo.tris.dtype)

    consts = PairConstants(owner, far, far - near, top, geo.image_size, geo.scale, settings.gamma)
    if isinstance(shade, FusedShading):
        from ..backends.numba.soft_shade import shaded_sums

        mesh = (shade.verts, shade.normals, shade.colors, shade.centres)
        topology = (shade.faces, inst.face, inst.camera)
        acc, wsum = shaded_sums(
            geo.tris, rows[0], rows[1], mesh, tuple(pairs), consts, topology, shade.constants, geo.num_pixels
        )
        return alpha, _blend(acc, wsum, top, background, settings)

    def chunk_sums(*fields: Tensor) -> Tensor:
        """``(num_pixels, C + 1)``: per pixel the sums of ``w_j C_j`` and of ``w_j`` over the chunk's pairs
        ``fields = (pixel, tri, edge, t, inside)``, with ``w_j = D_j exp(z_j / gamma - top)``."""
        bary, w = pair_weights(geo.tris, rows[0], rows[1], fields, consts)
        pixel = fields[0]
        colors = shade(pixel, gather_rows(owner, fields[1]), bary)
        sums = colors.new_zeros(geo.num_pixels, colors.shape[-1] + 1)
        return sums.index_add(0, pixel, torch.cat([w[:, None] * colors, w[:, None]], 1))

    total = _chunked(chunk_sums, pairs, settings.shading_chunk)
    if total is None:  # no pairs at all
        total = top.new_zeros(geo.num_pixels, background.shape[-1] + 1)
    return alpha, _blend(total[:, :-1], total[:, -1], top, background, settings)


def _blend(acc: Tensor, wsum: Tensor, top: Tensor, background: Tensor, settings: SoftRasSettings) -> Tensor:
    """The softmax colour from the per-pixel sums of ``w C`` and ``w``, with the background's weight
    ``exp(epsilon / gamma - top)``."""
    bg_weight = torch.exp(settings.epsilon / settings.gamma - top)
    return (acc + bg_weight[:, None] * background) / (wsum + bg_weight)[:, None]


def _chunked(fn: Callable[..., Tensor], pairs: ColourPairs, chunk: int) -> Tensor | None:
    """The sum of ``fn(*fields)`` over chunks of ``chunk`` pairs; under autograd each chunk is recomputed in
    the backward pass instead of keeping its intermediate values."""
    total = None
    for start in range(0, pairs.pixel.shape[0], chunk):
        fields = tuple(f[start : start + chunk] for f in pairs)
        if torch.is_grad_enabled():
            part = checkpoint(fn, *fields, use_reentrant=False, preserve_rng_state=False)
        else:
            part = fn(*fields)
        total = part if total is None else total + part
    return total
