"""Packed batches of point clouds.

A ``PointClouds`` of ``N`` clouds stores all points concatenated: cloud ``n`` owns
``points[offsets[n]:offsets[n+1]]``, and every per-point attribute has the same first dimension.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace

import torch
from torch import Tensor

from .checks import check_same_device, check_tensor
from .packing import item_index, normalize_items, offsets_from_sizes, select_items, sizes_from_offsets


@dataclass(frozen=True, eq=False)
class PointClouds:
    """A packed batch of point clouds.

    Attributes:
        points: ``(P, 3)`` float positions of all clouds, packed.
        offsets: ``(N + 1,)`` int64; cloud ``n`` owns rows ``offsets[n]:offsets[n+1]``.
        colors: ``(P, C)`` per-point colours, or None.
        normals: ``(P, 3)`` per-point normals, or None.
        radii: ``(P,)`` per-point world-space radii (positive), or None.
        features: named ``(P, D)`` per-point features.
    """

    points: Tensor
    offsets: Tensor
    colors: Tensor | None = None
    normals: Tensor | None = None
    radii: Tensor | None = None
    features: Mapping[str, Tensor] = field(default_factory=dict)
    validate: bool = True

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        check_tensor(self.points, "points", ("P", 3), sizes=sizes)
        check_tensor(self.offsets, "offsets", (None,), dtype=torch.int64)
        if self.colors is not None:
            check_tensor(self.colors, "colors", ("P", None), sizes=sizes)
        if self.normals is not None:
            check_tensor(self.normals, "normals", ("P", 3), sizes=sizes)
        if self.radii is not None:
            check_tensor(self.radii, "radii", ("P",), sizes=sizes)
        for k, v in self.features.items():
            check_tensor(v, f"features[{k!r}]", ("P", None), dtype=None, sizes=sizes)
        check_same_device(
            points=self.points,
            offsets=self.offsets,
            colors=self.colors,
            normals=self.normals,
            radii=self.radii,
            **{f"features[{k!r}]": v for k, v in self.features.items()},
        )
        if self.offsets.shape[0] < 1:
            raise ValueError("offsets must have shape (N + 1,) with N >= 0, got an empty tensor")
        if self.validate:
            off, total = self.offsets, self.points.shape[0]
            if int(off[0]) != 0 or bool((off[1:] < off[:-1]).any()) or int(off[-1]) != total:
                raise ValueError(
                    f"offsets must start at 0, never decrease and end at {total}, got {off.tolist()}"
                )
            if not bool(torch.isfinite(self.points).all()):
                raise ValueError("points contains NaN or infinite values")
            if self.radii is not None and not bool((self.radii > 0).all()):
                raise ValueError("radii must be positive")

    @staticmethod
    def from_list(
        points: Sequence[Tensor],
        *,
        colors: Sequence[Tensor] | None = None,
        normals: Sequence[Tensor] | None = None,
        radii: Sequence[Tensor] | None = None,
        features: Mapping[str, Sequence[Tensor]] | None = None,
    ) -> PointClouds:
        """Pack per-cloud tensors: ``points[n]`` is ``(P_n, 3)``; each optional list has one entry per
        cloud with the matching first dimension."""
        n = len(points)
        for name, seq in (("colors", colors), ("normals", normals), ("radii", radii)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} must have one entry per point cloud ({n}), got {len(seq)}")
        for i, p in enumerate(points):
            check_tensor(p, f"points[{i}]", (None, 3))
        device = points[0].device if n else torch.device("cpu")

        def cat(seq: Sequence[Tensor] | None) -> Tensor | None:
            return None if seq is None else torch.cat(list(seq))

        return PointClouds(
            points=torch.cat(list(points)) if n else torch.zeros(0, 3, device=device),
            offsets=offsets_from_sizes([p.shape[0] for p in points], device),
            colors=cat(colors),
            normals=cat(normals),
            radii=cat(radii),
            features={k: torch.cat(list(v)) for k, v in (features or {}).items()},
        )

    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def device(self) -> torch.device:
        return self.points.device

    @property
    def dtype(self) -> torch.dtype:
        return self.points.dtype

    @property
    def num_points_per_cloud(self) -> list[int]:
        return sizes_from_offsets(self.offsets)

    @property
    def point_to_cloud(self) -> Tensor:
        """``(P,)`` int64: ``point_to_cloud[p] = n`` when point ``p`` belongs to cloud ``n``."""
        return item_index(self.offsets)

    def points_list(self) -> list[Tensor]:
        """Per-cloud ``(P_n, 3)`` positions (views into ``points``)."""
        return list(torch.split(self.points, self.num_points_per_cloud))

    def with_points(self, points: Tensor) -> PointClouds:
        """Same clouds and attributes with new ``(P, 3)`` positions (keeps autograd)."""
        check_tensor(points, "points", tuple(self.points.shape))
        return dc_replace(self, points=points, validate=False)

    def _map(self, f: Callable[[Tensor], Tensor]) -> PointClouds:
        """Apply ``f`` to every per-point tensor (not to ``offsets``)."""

        def opt(t: Tensor | None) -> Tensor | None:
            return None if t is None else f(t)

        return PointClouds(
            points=f(self.points),
            offsets=self.offsets,
            colors=opt(self.colors),
            normals=opt(self.normals),
            radii=opt(self.radii),
            features={k: f(v) for k, v in self.features.items()},
            validate=False,
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PointClouds:
        """Move every tensor to ``device`` and cast float tensors to ``dtype``."""
        moved = self._map(lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() else None))
        return dc_replace(moved, offsets=self.offsets.to(device), validate=False)

    def detach(self) -> PointClouds:
        """A copy whose tensors do not require gradients."""
        return self._map(lambda t: t.detach())

    def __getitem__(self, items: int | slice | Sequence[int] | Tensor) -> PointClouds:
        """The clouds at the given batch indices, as a new packed batch (keeps autograd)."""
        idx = normalize_items(items, len(self), "PointClouds")
        rows, offsets = select_items(self.offsets, idx)
        sub = self._map(lambda t: t[rows])
        return dc_replace(sub, offsets=offsets, validate=False)

    def split(self) -> list[PointClouds]:
        """One single-cloud ``PointClouds`` per item."""
        return [self[i] for i in range(len(self))]

    @staticmethod
    def join(clouds: Sequence[PointClouds]) -> PointClouds:
        """Concatenate several batches into one, keeping their order; optional attributes must be
        present in all or none."""
        if not clouds:
            raise ValueError("clouds must contain at least one PointClouds to join")
        for name in ("colors", "normals", "radii"):
            present = [getattr(c, name) is not None for c in clouds]
            if any(present) and not all(present):
                raise ValueError(f"cannot join point clouds where only some have {name}")
        keys = set(clouds[0].features)
        if any(set(c.features) != keys for c in clouds):
            raise ValueError("cannot join point clouds with different feature names")
        sizes = [s for c in clouds for s in c.num_points_per_cloud]

        def cat(name: str) -> Tensor | None:
            parts = [getattr(c, name) for c in clouds]
            return None if parts[0] is None else torch.cat(parts)

        return PointClouds(
            points=torch.cat([c.points for c in clouds]),
            offsets=offsets_from_sizes(sizes, clouds[0].device),
            colors=cat("colors"),
            normals=cat("normals"),
            radii=cat("radii"),
            features={k: torch.cat([c.features[k] for c in clouds]) for k in keys},
            validate=False,
        )
