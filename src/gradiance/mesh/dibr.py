"""DIB-R (Chen, Gao, Ling, Ren, Lehtinen, Jacobson, Fidler, NeurIPS 2019, "Learning to Predict 3D Objects with
an Interpolation-based Differentiable Renderer").

Foreground pixels (covered by a face in the hard render) take the barycentric interpolation of the front
face's attributes (eq. 2-3 of the paper), differentiable with respect to the vertices through the
barycentrics and with respect to the attributes; their alpha is 1. Background pixels get a soft coverage
from every face near them (eq. 5): ``A_i = 1 - prod_j (1 - exp(-d_ij^2 / delta))`` with ``d_ij`` the distance
from the pixel centre to face ``j``'s projection in units where the image's shorter side spans 2, which
gives the silhouette gradients that the hard render lacks.

The neighbourhood is every face with ``exp(-d^2 / delta) > cutoff``, i.e. within
``sqrt(delta * ln(1 / cutoff))`` (exact above the cutoff, chunked under ``max_pairs_per_chunk``);
``faces_per_pixel`` keeps only the K nearest faces, like the released code's fixed neighbour count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..backends.torch import rasterize as raster_torch
from ..backends.torch.soft import edge_distance2
from ..core.cameras import Cameras
from ..core.checks import check_positive
from ..core.compositing import nearest_per_pixel
from ..core.packing import gather_rows
from .instances import FaceInstances, pairs_near_by


@dataclass(frozen=True)
class DIBRSettings:
    """Parameters of DIB-R's soft silhouette.

    Attributes:
        delta: width of the coverage falloff, normalised units squared (the released code's
            ``sigmainv = 7000`` is ``delta = 1 / 7000``).
        cutoff: faces with ``exp(-d^2 / delta) <= cutoff`` are outside a pixel's neighbourhood.
        faces_per_pixel: None for every face above the cutoff, or K for the K nearest.
        max_pairs_per_chunk: candidate pairs processed at once (memory budget).
    """

    delta: float = 1.0 / 7000.0
    cutoff: float = 1e-4
    faces_per_pixel: int | None = None
    max_pairs_per_chunk: int = 8_000_000

    def __post_init__(self) -> None:
        check_positive(self.delta, "delta")
        if not 0 < self.cutoff < 1:
            raise ValueError(f"cutoff must be in (0, 1), got {self.cutoff}")
        if self.faces_per_pixel is not None and (
            not isinstance(self.faces_per_pixel, int) or self.faces_per_pixel < 1
        ):
            raise ValueError(f"faces_per_pixel must be None or a positive int, got {self.faces_per_pixel!r}")


def soft_silhouette(
    inst: FaceInstances, cameras: Cameras, covered: Tensor, settings: DIBRSettings, backend: str = "auto"
) -> Tensor:
    """``(B * H * W,)`` alpha: 1 on covered pixels, DIB-R's soft coverage elsewhere.

    Args:
        inst: the faces per camera.
        cameras: the cameras.
        covered: ``(B * H * W,)`` bool, the hard render's coverage.
        settings: see ``DIBRSettings``.
        backend: who finds the pairs near each face: "torch", "numba" or "auto" (the same pairs).
    """
    H, W = cameras.image_size
    scale = min(H, W) / 2.0
    near_i = gather_rows(cameras.near_t, inst.camera)
    tris, _, owner = raster_torch.clip_near(inst.corner_hom(), inst.corner_depth(), near_i)
    radius = math.sqrt(settings.delta * math.log(1 / settings.cutoff)) * scale
    find = pairs_near_by(backend, tris.device)
    near = find(tris, owner, inst.camera, (H, W), radius, settings.max_pairs_per_chunk, skip=covered)
    pixel = near.pixel
    col, row = pixel % W, torch.div(pixel, W, rounding_mode="floor") % H
    centre = torch.stack([col, row], -1).to(tris.dtype) + 0.5
    d2 = edge_distance2(centre, tris, near.edge, near.t, index=near.tri) / (scale * scale)
    keep = torch.nonzero(d2.detach() < settings.delta * math.log(1 / settings.cutoff)).flatten()
    pixel, d2 = gather_rows(pixel, keep), gather_rows(d2, keep)
    if settings.faces_per_pixel is not None:
        nearest = nearest_per_pixel(pixel, d2, settings.faces_per_pixel)
        pixel, d2 = gather_rows(pixel, nearest), gather_rows(d2, nearest)
    # log(1 - exp(-x)) with x = d^2 / delta > 0 on background pixels; expm1 keeps it accurate and finite
    x = (d2 / settings.delta).clamp_min(torch.finfo(d2.dtype).tiny)
    log_miss = torch.log(-torch.expm1(-x))
    total = torch.zeros(covered.shape[0], dtype=d2.dtype, device=d2.device).index_add(0, pixel, log_miss)
    soft = 1 - torch.exp(total)
    return torch.where(covered, torch.ones_like(soft), soft)
