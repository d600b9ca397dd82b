"""Pixel-face pairs near triangles, for renderers whose pixels see every nearby face (SoftRas, DIB-R).

``pairs_near`` expands each screen triangle's bounding box grown by ``radius`` pixels into candidate pixels,
in chunks under a pair budget, and keeps the pixels whose centre lies inside the triangle or within
``radius`` of it. Memory grows with the candidate pairs, never with pixels x faces. Distances are exact
Euclidean distances in pixels (``point_triangle_distance``), differentiable in the triangle's corners.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...core.packing import gather_rows
from .rasterize import bounding_boxes, chunk_slices, expand_boxes


def _cross2(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def point_triangle_distance(p: Tensor, tri: Tensor) -> tuple[Tensor, Tensor]:
    """Squared distance from points to triangles in 2D, and whether each point is inside.

    Args:
        p: ``(P, 2)`` points.
        tri: ``(P, 3, 2)`` triangle corners (either winding; degenerate triangles have no inside).

    Returns:
        ``(d2, inside)``: ``d2[i]`` is the squared distance from ``p[i]`` to the nearest point of the
        triangle's boundary (``(P,)``, differentiable in both arguments), ``inside[i]`` whether ``p[i]``
        lies inside the triangle (edges inclusive).
    """
    a, b, c = tri.unbind(1)
    area = _cross2(b - a, c - a)
    sign = torch.sign(area)
    inside = area != 0
    d2 = None
    for s, e in ((a, b), (b, c), (c, a)):
        edge = e - s
        rel = p - s
        inside = inside & (_cross2(edge, rel) * sign >= 0)
        length2 = (edge * edge).sum(-1)
        t = ((rel * edge).sum(-1) / length2.clamp_min(torch.finfo(p.dtype).tiny)).clamp(0, 1)
        diff = rel - t[:, None] * edge
        de = (diff * diff).sum(-1)
        d2 = de if d2 is None else torch.minimum(d2, de)
    assert d2 is not None
    return d2, inside


def pairs_near(
    tris: Tensor,
    owner: Tensor,
    camera: Tensor,
    image_size: tuple[int, int],
    radius: float | Tensor,
    max_pairs: int,
    skip: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Pixels inside each screen triangle or within ``radius`` pixels of it.

    Args:
        tris: ``(T, 3, 2)`` screen triangles in pixel coordinates.
        owner: ``(T,)`` the face instance of each triangle (several triangles may share one after clipping).
        camera: per instance, the camera index ``b``.
        image_size: ``(H, W)``.
        radius: distance in pixels beyond the triangle within which pixels are kept (>= 0), one for all
            triangles or ``(T,)``.
        max_pairs: candidate pairs processed at once.
        skip: optional ``(B * H * W,)`` bool; pixels where it is True are left out before any distance
            is computed (DIB-R needs only background pixels).

    Returns:
        ``(pixel, tri)``: flat pixel indices ``(b * H + row) * W + col`` and the triangle of each kept pair.
        Each (pixel, face instance) appears once: when near-plane clipping split a face into two
        triangles, the pair keeps the piece that contains the pixel, or else the nearer piece.
    """
    H, W = image_size
    rad = torch.as_tensor(radius, dtype=tris.dtype, device=tris.device).expand(tris.shape[0])
    x0, y0, bw, bh = bounding_boxes(tris, H, W, pad=rad)
    counts = bw * bh
    pixels, kept, scores = [], [], []
    with torch.no_grad():
        for c in chunk_slices(counts, max_pairs):
            item, col, row = expand_boxes(counts[c], x0[c], y0[c], bw[c])
            tri = item + c.start
            if skip is not None:
                cam = gather_rows(camera, gather_rows(owner, tri))
                wanted = torch.nonzero(~gather_rows(skip, (cam * H + row) * W + col)).flatten()
                tri, col, row = (gather_rows(t, wanted) for t in (tri, col, row))
            centre = torch.stack([col, row], -1).to(tris.dtype) + 0.5
            d2, inside = point_triangle_distance(centre, gather_rows(tris, tri))
            r = gather_rows(rad, tri)
            keep = torch.nonzero(inside | (d2 <= r * r)).flatten()
            tri = gather_rows(tri, keep)
            cam = gather_rows(camera, gather_rows(owner, tri))
            pixels.append((cam * H + gather_rows(row, keep)) * W + gather_rows(col, keep))
            kept.append(tri)
            scores.append(torch.where(gather_rows(inside, keep), torch.inf, -gather_rows(d2, keep)))
    if not pixels:
        empty = torch.zeros(0, dtype=torch.int64, device=tris.device)
        return empty, empty
    pixel, tri = torch.cat(pixels), torch.cat(kept)
    if torch.unique(owner).numel() < owner.numel():  # some face was split by the near plane
        pixel, tri = _best_piece(pixel, tri, torch.cat(scores), owner)
    return pixel, tri


def _best_piece(pixel: Tensor, tri: Tensor, score: Tensor, owner: Tensor) -> tuple[Tensor, Tensor]:
    """Keep one pair per (pixel, owner): the one with the highest score."""
    key = pixel * (int(owner.max()) + 1) + gather_rows(owner, tri)
    order = torch.argsort(-score, stable=True)
    order = order[torch.argsort(gather_rows(key, order), stable=True)]
    sorted_key = gather_rows(key, order)
    first = torch.ones_like(sorted_key, dtype=torch.bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    best = gather_rows(order, torch.nonzero(first).flatten())
    return gather_rows(pixel, best), gather_rows(tri, best)
