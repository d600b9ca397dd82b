"""Batched lights: ambient, directional, point and spherical-harmonics environment lighting.

Conventions (stated once here, used by ``core.shading``):

- Colours are linear RGB, shape ``(..., 3)``. Every tensor field may require gradients.
- Batches: every field has a leading batch dimension of size 1 (one scene shared by all cameras) or ``B``.
  Unbatched inputs (without the leading dimension) get a batch of 1. Within one light object the fields
  are broadcast to a common batch size; ``Lights`` combines light objects whose batch sizes are 1 or ``B``.
- ``DirectionalLights.directions`` point FROM the surface TOWARDS the light, in world space; they are
  normalised when shading, so only their direction matters. A light straight above a surface with normal
  ``(0, 0, 1)`` has direction ``(0, 0, 1)``.
- Spherical harmonics (SH) are the standard real SH without the Condon-Shortley phase, orthonormal on the
  unit sphere (``integral of Y_lm Y_l'm' over the sphere = delta``), ordered by degree then order:
  index ``l * l + l + m``, i.e. ``l=0``; ``l=1: m=-1, 0, 1``; ``l=2: m=-2..2``; ``l=3: m=-3..3``
  (``Y_1,-1 ~ y``, ``Y_1,0 ~ z``, ``Y_1,1 ~ x``; the table in ``sh_basis``). Code that includes the
  Condon-Shortley phase (e.g. 3D Gaussian splatting) has the opposite sign for every odd ``m``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_same_device, check_tensor
from .vectors import safe_normalize

# Convolution of each SH degree with the clamped cosine lobe max(cos, 0) (Ramamoorthi & Hanrahan 2001,
# "An Efficient Representation for Irradiance Environment Maps", eq. 8): A_0 = pi, A_1 = 2 pi / 3,
# A_2 = pi / 4, and A_3 = 0 (every odd degree above 1 vanishes).
SH_IRRADIANCE_WEIGHTS = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0, 0.0)
SH_COEFFICIENT_COUNTS = (9, 16)

_C0 = 0.5 * math.sqrt(1.0 / math.pi)
_C1 = math.sqrt(3.0 / (4.0 * math.pi))
_C2 = (math.sqrt(15.0 / math.pi) / 2, math.sqrt(5.0 / math.pi) / 4, math.sqrt(15.0 / math.pi) / 4)
_C3 = (
    math.sqrt(35.0 / (2 * math.pi)) / 4,  # m = +-3
    math.sqrt(105.0 / math.pi) / 2,  # m = -2
    math.sqrt(21.0 / (2 * math.pi)) / 4,  # m = +-1
    math.sqrt(7.0 / math.pi) / 4,  # m = 0
    math.sqrt(105.0 / math.pi) / 4,  # m = 2
)


def sh_basis(directions: Tensor, degree: int) -> Tensor:
    """Real spherical harmonics ``Y_lm`` of every degree ``l <= degree`` at the given directions.

    Args:
        directions: ``(..., 3)`` world directions ``(x, y, z)``; normalised here (a zero vector gives
            only the constant ``Y_00``).
        degree: 0, 1, 2 or 3.

    Returns:
        ``(..., (degree + 1) ** 2)`` with ``out[..., l * l + l + m] = Y_lm(d)`` for unit ``d = (x, y, z)``:
        ``Y_00 = 1 / (2 sqrt(pi))``; ``Y_1,(-1,0,1) = sqrt(3 / 4pi) (y, z, x)``;
        ``Y_2,-2 = c xy``, ``Y_2,-1 = c yz``, ``Y_2,0 = sqrt(5 / 16pi) (3z^2 - 1)``, ``Y_2,1 = c xz``,
        ``Y_2,2 = c / 2 (x^2 - y^2)`` with ``c = sqrt(15 / 4pi)``; ``Y_3,-3 = a y (3x^2 - y^2)``,
        ``Y_3,-2 = sqrt(105 / 4pi) xyz``, ``Y_3,-1 = b y (5z^2 - 1)``,
        ``Y_3,0 = sqrt(7 / 16pi) z (5z^2 - 3)``, ``Y_3,1 = b x (5z^2 - 1)``,
        ``Y_3,2 = sqrt(105 / 16pi) z (x^2 - y^2)``, ``Y_3,3 = a x (x^2 - 3y^2)``
        with ``a = sqrt(35 / 32pi)``, ``b = sqrt(21 / 32pi)``. The basis is orthonormal on the sphere.
    """
    check_tensor(directions, "directions")
    if directions.dim() < 1 or directions.shape[-1] != 3:
        raise ValueError(f"directions must have shape (..., 3), got {tuple(directions.shape)}")
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= 3:
        raise ValueError(f"degree must be 0, 1, 2 or 3, got {degree!r}")
    x, y, z = safe_normalize(directions).unbind(-1)
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [_C1 * y, _C1 * z, _C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [_C2[0] * x * y, _C2[0] * y * z, _C2[1] * (2 * zz - xx - yy), _C2[0] * x * z]
        out += [_C2[2] * (xx - yy)]
    if degree >= 3:
        out += [_C3[0] * y * (3 * xx - yy), _C3[1] * x * y * z, _C3[2] * y * (4 * zz - xx - yy)]
        out += [_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _C3[2] * x * (4 * zz - xx - yy)]
        out += [_C3[4] * z * (xx - yy), _C3[0] * x * (xx - 3 * yy)]
    return torch.stack(out, -1)


# ------------------------------------------------------------------------------------------ helpers
def _batched(x: object, name: str, trailing: tuple[int | str | None, ...], sizes: dict[str, int]) -> Tensor:
    """Check ``x`` has shape ``trailing`` or ``(B, *trailing)``; return it with a leading batch dim."""
    t = check_tensor(x, name, None)
    n = len(trailing)
    if t.dim() not in (n, n + 1):
        spec = ", ".join(str(s) for s in trailing)
        raise ValueError(f"{name} must have shape ({spec}) or (B, {spec}), got {tuple(t.shape)}")
    t = t if t.dim() == n + 1 else t[None]
    check_tensor(t, name, (None, *trailing), sizes=sizes)
    return t


def common_batch_size(sizes: dict[str, int]) -> int:
    """The batch size ``B`` shared by named inputs whose batch sizes are each 1 or ``B`` (1 if all are 1).

    Raises ``ValueError`` naming the first input whose batch size differs from the first size other than 1.
    """
    first, B = next(((k, b) for k, b in sizes.items() if b != 1), ("", 1))
    for name, b in sizes.items():
        if b not in (1, B):
            raise ValueError(f"{name} has batch size {b} but {first} has {B}; batch sizes must be 1 or {B}")
    return B


def _broadcast_batch(**fields: Tensor | None) -> dict[str, Tensor | None]:
    """Expand every field to the largest batch size; each must have batch 1 or that size."""
    given = {k: v for k, v in fields.items() if v is not None}
    check_same_device(**given)
    B = common_batch_size({k: int(v.shape[0]) for k, v in given.items()})
    for k, v in given.items():
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"{k} contains NaN or infinite values")
    return {k: None if v is None else v.expand(B, *v.shape[1:]) for k, v in fields.items()}


def _mapped(t: Tensor | None, fn: Callable[[Tensor], Tensor]) -> Tensor | None:
    return None if t is None else fn(t)


# ------------------------------------------------------------------------------------------- lights
@dataclass(frozen=True, eq=False)
class AmbientLight:
    """Light arriving equally from every direction, reflected as ``color * albedo``.

    Attributes:
        color: ``(B, 3)`` (or ``(3,)``) ambient radiance, linear RGB.
    """

    color: Tensor

    def __post_init__(self) -> None:
        color = _broadcast_batch(color=_batched(self.color, "color", (3,), {}))["color"]
        object.__setattr__(self, "color", color)

    @property
    def batch_size(self) -> int:
        return int(self.color.shape[0])

    def tensors(self) -> dict[str, Tensor]:
        return {"color": self.color}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> AmbientLight:
        """The same light with every tensor moved to ``device`` and cast to ``dtype``."""
        return AmbientLight(self.color.to(device=device, dtype=dtype))


@dataclass(frozen=True, eq=False)
class DirectionalLights:
    """``L`` lights at infinity per scene, each arriving from one direction.

    Attributes:
        directions: ``(B, L, 3)`` (or ``(L, 3)``) world-space directions pointing FROM the surface TOWARDS
            the light; non-zero, normalised when shading.
        colors: ``(B, L, 3)`` (or ``(L, 3)``) irradiance of each light on a surface facing it.
    """

    directions: Tensor
    colors: Tensor

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        d = _batched(self.directions, "directions", ("L", 3), sizes)
        c = _batched(self.colors, "colors", ("L", 3), sizes)
        out = _broadcast_batch(directions=d, colors=c)
        if not bool(((d * d).sum(-1) > 0).all()):
            raise ValueError("directions must be non-zero vectors")
        object.__setattr__(self, "directions", out["directions"])
        object.__setattr__(self, "colors", out["colors"])

    @property
    def batch_size(self) -> int:
        return int(self.directions.shape[0])

    def tensors(self) -> dict[str, Tensor]:
        return {"directions": self.directions, "colors": self.colors}

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> DirectionalLights:
        """The same lights with every tensor moved to ``device`` and cast to ``dtype``."""
        return DirectionalLights(*(t.to(device=device, dtype=dtype) for t in (self.directions, self.colors)))


@dataclass(frozen=True, eq=False)
class PointLights:
    """``L`` point lights per scene.

    A surface point ``p`` at distance ``d = |position - p|`` receives ``color / (c0 + c1 d + c2 d^2)`` from
    direction ``(position - p) / d`` (OpenGL's attenuation model).

    Attributes:
        positions: ``(B, L, 3)`` (or ``(L, 3)``) world positions.
        colors: ``(B, L, 3)`` (or ``(L, 3)``) irradiance at attenuation 1.
        attenuation: ``(B, L, 3)`` (or ``(L, 3)``) non-negative ``(c0, c1, c2)`` (constant, linear,
            quadratic) with ``c0 + c1 + c2 > 0``; None (the default) means no falloff, ``(1, 0, 0)``.
    """

    positions: Tensor
    colors: Tensor
    attenuation: Tensor | None = None

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        p = _batched(self.positions, "positions", ("L", 3), sizes)
        c = _batched(self.colors, "colors", ("L", 3), sizes)
        a = None if self.attenuation is None else _batched(self.attenuation, "attenuation", ("L", 3), sizes)
        out = _broadcast_batch(positions=p, colors=c, attenuation=a)
        if a is not None and not bool(((a >= 0).all(-1) & (a.sum(-1) > 0)).all()):
            raise ValueError("attenuation must be non-negative with c0 + c1 + c2 > 0 for every light")
        for k, v in out.items():
            object.__setattr__(self, k, v)

    @property
    def batch_size(self) -> int:
        return int(self.positions.shape[0])

    def tensors(self) -> dict[str, Tensor]:
        out = {"positions": self.positions, "colors": self.colors}
        return out if self.attenuation is None else {**out, "attenuation": self.attenuation}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PointLights:
        """The same lights with every tensor moved to ``device`` and cast to ``dtype``."""

        def fn(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype)

        return PointLights(fn(self.positions), fn(self.colors), _mapped(self.attenuation, fn))


@dataclass(frozen=True, eq=False)
class SHLighting:
    """Distant environment lighting given by the real-SH coefficients of its radiance.

    The environment radiance arriving from world direction ``w`` is
    ``L(w) = sum_lm coefficients[:, l * l + l + m] * Y_lm(w)`` (basis and order in ``sh_basis``), so
    ``coefficients[:, k] = integral of L(w) Y_k(w) dw`` projects a radiance map. A surface with normal
    ``n`` receives the irradiance ``E(n) = integral of L(w) max(n . w, 0) dw = sum_lm A_l L_lm Y_lm(n)``
    with ``A = (pi, 2pi/3, pi/4, 0)`` (Ramamoorthi & Hanrahan 2001, eq. 7-8), and a Lambertian surface
    reflects ``albedo * E(n) / pi``. A constant environment ``L = c`` has ``L_00 = 2 sqrt(pi) c`` and gives
    ``E = pi c``. Degree-3 terms (16 coefficients) shape ``radiance`` but not ``irradiance`` (``A_3 = 0``).

    Attributes:
        coefficients: ``(B, K, 3)`` (or ``(K, 3)``) RGB coefficients, ``K = 9`` (degree 2) or 16 (degree 3).
    """

    coefficients: Tensor

    def __post_init__(self) -> None:
        c = _batched(self.coefficients, "coefficients", (None, 3), {})
        if c.shape[1] not in SH_COEFFICIENT_COUNTS:
            raise ValueError(
                f"coefficients must have 9 (degree 2) or 16 (degree 3) entries per channel, shape (B, K, 3) "
                f"with K in {SH_COEFFICIENT_COUNTS}, got {tuple(self.coefficients.shape)}"
            )
        object.__setattr__(self, "coefficients", _broadcast_batch(coefficients=c)["coefficients"])

    @property
    def batch_size(self) -> int:
        return int(self.coefficients.shape[0])

    @property
    def degree(self) -> int:
        return 2 if self.coefficients.shape[1] == 9 else 3

    def tensors(self) -> dict[str, Tensor]:
        return {"coefficients": self.coefficients}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SHLighting:
        """The same lighting with every tensor moved to ``device`` and cast to ``dtype``."""
        return SHLighting(self.coefficients.to(device=device, dtype=dtype))

    def radiance(self, directions: Tensor) -> Tensor:
        """``(B, *, 3)`` environment radiance ``L(w)`` arriving from ``directions`` ``(B, *, 3)``."""
        return self._evaluate(directions, "directions", self.coefficients)

    def irradiance(self, normals: Tensor) -> Tensor:
        """``(B, *, 3)`` irradiance ``E(n)`` on surfaces with ``normals`` ``(B, *, 3)`` (see the class)."""
        weights = [SH_IRRADIANCE_WEIGHTS[d] for d in range(self.degree + 1) for _ in range(2 * d + 1)]
        w = torch.tensor(weights, device=self.coefficients.device, dtype=self.coefficients.dtype)
        return self._evaluate(normals, "normals", self.coefficients * w[:, None])

    def _evaluate(self, x: Tensor, name: str, coefficients: Tensor) -> Tensor:
        check_tensor(x, name, device=self.coefficients.device)
        if x.dim() < 2 or x.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (B, *, 3), got {tuple(x.shape)}")
        B = common_batch_size({name: int(x.shape[0]), "coefficients": self.batch_size})
        Y = sh_basis(x, self.degree).reshape(x.shape[0], -1, coefficients.shape[1])
        return (Y @ coefficients).reshape(B, *x.shape[1:])


@dataclass(frozen=True, eq=False)
class Lights:
    """Every light of a batch of scenes; any subset of the four kinds, several lights of each.

    Attributes:
        ambient: ambient light or None.
        directional: ``L`` directional lights per scene or None.
        point: ``L'`` point lights per scene or None.
        sh: spherical-harmonics environment lighting or None.

    Each part has batch size 1 or ``B`` (``batch_size``); parts with batch 1 are shared by every scene.
    """

    ambient: AmbientLight | None = None
    directional: DirectionalLights | None = None
    point: PointLights | None = None
    sh: SHLighting | None = None

    def __post_init__(self) -> None:
        kinds = {"ambient": AmbientLight, "directional": DirectionalLights, "point": PointLights}
        for name, kind in {**kinds, "sh": SHLighting}.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be a {kind.__name__} or None, got {type(value).__name__}")
        check_same_device(**self.tensors())
        common_batch_size({k: v.batch_size for k, v in self.parts().items()})

    def parts(self) -> dict[str, AmbientLight | DirectionalLights | PointLights | SHLighting]:
        """The lights that are present, by field name."""
        parts = {"ambient": self.ambient, "directional": self.directional, "point": self.point, "sh": self.sh}
        return {k: v for k, v in parts.items() if v is not None}

    @property
    def batch_size(self) -> int:
        return max((p.batch_size for p in self.parts().values()), default=1)

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor, named ``part.field`` (e.g. ``directional.directions``)."""
        return {f"{k}.{n}": t for k, p in self.parts().items() for n, t in p.tensors().items()}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Lights:
        """The same lights with every tensor moved to ``device`` and cast to ``dtype``."""
        return Lights(**{k: p.to(device, dtype) for k, p in self.parts().items()})  # type: ignore[arg-type]
