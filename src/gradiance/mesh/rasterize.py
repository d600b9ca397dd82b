"""``rasterize``: which faces cover each pixel, with perspective-correct barycentrics and depth.

Visibility is decided by a z-buffer without autograd: the vectorised reference
(``gradiance.backends.torch.rasterize``), or on CPU tensors its compiled twin
(``gradiance.backends.numba.rasterize``) when numba is installed. The barycentrics and depths of the
winning faces are then recomputed with autograd, so gradients reach
vertex positions and camera parameters through them (visibility itself is piecewise constant: use
``antialias`` or a soft renderer for silhouette gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..backends.numba import use_numba
from ..backends.torch import rasterize as raster_torch
from ..core.cameras import Cameras
from ..core.meshes import Meshes
from ..core.packing import gather_rows, scatter_rows
from ..core.vectors import dot
from .instances import FaceInstances, check_scene


@dataclass(frozen=True)
class RasterSettings:
    """Rarely changed knobs of ``rasterize``.

    Attributes:
        faces_per_pixel: K, how many nearest faces to keep per pixel (depth peeling, soft renderers).
        cull_backfaces: drop faces whose right-hand-rule normal points away from the camera.
        max_pairs_per_chunk: memory budget, in candidate (pixel, face) pairs processed at once (each pair
            costs roughly 100 bytes of temporaries). A face whose bounding box alone exceeds it raises
            ``RasterBudgetError``; raise the budget or lower the resolution.
        bary_derivatives: also return screen-space derivatives of the barycentrics (for texture LOD).
    """

    faces_per_pixel: int = 1
    cull_backfaces: bool = False
    max_pairs_per_chunk: int = 8_000_000
    bary_derivatives: bool = False

    def __post_init__(self) -> None:
        for name in ("faces_per_pixel", "max_pairs_per_chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class Fragments:
    """Output of ``rasterize`` for ``B`` cameras, ``H x W`` pixels and ``K`` layers.

    Attributes:
        face_id: ``(B, H, W, K)`` int64; ``face_id[b, i, j, k] = f`` means packed face ``f`` of the meshes
            is the ``k``-th nearest face covering the centre of pixel ``(i, j)`` in camera ``b``; -1 where
            fewer than ``k + 1`` faces cover it.
        bary: ``(B, H, W, K, 3)`` perspective-correct barycentrics of that face at the pixel centre: the
            surface point is ``sum_c bary[..., c] * verts[faces[f, c]]``; zero where ``face_id`` is -1.
        depth: ``(B, H, W, K)`` camera-space depth of that surface point; zero where ``face_id`` is -1.
        bary_derivs: ``(B, H, W, K, 3, 2)`` ``d bary[..., c] / d(u, v)`` per pixel, when asked for.
        nearest: the covered pixels of the nearest layer in packed form (``NearestLayer``), as ``rasterize``
            computed them, so that shading can skip the round trip through the images. It is used only
            while ``bary`` is the very tensor it was computed with (a ``replace``-d ``bary`` disables it).
    """

    face_id: Tensor
    bary: Tensor
    depth: Tensor
    bary_derivs: Tensor | None = None
    nearest: NearestLayer | None = None

    @property
    def mask(self) -> Tensor:
        """``(B, H, W, 1)`` float coverage of the nearest layer (1 where a face covers the pixel)."""
        return (self.face_id[..., :1] >= 0).to(self.depth.dtype)


@dataclass(frozen=True)
class NearestLayer:
    """The nearest layer's covered pixels, packed: ``index`` ``(M,)`` flat pixel ``b * H * W + i * W + j``,
    ``face`` ``(M,)``, ``bary`` ``(M, 3)``, ``bary_derivs`` ``(M, 3, 2)`` or None, and ``source``, the image
    ``bary`` they were scattered into."""

    index: Tensor
    face: Tensor
    bary: Tensor
    bary_derivs: Tensor | None
    source: Tensor


def rasterize(
    meshes: Meshes,
    cameras: Cameras,
    settings: RasterSettings | None = None,
    *,
    backend: str = "auto",
) -> Fragments:
    """Rasterise ``meshes`` seen by ``cameras`` into ``Fragments``.

    Args:
        meshes: ``N`` meshes; ``N == 1`` broadcasts the mesh to every camera, ``N == B`` pairs mesh ``n``
            with camera ``n``.
        cameras: ``B`` cameras (perspective or orthographic; lens distortion is not rasterised).
        settings: see ``RasterSettings``.
        backend: which z-buffer decides visibility: "torch" (the vectorised reference), "numba" (compiled,
            CPU tensors only, needs the numba package; the same face ids, with memory for the z-buffer
            only, so ``max_pairs_per_chunk`` does not apply) or "auto" (numba for CPU tensors when it is
            installed, else torch). Barycentrics, depths and their gradients are computed by torch in
            every case.

    Pixel centres are ``(j + 0.5, i + 0.5)``; a centre exactly on an edge counts as covered. Faces that
    cross the near plane are clipped to their visible part; depths outside ``[near, far]`` are not
    covered; zero-area faces cover nothing; nothing else is dropped.
    """
    settings = settings or RasterSettings()
    check_scene(meshes, cameras, backend)
    B, (H, W) = len(cameras), cameras.image_size
    inst = FaceInstances.build(meshes, cameras)
    with torch.no_grad():
        hom, z = inst.corner_hom().detach(), inst.corner_depth().detach()
        near_i, far_i = (
            gather_rows(cameras.near_t.detach(), inst.camera),
            gather_rows(cameras.far_t.detach(), inst.camera),
        )
        tris, tri_z, owner = raster_torch.clip_near(hom, z, near_i)
        scene = (tris, tri_z, owner, inst.camera, near_i, far_i, (H, W))
        perspective, K = cameras.projection == "perspective", settings.faces_per_pixel
        compiled = visibility_backend(backend, hom.device) == "numba"
        if compiled:
            from ..backends.numba import rasterize as raster_numba  # compiles on first use

            winners = raster_numba.nearest_k(*scene, B * H * W, K, settings.cull_backfaces, perspective)
        else:
            chunks = raster_torch.covered_pairs(
                *scene, settings.max_pairs_per_chunk, settings.cull_backfaces, perspective
            )
            winners = raster_torch.nearest_k(chunks, B * H * W, K, hom.device)
    return _fragments(winners.reshape(B, H, W, -1), inst, settings.bary_derivatives, compiled)


def visibility_backend(backend: str, device: torch.device) -> str:
    """The z-buffer ``rasterize`` uses for ``backend`` ("auto", "torch" or "numba") on ``device``."""
    return "numba" if use_numba(backend, device) else "torch"


def _fragments(winners: Tensor, inst: FaceInstances, derivs: bool, compiled: bool) -> Fragments:
    """Differentiable barycentrics and depths of the winning instances (see the backend docstring);
    ``compiled`` computes the barycentrics and their backward with the numba kernels."""
    B, H, W, K = winners.shape
    flat = winners.reshape(-1)
    slot = torch.nonzero(flat >= 0).flatten()  # covered (pixel, layer) slots
    winner = gather_rows(flat, slot)
    corners = gather_rows(inst.corners, winner)  # (M, 3)
    pixel = torch.div(slot, K, rounding_mode="floor")
    u = (pixel % W).to(inst.hom.dtype) + 0.5
    v = (torch.div(pixel, W, rounding_mode="floor") % H).to(inst.hom.dtype) + 0.5
    hc = None if compiled and not derivs else gather_rows(inst.hom, corners)  # (M, 3, 3) with autograd
    if hc is None:
        from ..backends.numba.interpolate import CompiledBarycentrics

        bary = CompiledBarycentrics.apply(inst.hom, corners, u, v)
    else:
        bary = raster_torch.perspective_barycentrics(hc, u, v)
    depth = dot(bary, gather_rows(inst.cam_verts[:, 2], corners))
    face_w = gather_rows(inst.face, winner)
    face_id = torch.full_like(flat, -1).index_copy_(0, slot, face_w)
    n = flat.numel()
    bary_out = scatter_rows(bary, slot, n).reshape(B, H, W, K, 3)
    depth_out = scatter_rows(depth, slot, n).reshape(B, H, W, K)
    d = deriv_out = None
    if derivs and hc is not None:
        n_uv = raster_torch.barycentric_planes(hc)[..., :2]  # d e_c / d(u, v)
        s = raster_torch.edge_values(hc, u, v).sum(1, keepdim=True)
        d = (n_uv - bary[..., None] * n_uv.sum(1, keepdim=True)) / s[..., None]
        deriv_out = scatter_rows(d, slot, n).reshape(B, H, W, K, 3, 2)
    first = slice(None) if K == 1 else torch.nonzero(slot % K == 0).flatten()
    nearest = NearestLayer(
        index=pixel[first],
        face=face_w[first],
        bary=bary[first],
        bary_derivs=None if d is None else d[first],
        source=bary_out,
    )
    return Fragments(
        face_id=face_id.reshape(B, H, W, K),
        bary=bary_out,
        depth=depth_out,
        bary_derivs=deriv_out,
        nearest=nearest,
    )
