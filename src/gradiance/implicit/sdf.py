"""Signed distance functions: analytic primitives, their combinations and rigid transforms.

Every SDF here is an ``nn.Module`` mapping world points ``(N, 3)`` to signed distances ``(N,)``: negative
inside, positive outside, zero on the surface, with ``|grad f| = 1`` wherever the formula is an exact
distance. Parameters (centres, radii, sizes, poses) are ``nn.Parameter``s, so that ray casting with implicit
gradients (``gradiance.implicit.tracing``) differentiates the picture with respect to them. Formulas follow
Inigo Quilez's catalogue of distance functions (iquilezles.org/articles/distfunctions); the combinations
are exact distances for the union, and bounds (never overestimates) for intersection, difference and the
smooth union (Quilez's polynomial smooth minimum), which sphere tracing handles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..core.transforms import axis_angle_to_matrix


def _param(value: Sequence[float] | float | Tensor, size: int | None = None) -> nn.Parameter:
    t = torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()
    if size is not None and t.shape != (size,):
        raise ValueError(f"expected {size} values, got shape {tuple(t.shape)}")
    return nn.Parameter(t)


def _positive(value: float | Tensor, name: str) -> None:
    if not bool((torch.as_tensor(value) > 0).all()):
        raise ValueError(f"{name} must be > 0, got {value}")


class Sphere(nn.Module):
    """``|x - c| - r``."""

    def __init__(self, centre: Sequence[float] = (0.0, 0.0, 0.0), radius: float = 0.5) -> None:
        super().__init__()
        _positive(radius, "radius")
        self.centre, self.radius = _param(centre, 3), _param(radius)

    def forward(self, points: Tensor) -> Tensor:
        return torch.linalg.vector_norm(points - self.centre, dim=-1) - self.radius


class Box(nn.Module):
    """An axis-aligned box of half-extents ``half_size`` about ``centre`` with edges rounded by ``rounding``:
    ``|max(q, 0)| + min(max_k q_k, 0) - rounding`` with ``q = |x - c| - half_size + rounding``."""

    def __init__(
        self,
        centre: Sequence[float] = (0.0, 0.0, 0.0),
        half_size: Sequence[float] = (0.5, 0.5, 0.5),
        rounding: float = 0.0,
    ) -> None:
        super().__init__()
        _positive(torch.as_tensor(half_size), "half_size")
        if not 0 <= rounding < min(half_size):
            raise ValueError(f"rounding must lie in [0, min(half_size)), got {rounding}")
        self.centre, self.half_size, self.rounding = _param(centre, 3), _param(half_size, 3), _param(rounding)

    def forward(self, points: Tensor) -> Tensor:
        q = (points - self.centre).abs() - self.half_size + self.rounding
        outside = torch.linalg.vector_norm(q.clamp_min(0), dim=-1)
        return outside + q.amax(-1).clamp_max(0) - self.rounding


class Torus(nn.Module):
    """A torus about the y axis through ``centre``: ``|(|x_xz| - R, x_y)| - r``."""

    def __init__(
        self, centre: Sequence[float] = (0.0, 0.0, 0.0), major: float = 0.5, minor: float = 0.2
    ) -> None:
        super().__init__()
        _positive(minor, "minor")
        if not major > minor:
            raise ValueError(f"major must exceed minor, got {major} and {minor}")
        self.centre, self.major, self.minor = _param(centre, 3), _param(major), _param(minor)

    def forward(self, points: Tensor) -> Tensor:
        p = points - self.centre
        ring = torch.linalg.vector_norm(p[..., [0, 2]], dim=-1) - self.major
        return torch.linalg.vector_norm(torch.stack([ring, p[..., 1]], -1), dim=-1) - self.minor


class Capsule(nn.Module):
    """The points within ``radius`` of the segment from ``a`` to ``b``."""

    def __init__(
        self, a: Sequence[float] = (0.0, -0.5, 0.0), b: Sequence[float] = (0.0, 0.5, 0.0), radius: float = 0.2
    ) -> None:
        super().__init__()
        _positive(radius, "radius")
        self.a, self.b, self.radius = _param(a, 3), _param(b, 3), _param(radius)

    def forward(self, points: Tensor) -> Tensor:
        pa, ba = points - self.a, self.b - self.a
        h = ((pa * ba).sum(-1) / (ba * ba).sum().clamp_min(1e-12)).clamp(0, 1)
        return torch.linalg.vector_norm(pa - h[..., None] * ba, dim=-1) - self.radius


class Plane(nn.Module):
    """The half-space below the plane ``n . x = offset`` (``n`` normalised): ``n . x - offset``."""

    def __init__(self, normal: Sequence[float] = (0.0, 1.0, 0.0), offset: float = 0.0) -> None:
        super().__init__()
        self.normal, self.offset = _param(normal, 3), _param(offset)
        if not bool(torch.linalg.vector_norm(self.normal.detach()) > 0):
            raise ValueError("normal must not be zero")

    def forward(self, points: Tensor) -> Tensor:
        n = self.normal / torch.linalg.vector_norm(self.normal)
        return points @ n - self.offset


class Union(nn.Module):
    """``min_k f_k``: the union of the parts."""

    def __init__(self, *parts: nn.Module) -> None:
        super().__init__()
        if not parts:
            raise ValueError("a union needs at least one part")
        self.parts = nn.ModuleList(parts)

    def forward(self, points: Tensor) -> Tensor:
        return torch.stack([p(points) for p in self.parts], -1).amin(-1)


class Intersection(Union):
    """``max_k f_k``: the intersection of the parts (a distance bound)."""

    def forward(self, points: Tensor) -> Tensor:
        return torch.stack([p(points) for p in self.parts], -1).amax(-1)


class Difference(nn.Module):
    """``max(f_a, -f_b)``: ``a`` with ``b`` carved out (a distance bound)."""

    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, points: Tensor) -> Tensor:
        return torch.maximum(self.a(points), -self.b(points))


class SmoothUnion(nn.Module):
    """Quilez's polynomial smooth minimum of two SDFs with blend radius ``k`` (``k -> 0`` is the union):
    ``h = clamp(1/2 + (b - a) / (2k), 0, 1)``, ``f = lerp(b, a, h) - k h (1 - h)``."""

    def __init__(self, a: nn.Module, b: nn.Module, k: float = 0.1) -> None:
        super().__init__()
        _positive(k, "k")
        self.a, self.b, self.k = a, b, k

    def forward(self, points: Tensor) -> Tensor:
        fa, fb = self.a(points), self.b(points)
        h = (0.5 + 0.5 * (fb - fa) / self.k).clamp(0, 1)
        return fb + (fa - fb) * h - self.k * h * (1 - h)


class Transformed(nn.Module):
    """``inner`` moved by a rotation (axis-angle ``rotation``), a translation and a uniform ``scale``:
    ``f(x) = s * inner(R^T (x - t) / s)``, still a signed distance."""

    def __init__(
        self,
        inner: nn.Module,
        rotation: Sequence[float] = (0.0, 0.0, 0.0),
        translation: Sequence[float] = (0.0, 0.0, 0.0),
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        _positive(scale, "scale")
        self.inner = inner
        self.rotation, self.translation, self.scale = (
            _param(rotation, 3),
            _param(translation, 3),
            _param(scale),
        )

    def forward(self, points: Tensor) -> Tensor:
        R = axis_angle_to_matrix(self.rotation.to(points.dtype))
        local = (points - self.translation) @ R / self.scale  # rows: R^T (x - t)
        return self.inner(local) * self.scale
