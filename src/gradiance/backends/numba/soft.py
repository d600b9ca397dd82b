"""Pixel-face pairs near triangles (SoftRas, DIB-R) as one compiled pass over the triangles.

The same pairs as the torch reference ``pairs_near`` (``gradiance.backends.torch.soft``), in the same
order (triangle by triangle, each box row by row) and with the same arithmetic (the reference's ``addcmul``
as fused multiply-adds): every pixel centre in a triangle's bounding box grown by its radius, kept when it
lies inside the triangle or within the radius of its boundary, with the edge and parameter of the closest
boundary point. The reference expands the boxes into candidate tensors, up to ``max_pairs_per_chunk`` at
once (with ~100 bytes of temporaries each); here only the kept pairs are stored.
"""

# numba kernels are typed by numba, not by annotations; the wrapper below is fully annotated.
# mypy: disable-error-code="no-untyped-def,untyped-decorator,call-arg"

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from ..torch.rasterize import RasterBudgetError, bounding_boxes
from ..torch.soft import NearPairs, best_piece
from .arrays import as_numpy, pixel_centres
from .rasterize import _fma


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def closest(px, py, xs, ys, tiny, zero, one):
    """``(d2, edge, t, inside)`` of the centre ``(px, py)`` and the triangle with corners ``(xs, ys)``, as
    the reference's ``_closest`` computes them (``tiny``, ``zero``, ``one`` in the triangles' dtype)."""
    best, best_edge, best_t = zero, 0, zero
    s0 = s1 = s2 = zero
    for k in range(3):
        ax, ay = xs[k], ys[k]
        ex, ey = xs[(k + 1) % 3] - ax, ys[(k + 1) % 3] - ay
        rx, ry = px - ax, py - ay
        length2 = max(_fma(ey, ey, ex * ex), tiny)
        t = min(max(_fma(ry, ey, rx * ex) / length2, zero), one)
        dx, dy = _fma(-t, ex, rx), _fma(-t, ey, ry)
        d2 = _fma(dy, dy, dx * dx)
        side = ex * ry - ey * rx  # > 0 on the left of the edge
        if k == 0:
            s0 = side
        elif k == 1:
            s1 = side
        else:
            s2 = side
        if k == 0 or d2 < best:
            best, best_edge, best_t = d2, k, t
    area = (xs[1] - xs[0]) * (ys[2] - ys[0]) - (ys[1] - ys[0]) * (xs[2] - xs[0])
    if area > 0:
        inside = s0 >= 0 and s1 >= 0 and s2 >= 0
    elif area < 0:
        inside = s0 <= 0 and s1 <= 0 and s2 <= 0
    else:
        inside = False
    return best, best_edge, best_t, inside


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def box(tris, f, r, half, H, W):
    """``(c0, c1, r0, r1)``: the columns and rows (inclusive) of the pixel centres in triangle ``f``'s
    bounding box grown by ``r``, as the reference's ``bounding_boxes`` (clamped as floats, then
    converted); empty when ``c1 < c0`` or ``r1 < r0``."""
    c0 = int(min(max(np.ceil((min(tris[f, 0, 0], tris[f, 1, 0], tris[f, 2, 0]) - r) - half), 0.0), W))
    c1 = int(min(max(np.floor((max(tris[f, 0, 0], tris[f, 1, 0], tris[f, 2, 0]) + r) - half), -1.0), W - 1))
    r0 = int(min(max(np.ceil((min(tris[f, 0, 1], tris[f, 1, 1], tris[f, 2, 1]) - r) - half), 0.0), H))
    r1 = int(min(max(np.floor((max(tris[f, 0, 1], tris[f, 1, 1], tris[f, 2, 1]) + r) - half), -1.0), H - 1))
    return c0, c1, r0, r1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _pairs(
    tris, owner, camera, radius, centre_u, centre_v, tiny, skip, start, pixel, tri, edge, t, inside, d2
):
    """The pairs of triangles ``start, start + 1, ...`` into the output arrays until they are full: returns
    ``(next triangle, pairs written)``; a triangle is written whole or not at all. ``skip`` ``(B * H * W,)``
    marks pixels to leave out (empty for none); ``centre_u`` ``(W,)`` and ``centre_v`` ``(H,)`` are the
    pixel centres ``j + 0.5`` in the triangles' dtype."""
    H, W = centre_v.shape[0], centre_u.shape[0]
    half = centre_u[0]
    zero, one = half - half, half + half
    use_skip = skip.shape[0] > 0
    xs = np.empty(3, tris.dtype)
    ys = np.empty(3, tris.dtype)
    n = 0
    for f in range(start, tris.shape[0]):
        r = radius[f]
        c0, c1, r0, r1 = box(tris, f, r, half, H, W)
        if c1 < c0 or r1 < r0:
            continue
        if n + (c1 - c0 + 1) * (r1 - r0 + 1) > pixel.shape[0]:
            return f, n
        for k in range(3):
            xs[k], ys[k] = tris[f, k, 0], tris[f, k, 1]
        base = camera[owner[f]] * H
        rr = r * r
        for row in range(r0, r1 + 1):
            py = centre_v[row]
            for col in range(c0, c1 + 1):
                p = (base + row) * W + col
                if use_skip and skip[p]:
                    continue
                dd, e, tt, ins = closest(centre_u[col], py, xs, ys, tiny, zero, one)
                if ins or dd <= rr:
                    pixel[n], tri[n], edge[n], t[n], inside[n], d2[n] = p, f, e, tt, ins, dd
                    n += 1
    return tris.shape[0], n


