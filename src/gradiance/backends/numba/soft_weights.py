"""SoftRas colour pairs' barycentrics and softmax weights in one compiled pass, forward and backward.

For each pair (pixel centre ``(u, v)``, triangle ``f`` of face instance ``i = owner[f]``, closest boundary
point at ``t`` along edge ``e``, ``inside``) it computes what the reference computes with about sixty
tensor operations (``edge_distance2``, ``clipped_barycentrics`` and the weight of ``aggregate_rgb`` in
``gradiance.mesh.softras``):

- ``d^2 = |(u, v) - lerp(a, b, t)|^2`` with ``a, b`` the edge's corners, ``x = s d^2 / c``,
  ``D = sigmoid(x)``;
- ``e_k = n_k . (u, v, 1)`` from the face's barycentric planes, ``b_k = max(e_k / sum e, 0)`` renormalised
  (a third each when all vanish), the depth ``z = sum_k b_k z_k``;
- the weight ``w = D exp((far - z) / (far - near) / gamma - top[pixel])``.

The backward pass recomputes them and returns the gradients with respect to the triangles' corners, the
barycentric planes and the corner depths (``near``, ``far`` and ``top`` are constants); nothing per pair
is saved but the inputs. Arithmetic runs in float64.
"""

# numba kernels are typed by numba, not by annotations; the wrappers below are fully annotated.
# mypy: disable-error-code="no-untyped-def,untyped-decorator,call-arg,var-annotated"

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import Tensor

