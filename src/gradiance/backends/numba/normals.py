"""Area-weighted unit vertex normals, forward and backward, as compiled loops over the faces.

The same function as ``Meshes.compute_vert_normals`` (the torch reference): ``acc_v = sum over the faces
f at v of (v1 - v0) x (v2 - v0)``, then ``acc_v / |acc_v|`` with zero for a zero sum. The reference
gathers the corners, takes cross products, scatters them with three ``index_add`` and normalises, and its
backward undoes each step with as many passes; here each direction is one pass over the faces plus one
over the vertices. Results equal the reference's up to the order of float additions.
"""

# numba kernels are typed by numba, not by annotations; the wrappers below are fully annotated.
# mypy: disable-error-code="no-untyped-def,untyped-decorator,call-arg"

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from .arrays import first_order


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _face_edges(verts, faces, f):
    """``(a, b)`` = ``(v1 - v0, v2 - v0)`` of face ``f``, each a 3-tuple."""
    i, j, k = faces[f, 0], faces[f, 1], faces[f, 2]
    a = (verts[j, 0] - verts[i, 0], verts[j, 1] - verts[i, 1], verts[j, 2] - verts[i, 2])
    b = (verts[k, 0] - verts[i, 0], verts[k, 1] - verts[i, 1], verts[k, 2] - verts[i, 2])
    return a, b


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _cross(a, b):
    return a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _vertex_normals(verts, faces, tiny, unit, inv):
    """``unit`` ``(V, 3)``: the normalised sums; ``inv`` ``(V,)``: ``1 / |sum|`` (0 for a zero sum)."""
    acc = np.zeros_like(verts)
    for f in range(faces.shape[0]):
        a, b = _face_edges(verts, faces, f)
        n = _cross(a, b)
        for k in range(3):
            v = faces[f, k]
            acc[v, 0] += n[0]
            acc[v, 1] += n[1]
            acc[v, 2] += n[2]
    for v in range(verts.shape[0]):
        sq = acc[v, 0] * acc[v, 0] + acc[v, 1] * acc[v, 1] + acc[v, 2] * acc[v, 2]
        inv[v] = 1.0 / np.sqrt(max(sq, tiny)) if sq > 0 else 0.0
        for c in range(3):
            unit[v, c] = acc[v, c] * inv[v]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _vertex_normals_backward(verts, faces, unit, inv, grad, v_verts):
    """``v_verts`` ``(V, 3)`` += the vector-Jacobian product of ``_vertex_normals`` for ``grad`` ``(V, 3)``:
    ``g_acc = (g - u (g . u)) / |acc|``; per face ``g_n = sum_k g_acc[v_k]``, and for ``n = a x b``,
    ``v_a = b x g_n``, ``v_b = g_n x a``, which go to ``v1``, ``v2`` and, negated, ``v0``."""
    g_acc = np.empty_like(grad)
    for v in range(verts.shape[0]):
        d = grad[v, 0] * unit[v, 0] + grad[v, 1] * unit[v, 1] + grad[v, 2] * unit[v, 2]
        for c in range(3):
            g_acc[v, c] = (grad[v, c] - unit[v, c] * d) * inv[v]
    for f in range(faces.shape[0]):
        i, j, k = faces[f, 0], faces[f, 1], faces[f, 2]
        g_n = (
            g_acc[i, 0] + g_acc[j, 0] + g_acc[k, 0],
            g_acc[i, 1] + g_acc[j, 1] + g_acc[k, 1],
            g_acc[i, 2] + g_acc[j, 2] + g_acc[k, 2],
        )
        a, b = _face_edges(verts, faces, f)
        v_a, v_b = _cross(b, g_n), _cross(g_n, a)
        for c in range(3):
            v_verts[j, c] += v_a[c]
            v_verts[k, c] += v_b[c]
            v_verts[i, c] -= v_a[c] + v_b[c]


class CompiledVertexNormals(torch.autograd.Function):
    """``(V, 3)`` unit area-weighted vertex normals of CPU ``verts`` ``(V, 3)`` and ``faces`` ``(F, 3)``,
    with autograd to ``verts``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, verts: Tensor, faces: Tensor) -> Tensor:
        v, f = verts.detach().contiguous(), faces.contiguous()
        unit = torch.empty_like(v)
        inv = torch.empty(v.shape[0], dtype=v.dtype)
        tiny = np.dtype(str(v.dtype).removeprefix("torch.")).type(torch.finfo(v.dtype).tiny)
        _vertex_normals(v.numpy(), f.numpy(), tiny, unit.numpy(), inv.numpy())
        ctx.save_for_backward(v, f, unit, inv)
        return unit

    @staticmethod
    @first_order
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        v, f, unit, inv = ctx.saved_tensors  # type: ignore[attr-defined]
        v_verts = torch.zeros_like(v)
        g = grad.to(v.dtype).contiguous()
        _vertex_normals_backward(v.numpy(), f.numpy(), unit.numpy(), inv.numpy(), g.numpy(), v_verts.numpy())
        return v_verts, None