def pairs_near(
    tris: Tensor,
    owner: Tensor,
    camera: Tensor,
    image_size: tuple[int, int],
    radius: float | Tensor,
    max_pairs: int,
    skip: Tensor | None = None,
) -> NearPairs:
    """The reference ``pairs_near`` (same arguments, CPU tensors, same pairs in the same order); output is
    written ``max_pairs`` pairs at a time (the kept pairs only, 33 bytes each)."""
    H, W = image_size
    tris = tris.detach().contiguous()
    rad = torch.as_tensor(radius, dtype=tris.dtype).expand(tris.shape[0]).contiguous()
    tris_np = tris.numpy()
    tiny = tris_np.dtype.type(torch.finfo(tris.dtype).tiny)
    skip_np = np.zeros(0, dtype=np.bool_) if skip is None else as_numpy(skip)
    args = (tris_np, as_numpy(owner), as_numpy(camera), rad.numpy(), *pixel_centres(W, H, tris_np), tiny)
    # room for every candidate (the boxes' pixels) up to the budget: the kept pairs are most of them
    _, _, bw, bh = bounding_boxes(tris, H, W, pad=rad)
    cap = max(1, min(int((bw * bh).sum()), max_pairs))
    parts: list[tuple[Tensor, ...]] = []
    start = 0
    while start < tris.shape[0]:
        long = [torch.empty(cap, dtype=torch.int64) for _ in range(3)]
        out = (
            *long,
            torch.empty(cap, dtype=tris.dtype),
            torch.empty(cap, dtype=torch.bool),
            torch.empty(cap, dtype=tris.dtype),
        )
        nxt, n = _pairs(*args, skip_np, start, *(o.numpy() for o in out))
        if nxt == start and n == 0:
            raise RasterBudgetError(
                f"one triangle covers more candidate pixels than the {max_pairs} pairs the budget allows; "
                "raise max_pairs_per_chunk (or lower the resolution)"
            )
        parts.append(tuple(o[:n] for o in out))
        start = nxt
    if not parts:
        empty = torch.zeros(0, dtype=torch.int64)
        return NearPairs(empty, empty, empty, tris.new_zeros(0), empty.bool())
    pixel, tri, edge, t, inside, d2 = (
        torch.cat(f) if len(parts) > 1 else f[0] for f in zip(*parts, strict=True)
    )
    pairs = NearPairs(pixel, tri, edge, t, inside)
    if torch.unique(owner).numel() < owner.numel():  # some face was split by the near plane
        best = best_piece(pixel, tri, torch.where(inside, torch.inf, -d2), owner)
        pairs = NearPairs(*(field[best] for field in pairs))
    return pairs
