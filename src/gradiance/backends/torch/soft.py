"""Pixel-face pairs near triangles, for renderers whose pixels see every nearby face (SoftRas, DIB-R).

``pairs_near`` expands each screen triangle's bounding box grown by ``radius`` pixels into candidate pixels,
in chunks under a pair budget, and keeps the pixels whose centre lies inside the triangle or within
``radius`` of it. Memory grows with the candidate pairs, never with pixels x faces. Distances are exact
Euclidean distances in pixels (``point_triangle_distance``), differentiable in the triangle's corners.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ...core.packing import gather_rows
from .rasterize import bounding_boxes, chunk_slices, expand_boxes


def _cross2(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


class NearPairs(NamedTuple):
    """Pixel-triangle pairs with the closest point of each triangle's boundary to the pixel centre.

    ``pixel`` flat pixel indices ``(b * H + row) * W + col``; ``tri`` the triangle; ``edge`` the edge
    (from corner ``edge`` to corner ``edge + 1``) holding the closest boundary point, at parameter ``t``
    in ``[0, 1]`` along it; ``inside`` whether the centre lies inside the triangle (edges inclusive)."""

    pixel: Tensor
    tri: Tensor
    edge: Tensor
    t: Tensor
    inside: Tensor


def closest_boundary_points(p: Tensor, tri: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(d2, edge, t, inside)``: squared distance from points ``p`` ``(P, 2)`` to the boundaries of
    triangles ``tri`` ``(P, 3, 2)`` (either winding; degenerate triangles have no inside), the edge and
    parameter of the closest boundary point, and whether each point is inside. Not differentiable: pass
    ``edge`` and ``t`` to ``edge_distance2`` for the differentiable distance."""
    with torch.no_grad():
        xs = [tri[:, k, 0].contiguous() for k in range(3)]
        ys = [tri[:, k, 1].contiguous() for k in range(3)]
        return _closest(p[:, 0].contiguous(), p[:, 1].contiguous(), xs, ys)


