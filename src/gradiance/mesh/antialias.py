"""``antialias``: analytic antialiasing of silhouette edges, which gives vertex positions visibility
gradients (Laine et al. 2020, "Modular Primitives for High-Performance Differentiable Rendering", Sec. 3.4).

For every pair of horizontally or vertically adjacent pixels whose nearest faces differ, the nearer face
``f`` (at pixel ``A``) is the potential occluder. If the segment from ``A``'s centre to the neighbour
``B``'s centre crosses a *silhouette* edge of ``f`` (an edge with no other face, or whose other face
faces the other way; the crossing nearest to ``A`` counts) at ``t`` in [0, 1] (0 at ``A``, 1 at ``B``),
the pixel on whose half the crossing lies is blended by the covered fraction:

- ``t > 1/2``: ``f`` overhangs into ``B``: ``B <- B + (t - 1/2) (A - B)``;
- ``t < 1/2``: ``f`` does not reach ``A``'s edge: ``A <- A + (1/2 - t) (B - A)``.

Each edge is handled by the pair direction more perpendicular to it (horizontal neighbours for edges
within 45 degrees of vertical, vertical neighbours for the others; exactly 45 degrees goes to horizontal
neighbours), as in the paper's implementation: a slanted edge is crossed by both kinds of pair, and
blending it in both doubled its coverage change and its gradient.

The result is a continuous function of the edge's screen position, so its derivative with respect to the
vertices (through ``t``) is the visibility gradient that the hard render lacks. Edges with a corner behind
the near plane are skipped (no blend, no gradient).

Limitation (as in the paper): only the silhouette edges of the face that covers ``A``'s centre are
searched. When triangles are smaller than a pixel, the silhouette edge between two pixel centres usually
belongs to a face that covers no centre, and the pair gets no blend and no gradient: on Spot at 32x32
pixels antialiasing changes the gradient at 3 pixels only (``gradiance eval gradients --quick``). Use it
where triangles span several pixels, or a soft renderer otherwise.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..core.checks import check_tensor
from ..core.meshes import Meshes
from ..core.packing import gather_rows
from .rasterize import Fragments


def edge_neighbors(meshes: Meshes) -> Tensor:
    """``(F, 3)`` int64: the face across the edge opposite corner ``k`` of each face (from corner ``k+1``
    to ``k+2``), -1 on a boundary edge, -2 on a non-manifold edge (three or more faces). Depends only on
    the topology: compute it once per mesh and pass it to ``antialias``."""
    _, face_edges = meshes.edges()
    F = face_edges.shape[0]
    if F == 0:
        return face_edges
    flat = face_edges.reshape(-1)  # slot 3 f + k holds the edge opposite corner k of face f
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat)
    run_start = (torch.cumsum(counts, 0) - counts)[flat[order]]
    pos = torch.arange(flat.numel(), device=flat.device)
    partner = torch.where(pos == run_start, run_start + 1, run_start).clamp_max(flat.numel() - 1)
    other = torch.empty_like(flat)
    other[order] = order[partner] // 3
    cnt = counts[flat]
    other = torch.where(cnt == 1, torch.full_like(other, -1), other)
    other = torch.where(cnt > 2, torch.full_like(other, -2), other)
    return other.reshape(F, 3)


_NEIGHBOR_CACHE: dict[int, tuple[weakref.ref[Tensor], Tensor]] = {}


def cached_edge_neighbors(meshes: Meshes) -> Tensor:
    """``edge_neighbors(meshes)``, computed once per faces tensor: meshes made by ``with_verts`` share their
    faces, so an optimisation loop pays for the topology once. Entries go when the faces tensor does."""
    key = id(meshes.faces)
    hit = _NEIGHBOR_CACHE.get(key)
    if hit is not None and hit[0]() is meshes.faces:
        return hit[1]
    nb = edge_neighbors(meshes)
    _NEIGHBOR_CACHE[key] = (weakref.ref(meshes.faces), nb)
    weakref.finalize(meshes.faces, _NEIGHBOR_CACHE.pop, key, None)
    return nb


def antialias(
    color: Tensor,
    fragments: Fragments,
    meshes: Meshes,
    cameras: Cameras,
    *,
    neighbors: Tensor | None = None,
) -> Tensor:
    """Blend colours across silhouette edges by their analytic coverage.

    Args:
        color: ``(B, H, W, C)`` image rendered from ``fragments`` (shaded colour, mask, any feature).
        fragments: ``rasterize(meshes, cameras)`` output; only the nearest layer is used.
        meshes, cameras: the scene that was rasterised (vertex positions and cameras receive gradients).
        neighbors: ``edge_neighbors(meshes)``, computed here when None.

    Returns:
        ``(B, H, W, C)`` antialiased image, differentiable with respect to ``color``, the vertex positions
        and the camera parameters.
    """
    B, H, W, _ = fragments.face_id.shape
    check_tensor(color, "color", (B, H, W, None), device=meshes.device)
    nb = edge_neighbors(meshes) if neighbors is None else neighbors
    check_tensor(nb, "neighbors", (meshes.faces.shape[0], 3), dtype=torch.int64, device=meshes.device)
    face = fragments.face_id[..., 0]
    depth = torch.where(
        face >= 0, fragments.depth[..., 0].detach(), torch.full_like(fragments.depth[..., 0], torch.inf)
    )
    out = color
    for axis in (1, 2):  # pairs along rows (vertical neighbours) and along columns (horizontal ones)
        out = out + _blend_pairs(color, face, depth, axis, meshes, cameras, nb)
    return out


def _blend_pairs(
    color: Tensor, face: Tensor, depth: Tensor, axis: int, meshes: Meshes, cameras: Cameras, nb: Tensor
) -> Tensor:
    """Colour changes from the pixel pairs along ``axis`` (1: (i, j)-(i+1, j), 2: (i, j)-(i, j+1))."""
    B, H, W, C = color.shape
    n = H if axis == 1 else W
    f0, f1 = face.narrow(axis, 0, n - 1), face.narrow(axis, 1, n - 1)
    d0, d1 = depth.narrow(axis, 0, n - 1), depth.narrow(axis, 1, n - 1)
    b, i, j = torch.nonzero(f0 != f1, as_tuple=True)
    first_front = d0[b, i, j] <= d1[b, i, j]  # few pairs: plain indexing is fine here
    step = torch.tensor([1, 0] if axis == 1 else [0, 1], device=face.device)
    # A is the pixel whose face is nearer, B its neighbour
    ai = torch.where(first_front, i, i + step[0])
    aj = torch.where(first_front, j, j + step[1])
    bi = torch.where(first_front, i + step[0], i)
    bj = torch.where(first_front, j + step[1], j)
    f = face[b, ai, aj]
    t, valid = _crossing(meshes, cameras, b, f, ai, aj, bi, bj, nb)
    keep = torch.nonzero(valid).flatten()
    b, ai, aj, bi, bj, t = (gather_rows(x, keep) for x in (b, ai, aj, bi, bj, t))
    rows = color.reshape(B * H * W, C)
    ca, cb = gather_rows(rows, (b * H + ai) * W + aj), gather_rows(rows, (b * H + bi) * W + bj)
    over = (t > 0.5)[:, None]
    delta_b = torch.where(over, (t - 0.5)[:, None] * (ca - cb), torch.zeros_like(ca))
    delta_a = torch.where(over, torch.zeros_like(ca), (0.5 - t)[:, None] * (cb - ca))
    flat = torch.zeros(B * H * W, C, dtype=color.dtype, device=color.device)
    flat = flat.index_add(0, (b * H + bi) * W + bj, delta_b).index_add(0, (b * H + ai) * W + aj, delta_a)
    return flat.reshape(B, H, W, C)


def _crossing(
    meshes: Meshes,
    cameras: Cameras,
    b: Tensor,
    f: Tensor,
    ai: Tensor,
    aj: Tensor,
    bi: Tensor,
    bj: Tensor,
    nb: Tensor,
) -> tuple[Tensor, Tensor]:
    """Where the segment from A's centre to B's centre leaves face ``f`` (seen by camera ``b``) through a
    silhouette edge: ``(t, valid)`` with ``t`` differentiable in the vertices and cameras."""
    corners = gather_rows(meshes.verts, gather_rows(meshes.faces, f))  # (P, 3, 3)
    cam = (corners @ gather_rows(cameras.R, b).transpose(1, 2)) + gather_rows(cameras.t, b)[:, None]
    z = cam[..., 2]
    fl, pp = gather_rows(cameras.focal_t, b)[:, None], gather_rows(cameras.principal_t, b)[:, None]
    if cameras.projection == "perspective":
        safe_z = torch.where(z > 0, z, torch.ones_like(z))
        scr = cam[..., :2] / safe_z[..., None] * fl + pp
    else:
        scr = cam[..., :2] * fl + pp
    a = torch.stack([aj, ai], -1).to(scr.dtype) + 0.5
    d = torch.stack([bj - aj, bi - ai], -1).to(scr.dtype)
    p0, p1 = scr[:, [1, 2, 0]], scr[:, [2, 0, 1]]  # edge k runs from corner k+1 to k+2
    e = p1 - p0
    denom = d[:, None, 0] * e[..., 1] - d[:, None, 1] * e[..., 0]
    rel = p0 - a[:, None]
    t_all = (rel[..., 0] * e[..., 1] - rel[..., 1] * e[..., 0]) / torch.where(
        denom == 0, torch.ones_like(denom), denom
    )
    s_all = (rel[..., 0] * d[:, None, 1] - rel[..., 1] * d[:, None, 0]) / torch.where(
        denom == 0, torch.ones_like(denom), denom
    )
    near = gather_rows(cameras.near_t, b)[:, None]
    # each edge belongs to the pair direction more perpendicular to it (at least 45 degrees), so that an
    # edge crossed by both row and column pairs is blended once, as in the paper's implementation
    along = (d[:, None, 0] * e[..., 0] + d[:, None, 1] * e[..., 1]).detach().abs()
    across = denom.detach().abs()
    steep = torch.where(d[:, None, 0] != 0, across >= along, across > along)  # 45 degrees: horizontal
    edge_ok = (z[:, [1, 2, 0]] >= near) & (z[:, [2, 0, 1]] >= near) & (denom != 0) & steep
    td, sd = t_all.detach(), s_all.detach()
    hit = (
        edge_ok & (td >= 0) & (td <= 1) & (sd >= 0) & (sd <= 1) & _silhouette_edges(meshes, cameras, b, f, nb)
    )
    t_masked = torch.where(hit, td, torch.full_like(td, torch.inf))
    k = t_masked.argmin(1)
    valid = torch.isfinite(t_masked.min(1).values)
    t = t_all.gather(1, k[:, None])[:, 0]
    return t, valid


def _silhouette_edges(meshes: Meshes, cameras: Cameras, b: Tensor, f: Tensor, nb: Tensor) -> Tensor:
    """``(P, 3)``: whether each edge of face ``f`` is a silhouette edge for camera ``b``: it has no other
    face (or is non-manifold), or the other face faces the camera the other way."""
    other = gather_rows(nb, f)  # (P, 3)
    with torch.no_grad():
        facing_f = _faces_camera(meshes, cameras, b, f)[:, None]
        b3 = b[:, None].expand(-1, 3).reshape(-1)
        facing_o = _faces_camera(meshes, cameras, b3, other.clamp_min(0).reshape(-1)).reshape(-1, 3)
    return (other < 0) | (facing_f != facing_o)


def _faces_camera(meshes: Meshes, cameras: Cameras, b: Tensor, f: Tensor) -> Tensor:
    """Whether face ``f``'s right-hand-rule normal points towards camera ``b`` (front-facing)."""
    v = gather_rows(meshes.verts.detach(), gather_rows(meshes.faces, f))
    normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    if cameras.projection == "perspective":
        view = v[:, 0] - gather_rows(cameras.camera_centers().detach(), b)
    else:
        view = gather_rows(cameras.R.detach()[:, 2], b)
    return (normal * view).sum(-1) < 0
