"""Exact voxel traversal: every voxel a ray passes through, with the length of the ray inside it.

The result is that of the incremental stepper of Amanatides and Woo (1987), computed without a loop over
steps: the ray's parameters at every grid plane it crosses between entering and leaving the box are
gathered (at most ``X + Y + Z - 3`` interior planes), sorted, and each pair of consecutive crossings is
one segment. A segment's voxel is the one containing its midpoint. Crossings that coincide (the ray passes
through a grid edge or corner) give zero-length segments, which are dropped: a ray that grazes an edge
visits only the voxels it has positive length in. Rays parallel to grid planes cross no plane of that
axis. Segment ends are differentiable functions of the ray and the box; the voxel indices are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.rays import RaySamples, ray_box_intersect


@dataclass(frozen=True)
class VoxelSegments:
    """The segments of ``R`` rays through one grid, front to back, padded to ``S`` per ray.

    Attributes:
        samples: ``RaySamples`` with ``t_start``/``t_end`` the segment ends and ``t`` their midpoints;
            padding has zero length.
        voxels: ``(R, S, 3)`` int64 ``(i, j, k)`` of each segment's voxel (``(0, 0, 0)`` for padding).
        valid: ``(R, S)`` bool, True for real segments (positive length).
    """

    samples: RaySamples
    voxels: Tensor
    valid: Tensor


def traverse_voxels(
    origins: Tensor,
    directions: Tensor,
    lo: Tensor,
    hi: Tensor,
    resolution: tuple[int, int, int],
    t_min: Tensor,
    t_max: Tensor,
) -> VoxelSegments:
    """The voxels of the grid over ``[lo, hi]`` that each ray crosses for ``t_min <= t <= t_max``.

    Args:
        origins, directions: ``(R, 3)`` rays.
        lo, hi: ``(R, 3)`` the grid box seen by each ray.
        resolution: ``(X, Y, Z)`` voxels per axis.
        t_min, t_max: ``(R,)`` the part of each ray to consider (e.g. the camera's near and far range).
    """
    R = origins.shape[0]
    dev, dt = origins.device, origins.dtype
    size = torch.tensor(resolution, dtype=dt, device=dev)
    h = (hi - lo) / size
    parallel = directions == 0
    safe = torch.where(parallel, torch.ones_like(directions), directions)
    box_enter, box_exit = ray_box_intersect(origins, directions, lo, hi)
    t_enter = torch.maximum(t_min, box_enter)
    t_exit = torch.minimum(t_max, box_exit)
    hit = t_exit > t_enter
    t_enter = torch.where(hit, t_enter, t_min)  # finite parameters for the padding of rays that miss
    inf = torch.tensor(float("inf"), dtype=dt, device=dev)
    crossings = [t_enter[:, None], torch.where(hit, t_exit, inf)[:, None]]
    for axis, n in enumerate(resolution):
        k = torch.arange(1, n, dtype=dt, device=dev)  # interior planes lo + k h
        planes = lo[:, axis, None] + k * h[:, axis, None]
        t = (planes - origins[:, axis, None]) / safe[:, axis, None]
        inside = (t > t_enter[:, None]) & (t < t_exit[:, None]) & ~parallel[:, axis, None] & hit[:, None]
        crossings.append(torch.where(inside, t, inf))
    t_all = torch.cat(crossings, 1)
    t_all, _ = torch.sort(t_all, 1)
    count = int(torch.isfinite(t_all).sum(1).max()) if R else 0
    t_all = t_all[:, : max(count, 2)]
    start, end = t_all[:, :-1], t_all[:, 1:]
    valid = torch.isfinite(end) & (end > start)
    start = torch.where(valid, start, t_enter[:, None].expand_as(start))
    end = torch.where(valid, end, start)
    mid = 0.5 * (start + end)
    p = origins[:, None] + mid[..., None] * directions[:, None]
    cell = torch.floor((p.detach() - lo[:, None].detach()) / h[:, None].detach()).long()
    cell = torch.minimum(cell.clamp_min(0), size.long() - 1)  # rounding at the faces only
    cell = torch.where(valid[..., None], cell, torch.zeros_like(cell))
    # drop the zero-length segments: move the real ones to the front of each row
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)
    keep = int(valid.sum(1).max()) if R else 0
    order = order[:, : max(keep, 1)]
    pick = lambda x: torch.gather(x, 1, order)  # noqa: E731
    start, end, mid, kept = pick(start), pick(end), pick(mid), pick(valid)
    # padding sits at the end of the last real segment, so that t_end[s] <= t_start[s + 1] holds throughout
    last = torch.where(kept, end, torch.full_like(end, -torch.inf)).amax(1, keepdim=True)
    last = torch.where(torch.isfinite(last), last, start[:, :1])
    start, end, mid = (torch.where(kept, x, last.expand_as(x)) for x in (start, end, mid))
    samples = RaySamples(start, end, mid)
    voxels = torch.gather(cell, 1, order[..., None].expand(-1, -1, 3))
    return VoxelSegments(samples, voxels, kept)
