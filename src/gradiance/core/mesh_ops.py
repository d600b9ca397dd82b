"""Differentiable helpers on ``Meshes``: normalisation, surface sampling, volume."""

from __future__ import annotations

import torch
from torch import Tensor

from .meshes import Meshes
from .primitives import midpoint_subdivision


def normalize_to_unit_sphere(meshes: Meshes) -> Meshes:
    """Centre each mesh at its bounding-box centre and scale it so its farthest vertex is at distance 1.

    Differentiable with respect to ``meshes.verts``. A mesh whose vertices all coincide raises.
    """
    n, idx, v = len(meshes), meshes.vert_to_mesh, meshes.verts
    if n == 0:
        return meshes
    big = torch.finfo(v.dtype).max
    lo = torch.full((n, 3), big, dtype=v.dtype, device=v.device).scatter_reduce(
        0, idx[:, None].expand(-1, 3), v, "amin", include_self=True
    )
    hi = torch.full((n, 3), -big, dtype=v.dtype, device=v.device).scatter_reduce(
        0, idx[:, None].expand(-1, 3), v, "amax", include_self=True
    )
    centred = v - (0.5 * (lo + hi))[idx]
    dist = torch.linalg.vector_norm(centred, dim=-1)
    radius = torch.zeros(n, dtype=v.dtype, device=v.device).scatter_reduce(0, idx, dist, "amax")
    if bool((radius[torch.tensor(meshes.num_verts_per_mesh, device=v.device) > 0] <= 0).any()):
        raise ValueError("meshes contains a mesh whose vertices all coincide; it cannot be normalised")
    return meshes.with_verts(centred / radius[idx, None])


def sample_surface(
    meshes: Meshes, num_samples: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sample points uniformly by area on every mesh's surface.

    Faces are drawn with probability proportional to their area; a point inside face ``f`` with corners
    ``a, b, c`` is ``(1 - sqrt(r1)) a + sqrt(r1) (1 - r2) b + sqrt(r1) r2 c`` for uniform ``r1, r2``
    (Osada et al. 2002, "Shape Distributions", eq. 1), so the points are differentiable with respect to the
    vertices (the face choice is not).

    Returns:
        ``(points, normals, face_ids, bary)``: ``points[n, s]`` is sample ``s`` of mesh ``n``
        (``(N, S, 3)``), ``normals`` the unit normal of its face (``(N, S, 3)``), ``face_ids`` the packed
        face index (``(N, S)`` int64) and ``bary`` its barycentric coordinates (``(N, S, 3)``).
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    n, dev, dt = len(meshes), meshes.device, meshes.dtype
    areas = meshes.face_areas()
    per_mesh = torch.zeros(n, dtype=dt, device=dev).index_add(0, meshes.face_to_mesh, areas.detach())
    if bool((per_mesh <= 0).any()):
        raise ValueError("every mesh must have positive surface area to be sampled")
    cum = torch.cumsum(areas.detach(), 0)
    start = torch.cat([cum.new_zeros(1), cum])[meshes.face_offsets[:-1]]
    r = torch.rand(n, num_samples, dtype=dt, device=dev, generator=generator)
    targets = start[:, None] + r * per_mesh[:, None]
    face_ids = torch.searchsorted(cum, targets, right=True)
    # Guard the rounding at a mesh's last face and skip zero-area faces the search could land on.
    lo, hi = meshes.face_offsets[:-1, None], meshes.face_offsets[1:, None] - 1
    face_ids = torch.minimum(torch.maximum(face_ids, lo), hi)
    r1 = torch.rand(n, num_samples, dtype=dt, device=dev, generator=generator).sqrt()
    r2 = torch.rand(n, num_samples, dtype=dt, device=dev, generator=generator)
    bary = torch.stack([1 - r1, r1 * (1 - r2), r1 * r2], -1)
    corners = meshes.verts[meshes.faces[face_ids]]  # (N, S, 3, 3)
    points = (bary[..., None] * corners).sum(-2)
    normals = meshes.face_normals()[face_ids]
    return points, normals, face_ids, bary


def signed_volume(meshes: Meshes) -> Tensor:
    """``(N,)`` signed volume of each mesh, ``sum_f a . (b x c) / 6`` (positive for closed meshes with
    outward normals)."""
    fv = meshes.face_verts()
    per_face = (fv[:, 0] * torch.linalg.cross(fv[:, 1], fv[:, 2], dim=-1)).sum(-1) / 6
    return torch.zeros(len(meshes), dtype=fv.dtype, device=fv.device).index_add(
        0, meshes.face_to_mesh, per_face
    )


def subdivide(meshes: Meshes) -> Meshes:
    """Each face split into four at its edge midpoints (one new vertex per unique edge, shared by the
    faces on both sides); geometry only (colours, UVs and materials are dropped). A batch is subdivided
    mesh by mesh."""
    parts = []
    for m in meshes.split():
        verts, faces = midpoint_subdivision(m.verts, m.faces - m.vert_offsets[0])
        parts.append((verts, faces))
    return Meshes.from_list([v for v, _ in parts], [f for _, f in parts])
