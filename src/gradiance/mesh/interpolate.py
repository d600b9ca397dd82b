"""``interpolate``: vertex (or face-corner) attributes to pixels by the rasteriser's barycentrics."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.checks import check_tensor
from .rasterize import Fragments


def interpolate(
    attrs: Tensor, fragments: Fragments, faces: Tensor, *, derivatives: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Interpolate attributes over the faces that cover each pixel.

    Args:
        attrs: ``(A, C)`` attribute rows shared by all cameras, or ``(B, A, C)`` one set per camera.
        fragments: output of ``rasterize`` with ``face_id`` ``(B, H, W, K)``.
        faces: ``(F, 3)`` int64 rows of ``attrs`` per face corner, indexed by the packed face ids:
            ``meshes.faces`` for per-vertex attributes, ``meshes.face_uvs`` for UVs.
        derivatives: also return screen-space derivatives (needs ``bary_derivatives`` in the
            rasteriser's settings).

    Returns:
        ``(values, derivs)``: ``values[b, i, j, k] = sum_c bary[b, i, j, k, c] * attrs[faces[f, c]]`` with
        ``f = face_id[b, i, j, k]`` (``(B, H, W, K, C)``, zero where ``f`` is -1); ``derivs[..., c, 0]`` and
        ``[..., c, 1]`` are ``d values / du`` and ``d values / dv`` (``(B, H, W, K, C, 2)``), or None.
        Differentiable with respect to ``attrs`` and, through the barycentrics, vertex positions and cameras.
    """
    B, H, W, K = fragments.face_id.shape
    check_tensor(attrs, "attrs", None, device=fragments.face_id.device)
    check_tensor(faces, "faces", (None, 3), dtype="index", device=fragments.face_id.device)
    if attrs.dim() == 2:
        attrs_b = None
    elif attrs.dim() == 3 and attrs.shape[0] == B:
        attrs_b = attrs
    else:
        raise ValueError(f"attrs must have shape (A, C) or ({B}, A, C), got {tuple(attrs.shape)}")
    if derivatives and fragments.bary_derivs is None:
        raise ValueError(
            "derivatives=True needs fragments from rasterize with RasterSettings(bary_derivatives=True)"
        )
    covered = fragments.face_id >= 0
    face = fragments.face_id[covered]
    if face.numel() and int(face.max()) >= faces.shape[0]:
        raise ValueError(f"faces has {faces.shape[0]} rows but fragments reference face {int(face.max())}")
    rows = faces[face]  # (M, 3)
    if attrs_b is None:
        corner_vals = attrs[rows]  # (M, 3, C)
    else:
        cam = torch.nonzero(covered, as_tuple=True)[0]
        corner_vals = attrs_b[cam[:, None], rows]
    C = attrs.shape[-1]
    bary = fragments.bary[covered]  # (M, 3)
    values = attrs.new_zeros(B, H, W, K, C).index_put((covered,), (bary[..., None] * corner_vals).sum(1))
    if not derivatives or fragments.bary_derivs is None:
        return values, None
    d = fragments.bary_derivs[covered]  # (M, 3, 2)
    dv = (d[:, :, None, :] * corner_vals[..., None]).sum(1)  # (M, C, 2)
    return values, attrs.new_zeros(B, H, W, K, C, 2).index_put((covered,), dv)
