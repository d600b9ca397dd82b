"""Barycentric interpolation and perspective-correct barycentrics, forward and backward, as compiled loops.

They compute what the torch reference computes (``_Interpolate`` in ``gradiance.mesh.pixel_shading`` and
``perspective_barycentrics`` in ``gradiance.backends.torch.rasterize``), one sample at a time, and write
the backward's scatters (a vertex receives from every pixel that sees it) as plain sequential sums: on CPU
``index_add`` over a few tens of thousands of rows costs a sort and several passes, here one pass.
Results equal the reference's up to the order of float additions.
"""

# numba kernels are typed by numba, not by annotations; the wrappers below are fully annotated.
# mypy: disable-error-code="no-untyped-def,untyped-decorator,call-arg"

from __future__ import annotations

import numba
import torch
from torch import Tensor

from .arrays import as_numpy, first_order
from .rasterize import _fma


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _interpolate(attrs, rows, bary, out):
    """``out[m] = sum_k bary[m, k] * attrs[rows[m, k]]`` (the reference's product then two ``addcmul``)."""
    for m in range(rows.shape[0]):
        r0, r1, r2 = rows[m, 0], rows[m, 1], rows[m, 2]
        b0, b1, b2 = bary[m, 0], bary[m, 1], bary[m, 2]
        for c in range(attrs.shape[1]):
            out[m, c] = _fma(attrs[r2, c], b2, _fma(attrs[r1, c], b1, attrs[r0, c] * b0))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _interpolate_backward(attrs, rows, bary, grad, v_attrs, v_bary, need_attrs, need_bary):
    """``v_attrs[rows[m, k]] += bary[m, k] * grad[m]``; ``v_bary[m, k] = grad[m] . attrs[rows[m, k]]``."""
    for m in range(rows.shape[0]):
        for k in range(3):
            r = rows[m, k]
            if need_attrs:
                b = bary[m, k]
                for c in range(attrs.shape[1]):
                    v_attrs[r, c] += grad[m, c] * b
            if need_bary:
                s = grad[m, 0] * attrs[r, 0]
                for c in range(1, attrs.shape[1]):
                    s += grad[m, c] * attrs[r, c]
                v_bary[m, k] = s


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sheared(hom, corners, m, u, v):
    """``(x, y)`` of the three corners of sample ``m`` in the frame centred on its pixel:
    ``x_j = h_jx - u h_jz``, ``y_j = h_jy - v h_jz`` (the reference's ``addcmul``)."""
    a, b, c = corners[m, 0], corners[m, 1], corners[m, 2]
    x = (_fma(-u, hom[a, 2], hom[a, 0]), _fma(-u, hom[b, 2], hom[b, 0]), _fma(-u, hom[c, 2], hom[c, 0]))
    y = (_fma(-v, hom[a, 2], hom[a, 1]), _fma(-v, hom[b, 2], hom[b, 1]), _fma(-v, hom[c, 2], hom[c, 1]))
    return x, y


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _barycentrics(hom, corners, u, v, one, bary):
    """``bary[m] = e / sum(e)``, ``e_k = x_{k+1} y_{k+2} - y_{k+1} x_{k+2}`` (see ``_sheared``)."""
    for m in range(corners.shape[0]):
        x, y = _sheared(hom, corners, m, u[m], v[m])
        e0, e1, e2 = x[1] * y[2] - y[1] * x[2], x[2] * y[0] - y[2] * x[0], x[0] * y[1] - y[0] * x[1]
        inv = one / (e0 + e1 + e2)
        bary[m, 0], bary[m, 1], bary[m, 2] = e0 * inv, e1 * inv, e2 * inv


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _barycentrics_backward(hom, corners, u, v, one, bary, gb, v_hom):
    """``v_hom[corners[m, j]] += (gx_j, gy_j, -(u gx_j + v gy_j))`` with ``g = (gb - gb . bary) / sum(e)``,
    ``gx_j = g_{j-1} y_{j+1} - g_{j+1} y_{j-1}`` and ``gy_j = g_{j+1} x_{j-1} - g_{j-1} x_{j+1}``."""
    for m in range(corners.shape[0]):
        x, y = _sheared(hom, corners, m, u[m], v[m])
        e0, e1, e2 = x[1] * y[2] - y[1] * x[2], x[2] * y[0] - y[2] * x[0], x[0] * y[1] - y[0] * x[1]
        inv = one / (e0 + e1 + e2)
        dot = (gb[m, 0] * bary[m, 0] + gb[m, 1] * bary[m, 1]) + gb[m, 2] * bary[m, 2]
        g = ((gb[m, 0] - dot) * inv, (gb[m, 1] - dot) * inv, (gb[m, 2] - dot) * inv)
        for j in range(3):
            nxt, prv = (j + 1) % 3, (j + 2) % 3
            gx = g[prv] * y[nxt] - g[nxt] * y[prv]
            gy = g[nxt] * x[prv] - g[prv] * x[nxt]
            r = corners[m, j]
            v_hom[r, 0] += gx
            v_hom[r, 1] += gy
            v_hom[r, 2] -= u[m] * gx + v[m] * gy


