"""Dense voxel grids placed in the world by axis-aligned boxes.

A grid of ``X x Y x Z`` voxels over the box ``[lo, hi]`` has voxels of size ``h = (hi - lo) / (X, Y, Z)``;
``densities[n, i, j, k]`` belongs to the voxel ``[lo + (i, j, k) h, lo + (i + 1, j + 1, k + 1) h]`` centred
at ``lo + (i + 1/2, j + 1/2, k + 1/2) h`` (world axes in index order, as ``gradiance.eval.voxels``).

The continuous field a grid stands for (``Volumes.sample``) interpolates trilinearly between voxel centres,
is constant from the outermost centres out to the box's faces, and is zero outside the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_tensor


@dataclass(frozen=True, eq=False)
class Volumes:
    """A batch of ``N`` voxel grids of one resolution (module docstring).

    Attributes:
        densities: ``(N, X, Y, Z)`` non-negative values per voxel: a density (extinction coefficient per
            world unit) for emission-absorption and absorption, an occupancy probability in ``[0, 1]`` for
            maximum-intensity and ray-termination aggregation (``gradiance.core.raymarch``).
        features: ``(N, X, Y, Z, C)`` colours or other features per voxel, or None.
        lo, hi: ``(N, 3)`` box corners (``(3,)`` broadcasts), ``hi > lo`` on every axis.

    Raises ``ValueError`` for a grid without voxels along an axis, an empty box, negative or non-finite
    densities (map free parameters through ``softplus`` or ``relu`` first) and mismatched shapes.
    """

    densities: Tensor
    features: Tensor | None = None
    lo: Tensor | tuple[float, float, float] = (-1.0, -1.0, -1.0)
    hi: Tensor | tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        d = check_tensor(self.densities, "densities", (None, "X", "Y", "Z"))
        if d.numel() == 0 or min(d.shape) == 0:
            raise ValueError(
                f"densities must have at least one grid and one voxel per axis, got {tuple(d.shape)}"
            )
        if not bool(torch.isfinite(d).all()) or bool((d < 0).any()):
            raise ValueError(
                "densities must be finite and >= 0 (map free parameters through softplus or relu first)"
            )
        if self.features is not None:
            f = check_tensor(self.features, "features", (d.shape[0], *d.shape[1:], None), device=d.device)
            if f.dtype != d.dtype:
                raise TypeError(f"features must have the dtype of densities ({d.dtype}), got {f.dtype}")
        for name in ("lo", "hi"):
            v = getattr(self, name)
            v = torch.as_tensor(v, dtype=d.dtype, device=d.device) if not isinstance(v, Tensor) else v
            check_tensor(v, name, None, device=d.device)
            if v.shape not in ((3,), (d.shape[0], 3)):
                raise ValueError(f"{name} must have shape (3,) or ({d.shape[0]}, 3), got {tuple(v.shape)}")
            object.__setattr__(self, name, v.to(d.dtype).expand(d.shape[0], 3))
        if not bool((self.hi_t > self.lo_t).all()) or not bool(torch.isfinite(self.hi_t - self.lo_t).all()):
            raise ValueError(
                "the box must be finite with hi > lo on every axis (a zero-length grid has no voxels)"
            )

    @property
    def lo_t(self) -> Tensor:
        return self.lo  # type: ignore[return-value]

    @property
    def hi_t(self) -> Tensor:
        return self.hi  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.densities.shape[0])

    @property
    def resolution(self) -> tuple[int, int, int]:
        """``(X, Y, Z)`` voxels per axis."""
        X, Y, Z = self.densities.shape[1:]
        return int(X), int(Y), int(Z)

    @property
    def voxel_size(self) -> Tensor:
        """``(N, 3)`` voxel edge lengths."""
        return (self.hi_t - self.lo_t) / torch.tensor(
            self.resolution, dtype=self.lo_t.dtype, device=self.lo_t.device
        )

    @property
    def num_features(self) -> int:
        return 0 if self.features is None else int(self.features.shape[-1])

    def sample(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """The continuous field at world points (module docstring).

        Args:
            points: ``(N, P, 3)`` points per grid.

        Returns:
            ``(density, features)``: ``(N, P)`` and ``(N, P, C)`` (``C = 0`` without features);
            differentiable in the grid values, the points and the box.
        """
        check_tensor(
            points, "points", (len(self), None, 3), dtype=self.densities.dtype, device=self.densities.device
        )
        grid = self.densities[..., None]
        if self.features is not None:
            grid = torch.cat([grid, self.features], -1)
        # grid_sample reads (N, C, D, H, W), the last coordinate indexing W: (x, y, z) -> (X, Y, Z)
        vol = grid.permute(0, 4, 3, 2, 1)
        lo, hi = self.lo_t[:, None], self.hi_t[:, None]
        g = 2 * (points - lo) / (hi - lo) - 1
        values = torch.nn.functional.grid_sample(
            vol, g[:, :, None, None], mode="bilinear", padding_mode="border", align_corners=False
        )
        values = values[:, :, :, 0, 0].transpose(1, 2)  # (N, P, 1 + C)
        inside = (g.abs() <= 1).all(-1, keepdim=True)
        values = values * inside
        return values[..., 0], values[..., 1:]

    def voxel_values(self, grid: Tensor, voxels: Tensor) -> tuple[Tensor, Tensor]:
        """Values of given voxels without interpolation.

        Args:
            grid: ``(P,)`` int64 grid index of each query.
            voxels: ``(P, 3)`` int64 ``(i, j, k)`` inside the resolution.

        Returns:
            ``(density, features)``: ``(P,)`` and ``(P, C)``.
        """
        i, j, k = voxels.unbind(-1)
        dens = self.densities[grid, i, j, k]
        if self.features is None:
            return dens, dens.new_zeros(dens.shape[0], 0)
        return dens, self.features[grid, i, j, k]