def _closest(
    px: Tensor, py: Tensor, xs: list[Tensor], ys: list[Tensor]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``closest_boundary_points`` on contiguous coordinate arrays (corner ``k`` at ``(xs[k], ys[k])``):
    on CPU, arithmetic on the strided columns of a ``(P, 3, 2)`` tensor costs several times more."""
    best = best_edge = best_t = torch.empty(0)
    sides = []
    for k in range(3):
        ax, ay = xs[k], ys[k]
        ex, ey = xs[(k + 1) % 3] - ax, ys[(k + 1) % 3] - ay  # edge k runs from corner k to corner k + 1
        rx, ry = px - ax, py - ay
        length2 = torch.addcmul(ex * ex, ey, ey).clamp_min_(torch.finfo(px.dtype).tiny)
        t = torch.addcmul(rx * ex, ry, ey).div_(length2).clamp_(0, 1)
        dx, dy = torch.addcmul(rx, t, ex, value=-1), torch.addcmul(ry, t, ey, value=-1)
        d2 = torch.addcmul(dx * dx, dy, dy)
        sides.append(ex * ry - ey * rx)  # > 0 on the left of the edge
        if k == 0:
            best, best_edge, best_t = d2, torch.zeros_like(d2, dtype=torch.int64), t
        else:
            closer = d2 < best
            best = torch.where(closer, d2, best)
            best_edge = torch.where(closer, k, best_edge)
            best_t = torch.where(closer, t, best_t)
    area = (xs[1] - xs[0]) * (ys[2] - ys[0]) - (ys[1] - ys[0]) * (xs[2] - xs[0])  # twice the signed area
    left = (sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)
    right = (sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0)
    inside = (area != 0) & torch.where(area > 0, left, right)
    return best, best_edge, best_t, inside


def edge_distance2(p: Tensor, tri: Tensor, edge: Tensor, t: Tensor, index: Tensor | None = None) -> Tensor:
    """``(P,)`` squared distance from ``p`` ``(P, 2)`` to the point at ``t`` along edge ``edge`` of ``tri``
    (``(P, 3, 2)``, or ``(T, 3, 2)`` with ``index`` ``(P,)`` picking each pair's triangle), differentiable
    in ``tri`` and ``p``.

    With ``(edge, t)`` from ``closest_boundary_points`` this is the squared distance to the triangle's
    boundary, and its gradient is exact: the closest point's parameter is stationary (or clamped) at the
    minimum, so holding it fixed changes no first derivative (the envelope theorem); the choice of edge
    is piecewise constant, as in ``min``."""
    first = 3 * (torch.arange(p.shape[0], device=tri.device) if index is None else index)
    corners = tri.reshape(-1, 2)
    a = gather_rows(corners, first + edge)
    b = gather_rows(corners, first + (edge + 1) % 3)
    diff = p - torch.lerp(a, b, t[:, None])
    return (diff * diff).sum(-1)


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
    _, edge, t, inside = closest_boundary_points(p, tri)
    return edge_distance2(p, tri, edge, t), inside


def pairs_near(
    tris: Tensor,
    owner: Tensor,
    camera: Tensor,
    image_size: tuple[int, int],
    radius: float | Tensor,
    max_pairs: int,
    skip: Tensor | None = None,
) -> NearPairs:
    """Pixels inside each screen triangle or within ``radius`` pixels of it (no autograd).

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
        The kept pairs (``NearPairs``). Each (pixel, face instance) appears once: when near-plane clipping
        split a face into two triangles, the pair keeps the piece that contains the pixel, or else the
        nearer piece.
    """
    H, W = image_size
    tris = tris.detach()
    rad = torch.as_tensor(radius, dtype=tris.dtype, device=tris.device).expand(tris.shape[0])
    x0, y0, bw, bh = bounding_boxes(tris, H, W, pad=rad)
    counts = bw * bh
    corner_x = [tris[:, k, 0].contiguous() for k in range(3)]
    corner_y = [tris[:, k, 1].contiguous() for k in range(3)]
    parts: list[NearPairs] = []
    scores = []
    with torch.no_grad():
        for c in chunk_slices(counts, max_pairs):
            item, col, row = expand_boxes(counts[c], x0[c], y0[c], bw[c])
            tri = item + c.start
            if skip is not None:
                cam = gather_rows(camera, gather_rows(owner, tri))
                wanted = torch.nonzero(~gather_rows(skip, (cam * H + row) * W + col)).flatten()
                tri, col, row = (gather_rows(t, wanted) for t in (tri, col, row))
            px, py = col.to(tris.dtype) + 0.5, row.to(tris.dtype) + 0.5
            d2, edge, t, inside = _closest(
                px, py, [gather_rows(c, tri) for c in corner_x], [gather_rows(c, tri) for c in corner_y]
            )
            r = gather_rows(rad, tri)
            keep = torch.nonzero(inside | (d2 <= r * r)).flatten()
            tri, edge, t, inside, d2 = (gather_rows(x, keep) for x in (tri, edge, t, inside, d2))
            cam = gather_rows(camera, gather_rows(owner, tri))
            pixel = (cam * H + gather_rows(row, keep)) * W + gather_rows(col, keep)
            parts.append(NearPairs(pixel, tri, edge, t, inside))
            scores.append(torch.where(inside, torch.inf, -d2))
    if not parts:
        empty = torch.zeros(0, dtype=torch.int64, device=tris.device)
        return NearPairs(empty, empty, empty, tris.new_zeros(0), empty.bool())
    pairs = NearPairs(*(torch.cat(field) for field in zip(*parts, strict=True)))
    if torch.unique(owner).numel() < owner.numel():  # some face was split by the near plane
        best = best_piece(pairs.pixel, pairs.tri, torch.cat(scores), owner)
        pairs = NearPairs(*(gather_rows(field, best) for field in pairs))
    return pairs


def best_piece(pixel: Tensor, tri: Tensor, score: Tensor, owner: Tensor) -> Tensor:
    """Indices of one pair per (pixel, owner): the one with the highest score."""
    key = pixel * (int(owner.max()) + 1) + gather_rows(owner, tri)
    order = torch.argsort(-score, stable=True)
    order = order[torch.argsort(gather_rows(key, order), stable=True)]
    sorted_key = gather_rows(key, order)
    first = torch.ones_like(sorted_key, dtype=torch.bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    return gather_rows(order, torch.nonzero(first).flatten())