def interpolate(attrs: Tensor, rows: Tensor, bary: Tensor) -> Tensor:
    """``(M, C)``: ``sum_k bary[m, k] * attrs[rows[m, k]]`` for CPU ``attrs`` ``(A, C)``, ``rows`` ``(M, 3)``
    int64 and ``bary`` ``(M, 3)`` of the same dtype (no autograd: the caller's Function provides it)."""
    out = torch.empty(rows.shape[0], attrs.shape[1], dtype=attrs.dtype)
    _interpolate(as_numpy(attrs), as_numpy(rows), as_numpy(bary.to(attrs.dtype)), out.numpy())
    return out


def interpolate_backward(
    attrs: Tensor, rows: Tensor, bary: Tensor, grad: Tensor, need_attrs: bool, need_bary: bool
) -> tuple[Tensor | None, Tensor | None]:
    """``(v_attrs, v_bary)`` of ``interpolate`` for the cotangent ``grad`` ``(M, C)`` (None where not
    needed)."""
    v_attrs = torch.zeros_like(attrs)
    v_bary = torch.empty(rows.shape[0], 3, dtype=attrs.dtype)
    _interpolate_backward(
        as_numpy(attrs), as_numpy(rows), as_numpy(bary.to(attrs.dtype)), as_numpy(grad.to(attrs.dtype)),
        v_attrs.numpy(), v_bary.numpy(), need_attrs, need_bary,
    )  # fmt: skip
    return (v_attrs if need_attrs else None), (v_bary.to(bary.dtype) if need_bary else None)


def _surface_args(hom: Tensor, corners: Tensor, u: Tensor, v: Tensor) -> tuple[object, ...]:
    """The barycentric kernels' leading arguments: arrays in ``hom``'s dtype, and 1 in that dtype."""
    h = as_numpy(hom)
    return h, as_numpy(corners), as_numpy(u.to(hom.dtype)), as_numpy(v.to(hom.dtype)), h.dtype.type(1)


def barycentrics(hom: Tensor, corners: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """``(M, 3)`` perspective-correct barycentrics of the centres ``(u, v)`` on the triangles whose corners
    are rows ``corners`` ``(M, 3)`` of ``hom`` ``(V', 3)`` (CPU tensors, no autograd)."""
    bary = torch.empty(corners.shape[0], 3, dtype=hom.dtype)
    _barycentrics(*_surface_args(hom, corners, u, v), bary.numpy())
    return bary


def barycentrics_backward(
    hom: Tensor, corners: Tensor, u: Tensor, v: Tensor, bary: Tensor, gb: Tensor
) -> Tensor:
    """``(V', 3)`` vector-Jacobian product of ``barycentrics`` with respect to ``hom``."""
    v_hom = torch.zeros_like(hom)
    args = _surface_args(hom, corners, u, v)
    _barycentrics_backward(*args, as_numpy(bary), as_numpy(gb.to(hom.dtype)), v_hom.numpy())
    return v_hom


class CompiledInterpolate(torch.autograd.Function):
    """``interpolate`` with autograd to ``attrs`` and ``bary`` (``rows`` has no gradient)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, attrs: Tensor, rows: Tensor, bary: Tensor
    ) -> Tensor:
        ctx.save_for_backward(attrs, rows, bary)
        return interpolate(attrs, rows, bary)

    @staticmethod
    @first_order
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, None, Tensor | None]:
        attrs, rows, bary = ctx.saved_tensors  # type: ignore[attr-defined]
        need_attrs, _, need_bary = ctx.needs_input_grad  # type: ignore[attr-defined]
        v_attrs, v_bary = interpolate_backward(attrs, rows, bary, grad, need_attrs, need_bary)
        return v_attrs, None, v_bary


class CompiledBarycentrics(torch.autograd.Function):
    """``barycentrics`` with autograd to ``hom``."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, hom: Tensor, corners: Tensor, u: Tensor, v: Tensor
    ) -> Tensor:
        bary = barycentrics(hom, corners, u, v)
        ctx.save_for_backward(hom, corners, u, v, bary)
        return bary

    @staticmethod
    @first_order
    def backward(ctx: torch.autograd.function.FunctionCtx, gb: Tensor) -> tuple[Tensor, None, None, None]:
        hom, corners, u, v, bary = ctx.saved_tensors  # type: ignore[attr-defined]
        return barycentrics_backward(hom, corners, u, v, bary, gb), None, None, None
