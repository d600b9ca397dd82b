"""Procedural object classes for single-view reconstruction: parametric families with enough variety that a
network must learn shape.

Every generator takes a ``torch.Generator`` and returns one closed mesh (possibly several overlapping
closed parts) with per-vertex colours (one colour per part), in a canonical orientation per class (+y up,
the "front" of chairs towards +z), as ShapeNet's objects are aligned per category. ``make_object`` then
centres its bounding box at the origin and scales it to a bounding-box diagonal of 1, ShapeNet's
normalisation, so that every object lies in ``[-0.5, 0.5]^3``.

Classes:
- ``superquadric``: Barr's superquadrics (1981) with exponents in [0.25, 1.6] and axis lengths in
  [0.45, 1];
- ``torus``: rings lying flat, with random thickness, ellipticity and height scale;
- ``vase``: surfaces of revolution about +y with a random smooth profile;
- ``table``: a slab top on four round or square legs;
- ``chair``: a seat, a back at -z, four legs, and sometimes arm rests;
- ``lamp``: a base disc, a stem and a truncated-cone shade.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ...core.mesh_ops import signed_volume
from ...core.meshes import Meshes
from ...core.primitives import cube, cylinder, torus, uv_sphere

Part = tuple[Tensor, Tensor]  # (V, 3) float64 verts, (F, 3) int64 faces


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _part(mesh: Meshes, scale: tuple[float, float, float], offset: tuple[float, float, float]) -> Part:
    v = mesh.verts.double() * torch.tensor(scale, dtype=torch.float64) + torch.tensor(
        offset, dtype=torch.float64
    )
    return v, mesh.faces


def _box(size: tuple[float, float, float], centre: tuple[float, float, float]) -> Part:
    return _part(cube(1.0), size, centre)


def _rod(radius: float, height: float, centre: tuple[float, float, float], round_: bool = True) -> Part:
    if not round_:
        return _box((2 * radius, height, 2 * radius), centre)
    return _part(cylinder(1.0, 1.0, 16), (radius, height, radius), centre)


def _revolution(radii: Tensor, heights: Tensor, segments: int = 32) -> Part:
    """Closed surface of revolution about +y through rings of ``radii`` at ``heights`` (bottom to top),
    capped by fans."""
    m = radii.shape[0]
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments
    ring = torch.stack([phi.sin(), torch.zeros_like(phi), phi.cos()], -1)  # (S, 3)
    verts = radii[:, None, None] * ring + heights[:, None, None] * torch.tensor([0.0, 1.0, 0.0])
    verts = torch.cat(
        [verts.reshape(-1, 3), torch.tensor([[0, float(heights[0]), 0], [0, float(heights[-1]), 0]])]
    )
    idx = torch.arange(m * segments).reshape(m, segments)
    a, b = idx[:-1], idx[:-1].roll(-1, 1)
    c, d = idx[1:], idx[1:].roll(-1, 1)
    side = torch.cat([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)]).reshape(-1, 3)
    j = torch.arange(segments)
    bottom = torch.stack([torch.full_like(j, m * segments), j.roll(-1), j], 1)
    top = torch.stack([torch.full_like(j, m * segments + 1), idx[-1], idx[-1].roll(-1)], 1)
    faces = torch.cat([side, bottom, top])
    if float(signed_volume(Meshes.single(verts.float(), faces))) < 0:
        faces = faces[:, [0, 2, 1]]
    return verts, faces


def superquadric(g: torch.Generator) -> list[Part]:
    e1, e2 = _u(g, 0.25, 1.6), _u(g, 0.25, 1.6)
    sphere = uv_sphere(16, 32, dtype=torch.float64)
    x, y, z = sphere.verts.unbind(-1)
    s = torch.sqrt(x * x + z * z)
    safe = torch.where(s > 0, s, torch.ones_like(s))

    def pw(t: Tensor, e: float) -> Tensor:
        return torch.sign(t) * t.abs() ** e

    ring = pw(s, e1)
    v = torch.stack([ring * pw(x / safe, e2), pw(y, e1), ring * pw(z / safe, e2)], -1)
    v = v * torch.tensor([_u(g, 0.45, 1.0), _u(g, 0.45, 1.0), _u(g, 0.45, 1.0)], dtype=torch.float64)
    return [(v, sphere.faces)]


def ring(g: torch.Generator) -> list[Part]:
    minor = _u(g, 0.15, 0.45)
    mesh = torus(1.0, minor, 32, 12, dtype=torch.float64)
    return [_part(mesh, (_u(g, 0.75, 1.0), _u(g, 0.5, 1.6), _u(g, 0.75, 1.0)), (0.0, 0.0, 0.0))]


def vase(g: torch.Generator) -> list[Part]:
    t = torch.linspace(0, 1, 20, dtype=torch.float64)
    r = torch.full_like(t, _u(g, 0.25, 0.45))
    for k in range(1, 4):
        r = r + _u(g, -0.12, 0.12) / k * torch.sin(k * math.pi * t + _u(g, 0, 2 * math.pi))
    r = r.clamp_min(0.08)
    return [_revolution(r, (t - 0.5) * _u(g, 0.8, 1.6))]


def table(g: torch.Generator) -> list[Part]:
    w, d, top, leg_h = _u(g, 0.8, 1.6), _u(g, 0.6, 1.2), _u(g, 0.04, 0.12), _u(g, 0.4, 1.0)
    r, inset, round_ = _u(g, 0.03, 0.08), _u(g, 0.02, 0.15), bool(torch.rand((), generator=g) < 0.5)
    parts = [_box((w, top, d), (0.0, leg_h + top / 2, 0.0))]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(
                _rod(r, leg_h, (sx * (w / 2 - inset - r), leg_h / 2, sz * (d / 2 - inset - r)), round_)
            )
    return parts


def chair(g: torch.Generator) -> list[Part]:
    w, d, seat, leg_h = _u(g, 0.5, 0.8), _u(g, 0.5, 0.8), _u(g, 0.04, 0.1), _u(g, 0.35, 0.6)
    back_h, back_t, r = _u(g, 0.4, 0.9), _u(g, 0.04, 0.1), _u(g, 0.025, 0.05)
    round_ = bool(torch.rand((), generator=g) < 0.5)
    y_seat = leg_h + seat / 2
    parts = [
        _box((w, seat, d), (0.0, y_seat, 0.0)),
        _box((w, back_h, back_t), (0.0, y_seat + seat / 2 + back_h / 2, -d / 2 + back_t / 2)),
    ]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(_rod(r, leg_h, (sx * (w / 2 - r), leg_h / 2, sz * (d / 2 - r)), round_))
    if bool(torch.rand((), generator=g) < 0.4):  # arm rests
        arm_h = _u(g, 0.15, 0.3)
        for sx in (-1, 1):
            parts.append(_box((0.05, 0.05, d), (sx * (w / 2 - 0.025), y_seat + seat / 2 + arm_h, 0.0)))
            parts.append(
                _rod(0.02, arm_h, (sx * (w / 2 - 0.025), y_seat + seat / 2 + arm_h / 2, d / 2 - 0.03))
            )
    return parts


def lamp(g: torch.Generator) -> list[Part]:
    base_r, base_h, stem_h = _u(g, 0.15, 0.35), _u(g, 0.03, 0.1), _u(g, 0.4, 1.2)
    shade_lo, shade_hi, shade_h = _u(g, 0.2, 0.45), _u(g, 0.08, 0.3), _u(g, 0.2, 0.45)
    stem_r = _u(g, 0.02, 0.05)
    y0 = base_h + stem_h
    t = torch.linspace(0, 1, 4, dtype=torch.float64)
    shade = _revolution(shade_lo + (shade_hi - shade_lo) * t, y0 - 0.1 * shade_h + t * shade_h, 24)
    return [
        _part(cylinder(1.0, 1.0, 24, dtype=torch.float64), (base_r, base_h, base_r), (0.0, base_h / 2, 0.0)),
        _rod(stem_r, stem_h, (0.0, base_h + stem_h / 2, 0.0)),
        shade,
    ]


CLASSES: dict[str, Callable[[torch.Generator], list[Part]]] = {
    "superquadric": superquadric,
    "torus": ring,
    "vase": vase,
    "table": table,
    "chair": chair,
    "lamp": lamp,
}


def make_object(name: str, g: torch.Generator) -> Meshes:
    """One object of class ``name`` (``CLASSES``), normalised to a bounding-box diagonal of 1 about the
    origin, with a random colour per part in ``vert_colors``."""
    if name not in CLASSES:
        raise ValueError(f"class must be one of {sorted(CLASSES)}, got {name!r}")
    parts = CLASSES[name](g)
    verts, faces, colors, offset = [], [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + offset)
        colors.append((0.25 + 0.75 * torch.rand(3, generator=g, dtype=torch.float64)).expand(v.shape[0], 3))
        offset += v.shape[0]
    v = torch.cat(verts)
    lo, hi = v.amin(0), v.amax(0)
    v = (v - (lo + hi) / 2) / (hi - lo).norm()
    return Meshes.single(v.float(), torch.cat(faces), vert_colors=torch.cat(colors).float())
