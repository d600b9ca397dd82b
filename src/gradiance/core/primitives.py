"""Procedural meshes: icosphere, UV sphere, cube, plane, torus and cylinder.

Every primitive is a single-mesh ``Meshes`` with outward right-hand-rule normals (front-facing from
outside), centred at the origin, and, where the surface has a natural parameterisation, UVs with their
own indices so that seams need no duplicated positions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .checks import check_positive
from .meshes import Meshes

_Device = torch.device | str | None


def _check_count(value: int, name: str, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _mesh(
    verts: Tensor,
    faces: Tensor,
    uvs: Tensor | None,
    face_uvs: Tensor | None,
    dtype: torch.dtype,
    device: _Device,
) -> Meshes:
    v = verts.to(device=device, dtype=dtype)
    f = faces.to(device=device, dtype=torch.int64)
    if uvs is None or face_uvs is None:
        return Meshes.single(v, f)
    return Meshes.single(v, f, uvs=uvs.to(device=device, dtype=dtype), face_uvs=face_uvs.to(device))


def icosphere(
    level: int = 2, radius: float = 1.0, *, dtype: torch.dtype = torch.float32, device: _Device = None
) -> Meshes:
    """Unit icosahedron subdivided ``level`` times (each face into four), projected onto the sphere.

    Has ``10 * 4**level + 2`` vertices and ``20 * 4**level`` faces; no UVs.
    """
    _check_count(level, "level", 0)
    check_positive(radius, "radius")
    p = (1 + math.sqrt(5)) / 2
    verts = torch.tensor(
        [
            [-1, p, 0],
            [1, p, 0],
            [-1, -p, 0],
            [1, -p, 0],
            [0, -1, p],
            [0, 1, p],
            [0, -1, -p],
            [0, 1, -p],
            [p, 0, -1],
            [p, 0, 1],
            [-p, 0, -1],
            [-p, 0, 1],
        ],
        dtype=torch.float64,
    )
    faces = torch.tensor(
        [
            [0, 11, 5],
            [0, 5, 1],
            [0, 1, 7],
            [0, 7, 10],
            [0, 10, 11],
            [1, 5, 9],
            [5, 11, 4],
            [11, 10, 2],
            [10, 7, 6],
            [7, 1, 8],
            [3, 9, 4],
            [3, 4, 2],
            [3, 2, 6],
            [3, 6, 8],
            [3, 8, 9],
            [4, 9, 5],
            [2, 4, 11],
            [6, 2, 10],
            [8, 6, 7],
            [9, 8, 1],
        ],
        dtype=torch.int64,
    )
    verts = verts / verts.norm(dim=1, keepdim=True)
    for _ in range(level):
        verts, faces = midpoint_subdivision(verts, faces)
        verts = verts / verts.norm(dim=1, keepdim=True)
    return _mesh(verts * radius, faces, None, None, dtype, device)


def midpoint_subdivision(verts: Tensor, faces: Tensor) -> tuple[Tensor, Tensor]:
    """Loop-style 1-to-4 split: one new vertex at each unique edge midpoint."""
    pairs = torch.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 1).reshape(-1, 2)
    edges, inverse = torch.unique(pairs.sort(dim=1).values, dim=0, return_inverse=True)
    mid = verts.shape[0] + inverse.reshape(-1, 3)  # (F, 3): midpoints of edges 01, 12, 20
    new_verts = torch.cat([verts, 0.5 * (verts[edges[:, 0]] + verts[edges[:, 1]])])
    a, b, c = faces.unbind(1)
    ab, bc, ca = mid.unbind(1)
    new_faces = torch.cat([torch.stack(t, 1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    return new_verts, new_faces


def _grid_faces(rows: int, cols: int, index: Tensor) -> Tensor:
    """Two triangles per cell of a ``rows x cols`` grid of cells; ``index`` is ``(rows+1, cols+1)``.

    Cell ``(i, j)`` with corners ``a = (i, j)``, ``b = (i+1, j)``, ``c = (i+1, j+1)``, ``d = (i, j+1)``
    gives triangles ``(a, b, c)`` and ``(a, c, d)``: ``(F, 3)`` with ``F = 2 * rows * cols``, row-major.
    """
    a = index[:-1, :-1].reshape(-1)
    b = index[1:, :-1].reshape(-1)
    c = index[1:, 1:].reshape(-1)
    d = index[:-1, 1:].reshape(-1)
    return torch.stack([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)], 1).reshape(-1, 3)


def _uv_grid(rows: int, cols: int) -> tuple[Tensor, Tensor]:
    """``(rows+1)*(cols+1)`` UVs with u = j / cols, v = 1 - i / rows, and their ``(rows+1, cols+1)`` index."""
    i, j = torch.meshgrid(torch.arange(rows + 1), torch.arange(cols + 1), indexing="ij")
    uvs = torch.stack([j / cols, 1 - i / rows], -1).reshape(-1, 2).double()
    return uvs, torch.arange((rows + 1) * (cols + 1)).reshape(rows + 1, cols + 1)


def uv_sphere(
    rings: int = 16,
    segments: int = 32,
    radius: float = 1.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: _Device = None,
) -> Meshes:
    """Latitude-longitude sphere with single pole vertices, UVs (equirectangular, u along longitude,
    v = 1 at the north pole +y) and no duplicated positions at the seam."""
    _check_count(rings, "rings", 2)
    _check_count(segments, "segments", 3)
    check_positive(radius, "radius")
    theta = torch.arange(1, rings, dtype=torch.float64) * math.pi / rings
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments
    st, ct = theta.sin()[:, None], theta.cos()[:, None]
    ring = torch.stack([st * phi.sin(), ct.expand(-1, segments), st * phi.cos()], -1).reshape(-1, 3)
    verts = torch.cat(
        [torch.tensor([[0.0, 1.0, 0.0]]).double(), ring, torch.tensor([[0.0, -1.0, 0.0]]).double()]
    )
    pos = torch.empty(rings + 1, segments + 1, dtype=torch.int64)
    pos[0], pos[-1] = 0, verts.shape[0] - 1
    pos[1:-1, :segments] = 1 + torch.arange((rings - 1) * segments).reshape(rings - 1, segments)
    pos[1:-1, segments] = pos[1:-1, 0]
    uvs, uv_index = _uv_grid(rings, segments)
    faces, face_uvs = _grid_faces(rings, segments, pos), _grid_faces(rings, segments, uv_index)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return _mesh(verts * radius, faces[keep], uvs, face_uvs[keep], dtype, device)


def cube(size: float = 2.0, *, dtype: torch.dtype = torch.float32, device: _Device = None) -> Meshes:
    """Axis-aligned cube with edge length ``size`` (8 vertices, 12 faces); each side maps the whole
    UV square."""
    check_positive(size, "size")
    corners = torch.tensor(
        [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float64
    )
    # Each side as corners (a, b, c, d) counter-clockwise seen from outside.
    sides = torch.tensor([[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]])
    faces = torch.cat([sides[:, [0, 1, 2]], sides[:, [0, 2, 3]]])
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    face_uvs = torch.tensor([[0, 1, 2]] * 6 + [[0, 2, 3]] * 6)
    return _mesh(corners * size / 2, faces, uvs, face_uvs, dtype, device)


def plane(
    size: float = 2.0, subdivisions: int = 1, *, dtype: torch.dtype = torch.float32, device: _Device = None
) -> Meshes:
    """Square in the ``y = 0`` plane facing +y, ``subdivisions`` cells per side, UVs with u along +x and
    v along -z."""
    check_positive(size, "size")
    _check_count(subdivisions, "subdivisions", 1)
    n = subdivisions
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    # row i runs from z = -size/2 (v = 1) to z = +size/2; column j from x = -size/2 to +size/2
    x, z = (j / n - 0.5) * size, (i / n - 0.5) * size
    verts = torch.stack([x, torch.zeros_like(x), z], -1).reshape(-1, 3).double()
    uvs, index = _uv_grid(n, n)
    faces = _grid_faces(n, n, index)
    return _mesh(verts, faces, uvs, faces.clone(), dtype, device)


def torus(
    major_radius: float = 1.0,
    minor_radius: float = 0.3,
    major_segments: int = 32,
    minor_segments: int = 16,
    *,
    dtype: torch.dtype = torch.float32,
    device: _Device = None,
) -> Meshes:
    """Torus around the y axis; UVs wrap once around each circle (u along the major circle)."""
    check_positive(major_radius, "major_radius")
    check_positive(minor_radius, "minor_radius")
    _check_count(major_segments, "major_segments", 3)
    _check_count(minor_segments, "minor_segments", 3)
    if minor_radius >= major_radius:
        raise ValueError(
            f"minor_radius must be smaller than major_radius, got {minor_radius} >= {major_radius}"
        )
    m, k = major_segments, minor_segments
    u = torch.arange(m, dtype=torch.float64) * 2 * math.pi / m
    w = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    r = major_radius + minor_radius * w.cos()[:, None]  # (k, m): rows follow the minor circle
    verts = torch.stack([r * u.sin(), (minor_radius * w.sin())[:, None].expand(k, m), r * u.cos()], -1)
    pos = torch.arange(k * m).reshape(k, m)
    pos = torch.cat([pos, pos[:1]], 0)
    pos = torch.cat([pos, pos[:, :1]], 1)
    uvs, uv_index = _uv_grid(k, m)
    faces = _grid_faces(k, m, pos)[:, [0, 2, 1]]
    face_uvs = _grid_faces(k, m, uv_index)[:, [0, 2, 1]]
    return _mesh(verts.reshape(-1, 3), faces, uvs, face_uvs, dtype, device)


def cylinder(
    radius: float = 1.0,
    height: float = 2.0,
    segments: int = 32,
    *,
    capped: bool = True,
    dtype: torch.dtype = torch.float32,
    device: _Device = None,
) -> Meshes:
    """Cylinder along the y axis from ``-height/2`` to ``height/2``; caps are fans around a centre vertex.
    UVs cover the side only when ``capped`` is False (caps have no natural parameterisation)."""
    check_positive(radius, "radius")
    check_positive(height, "height")
    _check_count(segments, "segments", 3)
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments
    ring = torch.stack([radius * phi.sin(), torch.zeros_like(phi), radius * phi.cos()], -1)
    top, bottom = ring + torch.tensor([0, height / 2, 0]), ring - torch.tensor([0, height / 2, 0])
    verts = torch.cat([top, bottom])
    pos = torch.stack([torch.arange(segments), segments + torch.arange(segments)])
    pos = torch.cat([pos, pos[:, :1]], 1)
    faces = _grid_faces(1, segments, pos)
    uvs, uv_index = _uv_grid(1, segments)
    face_uvs = _grid_faces(1, segments, uv_index)
    if not capped:
        return _mesh(verts, faces, uvs, face_uvs, dtype, device)
    n = 2 * segments
    verts = torch.cat([verts, torch.tensor([[0, height / 2, 0], [0, -height / 2, 0]], dtype=torch.float64)])
    j = torch.arange(segments)
    nxt = (j + 1) % segments
    top_fan = torch.stack([torch.full_like(j, n), j, nxt], 1)
    bottom_fan = torch.stack([torch.full_like(j, n + 1), segments + nxt, segments + j], 1)
    return _mesh(verts, torch.cat([faces, top_fan, bottom_fan]), None, None, dtype, device)
