"""Vectorised z-buffer rasterisation in PyTorch (the reference backend).

The work is expressed over *instances*: one instance is one face seen by one camera. Each instance has
homogeneous pixel coordinates per corner, ``hom[i, k] = (u * w, v * w, w)`` with ``w`` the camera-space
depth for perspective cameras (1 for orthographic ones), and camera-space depths ``z[i, k]``.

1. Near-plane clipping splits every instance that crosses ``z = near`` into one or two screen-space
   triangles covering exactly its visible part (Sutherland-Hodgman against one plane); instances wholly
   in front of the near plane keep their triangle and those wholly behind it are dropped (invisible).
2. Each screen triangle expands into the pixels of its bounding box (candidate pairs), in chunks whose
   pair count stays under a budget, so memory grows with the pairs, never with pixels x faces.
3. A pixel centre is covered when all three edge functions agree in sign with the triangle's area
   (edges inclusive). Its depth comes from the instance's perspective-correct barycentrics
   ``b_k = e_k / sum(e)``, ``e_k = (hom_{k+1} x hom_{k+2}) . (u, v, 1)`` (2D homogeneous rasterisation,
   Olano and Greer 1997), which are defined for the whole face even after clipping.
4. Per pixel, the K nearest covered instances win (ties broken by the smaller instance index); depths
   outside ``[near, far]`` are not covered.

Everything here runs without autograd: it decides visibility only. Differentiable barycentrics and
depths are recomputed for the winners by the caller from the same formula.
"""

from __future__ import annotations

import torch
from torch import Tensor


class RasterBudgetError(RuntimeError):
    """A single primitive needs more candidate pairs than the memory budget allows."""


def barycentric_planes(hom: Tensor) -> Tensor:
    """``(I, 3, 3)`` rows ``n_k = hom_{k+1} x hom_{k+2}``: ``e_k(u, v) = n_k . (u, v, 1)``."""
    h0, h1, h2 = hom.unbind(1)
    return torch.stack(
        [
            torch.linalg.cross(h1, h2, dim=-1),
            torch.linalg.cross(h2, h0, dim=-1),
            torch.linalg.cross(h0, h1, dim=-1),
        ],
        1,
    )


def clip_near(hom: Tensor, z: Tensor, near: Tensor) -> tuple[Tensor, Tensor]:
    """Screen triangles of the parts of each instance with ``z >= near``.

    Args:
        hom: ``(I, 3, 3)`` homogeneous pixel coordinates per corner.
        z: ``(I, 3)`` camera-space depth per corner.
        near: ``(I,)`` near-plane depth of each instance's camera.

    Returns:
        ``(tris, owner)``: ``tris`` is ``(T, 3, 2)`` pixel coordinates with the instance's winding,
        ``owner`` ``(T,)`` the instance each triangle belongs to.
    """
    inside = z >= near[:, None]
    n_in = inside.sum(1)
    whole = n_in == 3
    tris = [hom[whole, :, :2] / hom[whole, :, 2:]]
    owner = [torch.nonzero(whole).flatten()]
    for count in (1, 2):
        sel = torch.nonzero(n_in == count).flatten()
        if sel.numel() == 0:
            continue
        # Rotate corners so that the lone vertex (inside for count 1, outside for count 2) comes first.
        lone = inside[sel] if count == 1 else ~inside[sel]
        first = lone.long().argmax(1)
        order = (first[:, None] + torch.arange(3, device=hom.device)) % 3
        h = torch.gather(hom[sel], 1, order[..., None].expand(-1, -1, 3))
        zz = torch.gather(z[sel], 1, order)
        zn = near[sel, None]
        t = (zn - zz[:, :1]) / (zz[:, 1:] - zz[:, :1])  # (S, 2) edge parameters of c0->c1 and c0->c2
        p = h[:, :1] + t[..., None] * (h[:, 1:] - h[:, :1])  # (S, 2, 3) intersection points
        pts = torch.cat([h, p], 1)  # c0, c1, c2, p01, p02
        pts2 = pts[..., :2] / pts[..., 2:]
        if count == 1:
            tris.append(pts2[:, [0, 3, 4]])
            owner.append(sel)
        else:
            tris += [pts2[:, [3, 1, 2]], pts2[:, [3, 2, 4]]]
            owner += [sel, sel]
    return torch.cat(tris), torch.cat(owner)


