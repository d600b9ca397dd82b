"""Voxel grids for evaluation: solid voxelisation of closed meshes, the visual hull of silhouettes, and IoU.

A grid of resolution ``R`` over the cube ``[lo, hi]^3`` has cells of size ``h = (hi - lo) / R``;
``grid[i, j, k]`` is the cell centred at ``(x_i, y_j, z_k)`` with ``x_n = y_n = z_n = lo + (n + 1/2) h``
(world axes in index order).

``voxelize`` marks a cell occupied when its centre lies inside the mesh, decided by the winding number
along a ray parallel to +z through the cell's column: every crossing above the centre counts +1 where the
crossed face's outward normal points up and -1 where it points down. That is the winding number of the
centre for any closed, consistently oriented mesh, so unions of overlapping closed parts (composed
primitives) and mildly self-intersecting predictions are handled; cells with a count of at least one are
occupied. The column rays are shifted by a hundredth of a cell in x and y so that they do not run along
the edges of axis-aligned tessellations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..backends.torch.rasterize import chunk_slices, expand_boxes
from ..core.cameras import Cameras
from ..core.meshes import Meshes

_RAY_SHIFT = (0.0113, 0.0071)  # of a cell: keeps column rays off grid-aligned edges and vertices


def _check_grid(resolution: int, lo: float, hi: float) -> None:
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    if not hi > lo:
        raise ValueError(f"hi must be greater than lo, got lo={lo}, hi={hi}")


def voxel_centres(
    resolution: int, lo: float = -0.5, hi: float = 0.5, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``(R, R, R, 3)`` centres: ``centres[i, j, k] = (x_i, y_j, z_k)`` (module docstring)."""
    _check_grid(resolution, lo, hi)
    c = lo + (torch.arange(resolution, dtype=torch.float64) + 0.5) * (hi - lo) / resolution
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).to(dtype)


def voxelize(
    meshes: Meshes, resolution: int = 32, lo: float = -0.5, hi: float = 0.5, max_pairs: int = 4_000_000
) -> Tensor:
    """``(N, R, R, R)`` bool occupancy of each closed mesh of ``meshes`` (module docstring); parts outside
    ``[lo, hi]^3`` are simply not represented. Candidate face-column pairs are processed in chunks of at
    most ``max_pairs``."""
    _check_grid(resolution, lo, hi)
    if not isinstance(meshes, Meshes):
        raise TypeError(f"meshes must be a gradiance Meshes, got {type(meshes).__name__}")
    R, h = resolution, (hi - lo) / resolution
    out = []
    for mesh in meshes.split():
        fv = (mesh.face_verts().detach().double() - lo) / h - 0.5  # in cell units: centre n sits at n
        fv[..., 0] -= _RAY_SHIFT[0]
        fv[..., 1] -= _RAY_SHIFT[1]
        out.append(_winding_columns(fv, R, max_pairs) > 0)
    if not out:
        return torch.zeros(0, R, R, R, dtype=torch.bool, device=meshes.verts.device)
    return torch.stack(out).to(meshes.verts.device)


def _winding_columns(fv: Tensor, R: int, max_pairs: int) -> Tensor:
    """``(R, R, R)`` winding counts at the cell centres of faces ``fv`` ``(F, 3, 3)`` given in cell units
    (the centre of cell ``n`` at coordinate ``n``; rays at integer x, y)."""
    x, y = fv[..., 0], fv[..., 1]
    i0 = x.amin(1).ceil().clamp(0, R).long()
    i1 = x.amax(1).floor().clamp(-1, R - 1).long()
    j0 = y.amin(1).ceil().clamp(0, R).long()
    j1 = y.amax(1).floor().clamp(-1, R - 1).long()
    ni, nj = (i1 - i0 + 1).clamp_min(0), (j1 - j0 + 1).clamp_min(0)
    count = ni * nj
    diff = fv.new_zeros(R * R * (R + 1))
    for part in chunk_slices(
        count, max_pairs, "voxelize's max_pairs", "face"
    ):  # chunks of faces whose candidate columns fit the budget
        face, j, i = expand_boxes(count[part], j0[part], i0[part], nj[part])
        _add_crossings(fv[part][face], i, j, diff, R)
    # winding at centre k = sum of the signs of the crossings above it, i.e. stored at indices > k
    d = diff.reshape(R, R, R + 1)
    above = d.flip(-1).cumsum(-1).flip(-1)
    return above[..., 1:].round().long()


