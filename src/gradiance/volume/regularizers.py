"""Priors on voxel grids."""

from __future__ import annotations

from torch import Tensor


def total_variation(grid: Tensor) -> Tensor:
    """Mean squared difference between neighbouring voxels along the three axes of ``grid``
    ``(N, X, Y, Z)`` or ``(N, X, Y, Z, C)``: a squared-gradient (Tikhonov) smoothness prior. Plenoxels
    (Fridovich-Keil et al. 2022, eq. 4) sums the square root of these squared differences per voxel; the
    squared form used here is smooth at zero. A constant grid has 0."""
    if grid.dim() not in (4, 5) or min(grid.shape[1:4]) < 1:
        raise ValueError(f"grid must have shape (N, X, Y, Z) or (N, X, Y, Z, C), got {tuple(grid.shape)}")
    total = grid.new_zeros(())
    for axis in (1, 2, 3):
        if grid.shape[axis] > 1:
            diff = grid.narrow(axis, 1, grid.shape[axis] - 1) - grid.narrow(axis, 0, grid.shape[axis] - 1)
            total = total + (diff**2).mean()
    return total