def _cross2(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _bounding_boxes(tris: Tensor, H: int, W: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """First pixel column/row and widths/heights of the pixels whose centres lie in each bounding box."""
    lo, hi = tris.amin(1), tris.amax(1)
    x0 = torch.ceil(lo[:, 0] - 0.5).clamp(0, W).long()
    x1 = torch.floor(hi[:, 0] - 0.5).clamp(-1, W - 1).long()
    y0 = torch.ceil(lo[:, 1] - 0.5).clamp(0, H).long()
    y1 = torch.floor(hi[:, 1] - 0.5).clamp(-1, H - 1).long()
    return x0, y0, (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)


def covered_pairs(
    tris: Tensor,
    owner: Tensor,
    planes: Tensor,
    z: Tensor,
    camera: Tensor,
    near: Tensor,
    far: Tensor,
    image_size: tuple[int, int],
    max_pairs: int,
    cull_backfaces: bool,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Covered (pixel, depth, instance) triples, one tuple of flat tensors per chunk.

    ``pixel = (camera * H + row) * W + col``; ``depth`` is the instance's camera-space depth at the pixel
    centre. Chunks hold at most ``max_pairs`` candidate pairs each.
    """
    H, W = image_size
    area = _cross2(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    keep = (area < 0) if cull_backfaces else (area != 0)  # area < 0: front-facing in (u right, v down)
    keep &= torch.isfinite(area)
    tris, owner, area = tris[keep], owner[keep], area[keep]
    x0, y0, bw, bh = _bounding_boxes(tris, H, W)
    counts = bw * bh
    nonempty = counts > 0
    tris, owner, area, x0, y0, bw, counts = (x[nonempty] for x in (tris, owner, area, x0, y0, bw, counts))
    if counts.numel() and int(counts.max()) > max_pairs:
        raise RasterBudgetError(
            f"one triangle covers {int(counts.max())} candidate pixels but the memory budget allows "
            f"{max_pairs} pairs per chunk; raise RasterSettings.max_pairs_per_chunk (or lower the resolution)"
        )
    out = []
    cum = torch.cumsum(counts, 0)
    start = 0
    while start < counts.numel():
        base = int(cum[start - 1]) if start else 0
        stop = int(torch.searchsorted(cum, base + max_pairs, right=True))
        stop = max(stop, start + 1)
        out.append(
            _chunk(
                slice(start, stop), tris, owner, area, x0, y0, bw, counts, planes, z, camera, near, far, H, W
            )
        )
        start = stop
    return out


def _chunk(
    s: slice,
    tris: Tensor,
    owner: Tensor,
    area: Tensor,
    x0: Tensor,
    y0: Tensor,
    bw: Tensor,
    counts: Tensor,
    planes: Tensor,
    z: Tensor,
    camera: Tensor,
    near: Tensor,
    far: Tensor,
    H: int,
    W: int,
) -> tuple[Tensor, Tensor, Tensor]:
    c = counts[s]
    idx = torch.repeat_interleave(torch.arange(c.numel(), device=c.device), c)
    local = torch.arange(int(c.sum()), device=c.device) - torch.repeat_interleave(torch.cumsum(c, 0) - c, c)
    bwi = bw[s][idx]
    col = x0[s][idx] + local % bwi
    row = y0[s][idx] + torch.div(local, bwi, rounding_mode="floor")
    p = torch.stack([col, row], -1).to(tris.dtype) + 0.5
    t = tris[s][idx]
    sign = torch.sign(area[s][idx])
    e0 = _cross2(t[:, 2] - t[:, 1], p - t[:, 1]) * sign
    e1 = _cross2(t[:, 0] - t[:, 2], p - t[:, 2]) * sign
    e2 = _cross2(t[:, 1] - t[:, 0], p - t[:, 0]) * sign
    hit = (e0 >= 0) & (e1 >= 0) & (e2 >= 0)
    inst = owner[s][idx][hit]
    p = p[hit]
    pl = planes[inst]  # (P, 3, 3)
    e = pl[..., 0] * p[:, None, 0] + pl[..., 1] * p[:, None, 1] + pl[..., 2]
    depth = (e * z[inst]).sum(1) / e.sum(1)
    cam = camera[inst]
    ok = (depth >= near[cam]) & (depth <= far[cam]) & torch.isfinite(depth)
    pixel = (cam * H + row[hit]) * W + col[hit]
    return pixel[ok], depth[ok], inst[ok]


def nearest_k(
    chunks: list[tuple[Tensor, Tensor, Tensor]], num_pixels: int, k: int, device: torch.device
) -> Tensor:
    """``(num_pixels, k)`` int64 instance ids of the ``k`` nearest covered instances per pixel, nearest
    first, -1 where fewer cover it. Ties in depth go to the smaller instance id."""
    if k == 1:
        best = torch.full((num_pixels,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
        for pixel, depth, inst in chunks:
            best.scatter_reduce_(0, pixel, _depth_key(depth, inst), "amin")
        found = best != torch.iinfo(torch.int64).max
        return torch.where(found, best & _INST_MASK, torch.full_like(best, -1))[:, None]
    keep_pix = torch.zeros(0, dtype=torch.int64, device=device)
    keep_key = torch.zeros(0, dtype=torch.int64, device=device)
    for pixel, depth, inst in chunks:
        pix = torch.cat([keep_pix, pixel])
        key = torch.cat([keep_key, _depth_key(depth, inst)])
        order = torch.argsort(key, stable=True)
        order = order[torch.argsort(pix[order], stable=True)]
        pix, key = pix[order], key[order]
        rank = _rank_in_runs(pix)
        keep_pix, keep_key = pix[rank < k], key[rank < k]
    out = torch.full((num_pixels, k), -1, dtype=torch.int64, device=device)
    out[keep_pix, _rank_in_runs(keep_pix)] = keep_key & _INST_MASK
    return out


MAX_INSTANCES = 2**30
_INST_MASK = MAX_INSTANCES - 1


def _depth_key(depth: Tensor, inst: Tensor) -> Tensor:
    """Non-negative int64 keys ordered by (depth, instance).

    The float32 bit pattern, with the magnitude bits of negative values flipped, orders like the float;
    shifted to unsigned 32 bits it goes in the high bits and the instance id (< 2^30) in the low ones.
    """
    bits = depth.float().view(torch.int32)
    ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() + 2**31
    return (ordered << 30) | inst


def _rank_in_runs(sorted_keys: Tensor) -> Tensor:
    """Position of each element within its run of equal values in a sorted 1D tensor."""
    n = sorted_keys.numel()
    if n == 0:
        return sorted_keys
    idx = torch.arange(n, device=sorted_keys.device)
    start = torch.ones(n, dtype=torch.bool, device=sorted_keys.device)
    start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    run_start = torch.cummax(torch.where(start, idx, torch.zeros_like(idx)), 0).values
    return idx - run_start