def _add_crossings(tri: Tensor, i: Tensor, j: Tensor, diff: Tensor, R: int) -> None:
    """Add the signed crossings of column rays ``(i, j)`` by faces ``tri`` ``(P, 3, 3)`` (one per ray) to
    ``diff`` at the first cell above each crossing."""
    if tri.shape[0] == 0:
        return
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    px, py = i.double(), j.double()
    # 2D edge functions of the ray point against the projected triangle
    w0 = (b[:, 0] - px) * (c[:, 1] - py) - (c[:, 0] - px) * (b[:, 1] - py)
    w1 = (c[:, 0] - px) * (a[:, 1] - py) - (a[:, 0] - px) * (c[:, 1] - py)
    w2 = (a[:, 0] - px) * (b[:, 1] - py) - (b[:, 0] - px) * (a[:, 1] - py)
    area = w0 + w1 + w2  # twice the signed projected area: > 0 where the face's normal points to +z
    hit = ((w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (area > 0)) | ((w0 <= 0) & (w1 <= 0) & (w2 <= 0) & (area < 0))
    if not bool(hit.any()):
        return
    w0, w1, w2, area = w0[hit], w1[hit], w2[hit], area[hit]
    z = (w0 * a[hit, 2] + w1 * b[hit, 2] + w2 * c[hit, 2]) / area
    above = z.ceil().clamp(0, R).long()  # the number of centres strictly below the crossing
    sign = torch.sign(area)
    index = (i[hit] * R + j[hit]) * (R + 1) + above
    diff.index_add_(0, index, sign)


def visual_hull(
    alpha: Tensor,
    cameras: Cameras,
    resolution: int = 32,
    lo: float = -0.5,
    hi: float = 0.5,
    threshold: float = 0.5,
) -> Tensor:
    """``(R, R, R)`` bool: the cells whose centre projects inside every silhouette ``alpha``
    ``(B, H, W, 1)`` (``> threshold`` at the pixel it falls in) seen by ``cameras`` (``B`` views); a centre
    outside an image is carved."""
    B, (H, W) = len(cameras), cameras.image_size
    if alpha.shape != (B, H, W, 1):
        raise ValueError(f"alpha must have shape {(B, H, W, 1)}, got {tuple(alpha.shape)}")
    pts = (
        voxel_centres(resolution, lo, hi, cameras.dtype)
        .to(cameras.device)
        .reshape(1, -1, 3)
        .expand(B, -1, -1)
    )
    uv, depth = cameras.project(pts)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    ok = (depth > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    flat = (row.clamp(0, H - 1) * W + col.clamp(0, W - 1)) + torch.arange(B, device=row.device)[
        :, None
    ] * H * W
    inside = ok & (alpha.reshape(-1)[flat] > threshold)
    return inside.all(0).reshape(resolution, resolution, resolution)


def voxel_iou(a: Tensor, b: Tensor) -> Tensor:
    """``(N,)`` intersection over union of bool grids ``a`` and ``b`` ``(N, R, R, R)`` (1 where both are
    empty)."""
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(
            f"a and b must be (N, R, R, R) grids of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a, b = a.bool(), b.bool()
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def fill_enclosed(occupied: Tensor) -> Tensor:
    """``(X, Y, Z)`` bool: ``occupied`` with every empty cell that no 6-connected path of empty cells links
    to the grid's border filled in (the cavities a picture can never see into; scipy's
    ``binary_fill_holes``)."""
    if occupied.dim() != 3:
        raise ValueError(f"occupied must be an (X, Y, Z) grid, got {tuple(occupied.shape)}")
    from scipy.ndimage import binary_fill_holes

    filled = binary_fill_holes(occupied.detach().bool().cpu().numpy())
    return torch.from_numpy(filled).to(occupied.device)