from .arrays import as_numpy, first_order


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def pair(n, tris, planes, z, owner, far, span, top, W, H, c, gamma, pixel, tri, edge, t, inside):
    """Every intermediate of pair ``n`` (module docstring)."""
    p, f = pixel[n], tri[n]
    u = float(p % W) + 0.5
    v = float((p // W) % H) + 0.5
    a = np.int64(edge[n])
    b = (a + 1) % 3
    tt = np.float64(t[n])
    dx = u - (tris[f, a, 0] + tt * (tris[f, b, 0] - tris[f, a, 0]))
    dy = v - (tris[f, a, 1] + tt * (tris[f, b, 1] - tris[f, a, 1]))
    sign = 1.0 if inside[n] else -1.0
    x = sign * (dx * dx + dy * dy) / c
    D = 1.0 / (1.0 + np.exp(-x))
    i = owner[f]
    e0 = planes[2, i] + planes[0, i] * u + planes[1, i] * v
    e1 = planes[5, i] + planes[3, i] * u + planes[4, i] * v
    e2 = planes[8, i] + planes[6, i] * u + planes[7, i] * v
    s = e0 + e1 + e2
    inv = 1.0 / s if s != 0 else 1.0
    r0, r1, r2 = e0 * inv, e1 * inv, e2 * inv
    k0, k1, k2 = max(r0, 0.0), max(r1, 0.0), max(r2, 0.0)
    total = k0 + k1 + k2
    if total > 0:
        b0, b1, b2 = k0 / total, k1 / total, k2 / total
    else:
        b0 = b1 = b2 = 1.0 / 3.0
    depth = b0 * z[0, i] + b1 * z[1, i] + b2 * z[2, i]
    E = np.exp((far[f] - depth) / (span[f] * gamma) - top[p])
    return (p, f, i, a, b, tt, u, v, dx, dy, sign, D, E, s, inv, r0, r1, r2, total, b0, b1, b2)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _weights(tris, planes, z, owner, far, span, top, W, H, c, gamma, pixel, tri, edge, t, inside, bary, w):
    for n in range(pixel.shape[0]):
        q = pair(n, tris, planes, z, owner, far, span, top, W, H, c, gamma, pixel, tri, edge, t, inside)
        D, E, b0, b1, b2 = q[11], q[12], q[19], q[20], q[21]
        bary[n, 0], bary[n, 1], bary[n, 2] = b0, b1, b2
        w[n] = D * E


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def pair_backward(q, g_b0, g_b1, g_b2, g_w, tris, planes, z, span, c, gamma, v_tris, v_planes, v_z):
    """Add the gradients of pair ``q`` (``pair``'s intermediates) with barycentric gradients ``g_b*`` and
    weight gradient ``g_w`` to the triangles' corners ``v_tris``, planes ``v_planes`` and depths ``v_z``."""
    _, f, i, a, b, tt, u, v, dx, dy, sign, D, E, s, inv, r0, r1, r2, total, b0, b1, b2 = q
    # w = D E: through E's exponent to the depth, and through D to the distance
    g_depth = -g_w * D * E / (span[f] * gamma)
    g_d2 = sign * g_w * E * D * (1.0 - D) / c
    # d(d^2)/d corner a = -2 (dx, dy) (1 - t), d/d corner b = -2 (dx, dy) t
    v_tris[f, a, 0] -= 2.0 * g_d2 * dx * (1.0 - tt)
    v_tris[f, a, 1] -= 2.0 * g_d2 * dy * (1.0 - tt)
    v_tris[f, b, 0] -= 2.0 * g_d2 * dx * tt
    v_tris[f, b, 1] -= 2.0 * g_d2 * dy * tt
    v_z[0, i] += g_depth * b0
    v_z[1, i] += g_depth * b1
    v_z[2, i] += g_depth * b2
    if not total > 0:  # a third each: constant
        return
    gb0 = g_b0 + g_depth * z[0, i]
    gb1 = g_b1 + g_depth * z[1, i]
    gb2 = g_b2 + g_depth * z[2, i]
    # b = k / total: dk_j = (gb_j - sum_m gb_m b_m) / total; the clamp passes r >= 0
    mean = gb0 * b0 + gb1 * b1 + gb2 * b2
    gr0 = (gb0 - mean) / total if r0 >= 0 else 0.0
    gr1 = (gb1 - mean) / total if r1 >= 0 else 0.0
    gr2 = (gb2 - mean) / total if r2 >= 0 else 0.0
    # r_k = e_k inv, inv = 1 / s (constant where s == 0)
    g_s = -(gr0 * r0 + gr1 * r1 + gr2 * r2) * inv if s != 0 else 0.0
    for k, g_r in ((0, gr0), (1, gr1), (2, gr2)):
        g_e = g_r * inv + g_s
        v_planes[3 * k, i] += g_e * u
        v_planes[3 * k + 1, i] += g_e * v
        v_planes[3 * k + 2, i] += g_e


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _weights_backward(tris, planes, z, owner, far, span, top, W, H, c, gamma, pixel, tri, edge, t, inside,
                      g_bary, g_w, v_tris, v_planes, v_z):  # fmt: skip
    for n in range(pixel.shape[0]):
        q = pair(n, tris, planes, z, owner, far, span, top, W, H, c, gamma, pixel, tri, edge, t, inside)
        pair_backward(q, g_bary[n, 0], g_bary[n, 1], g_bary[n, 2], g_w[n], tris, planes, z, span, c, gamma,
                      v_tris, v_planes, v_z)  # fmt: skip


@dataclass(frozen=True)
class PairConstants:
    """What the weights take without gradient: per triangle its ``owner`` instance, its camera's ``far``
    and ``span = far - near``; per pixel ``top``, the largest log weight; the image size; ``c`` of the
    logit ``s d^2 / c``; the softmax temperature ``gamma``."""

    owner: Tensor
    far: Tensor
    span: Tensor
    top: Tensor
    image_size: tuple[int, int]
    scale: float
    gamma: float

    def arrays(self) -> tuple[object, ...]:
        H, W = self.image_size
        f64 = [as_numpy(x.detach().to(torch.float64)) for x in (self.far, self.span, self.top)]
        return (as_numpy(self.owner), *f64, W, H, float(self.scale), float(self.gamma))


class _PairWeights(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        tris: Tensor,
        planes: Tensor,
        z: Tensor,
        fields: tuple[Tensor, ...],
        consts: PairConstants,
    ) -> tuple[Tensor, Tensor]:
        P = fields[0].shape[0]
        bary, w = np.empty((P, 3), np.float64), np.empty(P, np.float64)
        geometry = [as_numpy(x) for x in (tris, planes, z)]
        _weights(*geometry, *consts.arrays(), *(as_numpy(f) for f in fields), bary, w)
        ctx.save_for_backward(tris, planes, z)
        ctx.fields, ctx.consts = fields, consts  # type: ignore[attr-defined]
        return torch.from_numpy(bary).to(tris.dtype), torch.from_numpy(w).to(tris.dtype)

    @staticmethod
    @first_order
    def backward(
        ctx: torch.autograd.function.FunctionCtx, g_bary: Tensor, g_w: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, None, None]:
        tris, planes, z = ctx.saved_tensors  # type: ignore[attr-defined]
        grads = [np.zeros(tuple(x.shape), np.float64) for x in (tris, planes, z)]
        _weights_backward(
            *(as_numpy(x) for x in (tris, planes, z)),
            *ctx.consts.arrays(),  # type: ignore[attr-defined]
            *(as_numpy(f) for f in ctx.fields),  # type: ignore[attr-defined]
            as_numpy(g_bary.to(torch.float64)),
            as_numpy(g_w.to(torch.float64)),
            *grads,
        )
        v_tris, v_planes, v_z = (torch.from_numpy(g).to(tris.dtype) for g in grads)
        return v_tris, v_planes, v_z, None, None


def pair_weights(
    tris: Tensor, planes: Tensor, z: Tensor, fields: tuple[Tensor, ...], consts: PairConstants
) -> tuple[Tensor, Tensor]:
    """``(bary (P, 3), w (P,))`` of the pairs ``fields = (pixel, tri, edge, t, inside)`` (module
    docstring), differentiable in the screen triangles ``tris`` ``(T, 3, 2)``, the barycentric plane rows
    ``planes`` ``(9, I)`` and the corner depth rows ``z`` ``(3, I)`` (``softras.surface_rows``)."""
    bary, w = _PairWeights.apply(tris, planes, z, fields, consts)
    return bary, w
