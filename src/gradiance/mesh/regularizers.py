"""Shape regularisers for mesh optimisation: Laplacian smoothing, edge length and normal consistency.

Each takes a packed ``Meshes`` batch and returns a 0-dim tensor, differentiable in the vertex positions, that
weighs every mesh equally (the mean over meshes of a per-mesh mean), so that a large mesh does not drown a
small one. Meshes without vertices, edges or interior edges contribute 0 and are left out of the mean; a
batch where no mesh contributes gives 0. Nothing here produces NaN on degenerate input: zero-length edges,
zero-area faces and isolated vertices give finite values and gradients.

- ``laplacian_smoothing``: the mean norm of the per-vertex Laplacian ``L v``. "uniform" uses
  ``L v_i = v_i - mean_j v_j`` over the neighbours ``j`` (Taubin 1995, "A signal processing approach to fair
  surface design"); "cotangent" uses ``L v_i = (1 / (2 A_i)) sum_j (cot a_ij + cot b_ij) (v_i - v_j)`` with
  ``A_i`` one third of the area of the faces around ``i`` (Desbrun, Meyer, Schroeder and Barr 1999,
  "Implicit fairing of irregular meshes"; Meyer et al. 2003 for the area), which approximates the mean
  curvature normal; "cotangent_normalized" divides by the sum of the weights instead of the area, a
  scale-free variant.
- ``edge_length_loss``: the mean over unique edges of ``(|e| - target)^2``.
- ``normal_consistency``: the mean over pairs of faces sharing an edge of ``1 - cos`` of the angle between
  their unit normals (edges of three or more faces take every pair).
- ``flatten_loss``: the mean over the same pairs of ``(1 - cos)^2``, the flatten loss of Kato et al. 2018
  and Liu et al. 2019 (their ``(cos theta + 1)^2`` of the angle ``theta`` between the two faces' planes
  about the shared edge, where ``cos theta = -cos`` of the normals' angle).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.checks import check_choice
from ..core.meshes import Meshes
from ..core.packing import gather_rows
from ..core.vectors import safe_normalize

LAPLACIAN_METHODS = ("uniform", "cotangent", "cotangent_normalized")
_EPS = 1e-12  # floor of cotangent denominators and areas


def _per_mesh_mean(values: Tensor, owner: Tensor, num_meshes: int) -> Tensor:
    """Mean over meshes (those owning at least one value) of the mean of their ``values``."""
    total = values.new_zeros(num_meshes).index_add(0, owner, values)
    count = values.new_zeros(num_meshes).index_add(0, owner, torch.ones_like(values))
    has = count > 0
    if not bool(has.any()):
        return values.sum() * 0  # keeps the graph (and a zero gradient) when nothing contributes
    return (total[has] / count[has]).mean()


def _check(meshes: Meshes) -> None:
    if not isinstance(meshes, Meshes):
        raise TypeError(f"meshes must be a gradiance Meshes, got {type(meshes).__name__}")


def laplacian_weights(meshes: Meshes, method: str = "uniform") -> tuple[Tensor, Tensor, Tensor]:
    """``(edges, weights, norm)``: the unique edges ``(E, 2)``, a symmetric weight per edge ``(E,)`` and a
    normaliser per vertex ``(V,)``, so that ``L v_i = (sum_j w_ij (v_i - v_j)) / norm_i`` (see the module
    docstring; the cotangent weights are ``(cot a_ij + cot b_ij) / 2`` with ``norm_i = A_i``). Vertices
    without neighbours (or with zero area) get ``norm = 1``, so that ``L v`` stays finite there."""
    _check(meshes)
    check_choice(method, "method", LAPLACIAN_METHODS)
    verts, faces = meshes.verts, meshes.faces
    edges, face_edges = meshes.edges()
    if method == "uniform":
        weights = verts.new_ones(edges.shape[0])
    else:
        # the angle at corner k lies opposite edge face_edges[:, k]; cot = (a . b) / |a x b| of its legs
        fv = meshes.face_verts()
        a, b = fv.roll(-1, 1) - fv, fv.roll(-2, 1) - fv
        sin = torch.linalg.vector_norm(torch.linalg.cross(a, b, dim=-1), dim=-1)
        cot = (a * b).sum(-1) / sin.clamp_min(_EPS)
        weights = verts.new_zeros(edges.shape[0]).index_add(0, face_edges.reshape(-1), cot.reshape(-1)) / 2
    if method == "cotangent":  # A_i, a third of the area of the faces around vertex i (weights are halved)
        third = (meshes.face_areas() / 3).repeat_interleave(3)
        norm = verts.new_zeros(verts.shape[0]).index_add(0, faces.reshape(-1), third)
    else:
        norm = (
            verts.new_zeros(verts.shape[0])
            .index_add(0, edges[:, 0], weights)
            .index_add(0, edges[:, 1], weights)
        )
    return edges, weights, torch.where(norm.abs() > _EPS, norm, torch.ones_like(norm))


def laplacian_smoothing(meshes: Meshes, method: str = "uniform") -> Tensor:
    """Mean over meshes of the mean per-vertex norm ``|L v_i|`` (module docstring)."""
    edges, weights, norm = laplacian_weights(meshes, method)
    verts = meshes.verts
    diff = gather_rows(verts, edges[:, 0]) - gather_rows(verts, edges[:, 1])
    flow = weights[:, None] * diff
    lap = verts.new_zeros(verts.shape).index_add(0, edges[:, 0], flow).index_add(0, edges[:, 1], -flow)
    lap = lap / norm[:, None]
    size = (lap * lap).sum(-1)
    length = torch.where(size > 0, size.clamp_min(_EPS**2).sqrt(), torch.zeros_like(size))
    return _per_mesh_mean(length, meshes.vert_to_mesh, len(meshes))


def edge_length_loss(meshes: Meshes, target_length: float = 0.0) -> Tensor:
    """Mean over meshes of the mean over unique edges of ``(|e| - target_length)^2``."""
    _check(meshes)
    if not target_length >= 0:
        raise ValueError(f"target_length must be >= 0, got {target_length}")
    edges, _ = meshes.edges()
    e = gather_rows(meshes.verts, edges[:, 0]) - gather_rows(meshes.verts, edges[:, 1])
    sq = (e * e).sum(-1)
    if target_length == 0:
        per_edge = sq
    else:
        length = torch.where(sq > 0, sq.clamp_min(_EPS**2).sqrt(), torch.zeros_like(sq))
        per_edge = (length - target_length) ** 2
    return _per_mesh_mean(per_edge, gather_rows(meshes.vert_to_mesh, edges[:, 0]), len(meshes))


def normal_consistency(meshes: Meshes) -> Tensor:
    """Mean over meshes of the mean over pairs of faces sharing an edge of ``1 - n_a . n_b`` (unit face
    normals; a zero-area face has a zero normal and counts as ``1``)."""
    return _adjacent_face_loss(meshes, 1)


def flatten_loss(meshes: Meshes) -> Tensor:
    """Mean over meshes of the mean over pairs of faces sharing an edge of ``(1 - n_a . n_b)^2`` (module
    docstring)."""
    return _adjacent_face_loss(meshes, 2)


def _adjacent_face_loss(meshes: Meshes, power: int) -> Tensor:
    """Mean over meshes of the mean over adjacent face pairs of ``(1 - n_a . n_b) ** power``."""
    _check(meshes)
    _, face_edges = meshes.edges()
    edge_of = face_edges.reshape(-1)  # (3F,) the edge of each (face, corner)
    face_of = torch.arange(face_edges.shape[0], device=edge_of.device).repeat_interleave(3)
    order = torch.argsort(edge_of, stable=True)
    edge_sorted, face_sorted = gather_rows(edge_of, order), gather_rows(face_of, order)
    # every pair (p, p + k) of entries within one run of equal edges (k = 1 only, for manifold meshes)
    n = edge_sorted.numel()
    run_start = torch.ones(n, dtype=torch.bool, device=edge_of.device)
    run_start[1:] = edge_sorted[1:] != edge_sorted[:-1]
    starts = torch.nonzero(run_start).flatten()
    lengths = torch.diff(starts, append=starts.new_tensor([n]))
    pairs_i, pairs_j = [], []
    for k in range(1, int(lengths.max()) if n else 1):
        sel = torch.nonzero(lengths > k).flatten()
        count = gather_rows(lengths, sel) - k  # positions p with p + k inside the run
        first = torch.repeat_interleave(gather_rows(starts, sel), count)
        offset = torch.cumsum(count, 0) - count
        a = first + torch.arange(first.numel(), device=first.device) - torch.repeat_interleave(offset, count)
        pairs_i.append(a)
        pairs_j.append(a + k)
    if not pairs_i:
        return meshes.verts.sum() * 0
    a, b = torch.cat(pairs_i), torch.cat(pairs_j)
    normals = safe_normalize(meshes.face_normals(normalize=False))
    fa, fb = gather_rows(face_sorted, a), gather_rows(face_sorted, b)
    per_pair = (1 - (gather_rows(normals, fa) * gather_rows(normals, fb)).sum(-1)) ** power
    return _per_mesh_mean(per_pair, gather_rows(meshes.face_to_mesh, fa), len(meshes))
