"""SoftRas colour in one compiled pass over the colour pairs: weights, shading and the per-pixel sums.

Each pair's barycentrics and weight ``w`` come from ``soft_weights.pair``; the pair's colour ``C`` is the
renderer's smooth shading (``gradiance.mesh.render.sample_colors`` with ``shading="smooth"``):

- the surface point ``P = sum_k b_k V_k`` and normal ``n = normalize(sum_k b_k N_k)`` from the vertices
  and vertex normals, flipped to face the camera with ``two_sided``; the albedo ``sum_k b_k c_k`` from
  the vertex colours, or white;
- unlit (no lights): ``C = albedo``; else ``gradiance.core.shading.shade_unit_normals``:
  ``C = albedo (ambient + sum_l max(n . l, 0) L_l) + k_s sum_l spec_l L_l`` over point lights (without
  attenuation) and directional lights, with ``spec = [n . l > 0] max(x, eps)^s`` for ``x > 0``,
  ``x = 2 (n . l)(n . v) - l . v`` (Phong) or ``(n . l + n . v) / |l + v|`` (Blinn-Phong) and ``v`` the unit
  direction to the camera centre (perspective cameras).

The forward pass adds ``w C`` and ``w`` to per-pixel sums; the backward pass recomputes every pair and
returns the gradients with respect to the screen triangles, the barycentric planes and corner depths, the
vertices, the vertex normals, the vertex colours and the camera centres. Lights and material are constants
here (the caller takes the torch path when they need gradients). Pairs are split into ranges, one per
thread, each with its own sums and gradient buffers. Arithmetic runs in float64.
"""

# numba kernels are typed by numba, not by annotations; the wrappers below are fully annotated.
# mypy: disable-error-code="no-untyped-def,untyped-decorator,call-arg,var-annotated"

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import Tensor

from .arrays import as_numpy, first_order, on_threads
from .soft_weights import PairConstants, pair, pair_backward

UNLIT, LAMBERT, PHONG, BLINN_PHONG = 0, 1, 2, 3
MODELS = {"lambert": LAMBERT, "phong": PHONG, "blinn_phong": BLINN_PHONG}
_POW_EPS = 1e-12  # gradiance.core.shading's clamp before powers and square roots


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _unit(x, y, z):
    """``(ux, uy, uz, 1 / |x|)``; zero for a zero vector."""
    sq = x * x + y * y + z * z
    inv = 1.0 / np.sqrt(sq) if sq > 0 else 0.0
    return x * inv, y * inv, z * inv, inv


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _unit_backward(gx, gy, gz, ux, uy, uz, inv):
    """The gradient of ``_unit``'s input: ``(g - u (g . u)) / |x|``."""
    d = gx * ux + gy * uy + gz * uz
    return (gx - ux * d) * inv, (gy - uy * d) * inv, (gz - uz * d) * inv


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _spec_term(cos, nv, lv, shininess, model):
    """``(spec, dspec/dcos, dspec/dnv, dspec/dlv)`` of one light (``gradiance.core.shading._specular``)."""
    if model == PHONG:
        x = 2.0 * cos * nv - lv
        dx_dcos, dx_dnv, dx_dlv = 2.0 * nv, 2.0 * cos, -1.0
    else:
        q2 = 2.0 + 2.0 * lv
        q = np.sqrt(max(q2, _POW_EPS * _POW_EPS))
        x = (cos + nv) / q
        dx_dcos = dx_dnv = 1.0 / q
        dx_dlv = -x / (q * q) if q2 >= _POW_EPS * _POW_EPS else 0.0
    if not (x > 0 and cos > 0):
        return 0.0, 0.0, 0.0, 0.0
    base = max(x, _POW_EPS)
    spec = base**shininess
    g = shininess * spec / base if x >= _POW_EPS else 0.0  # s base^(s - 1)
    return spec, g * dx_dcos, g * dx_dnv, g * dx_dlv


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _light(k, P, lpos, lcol, ldir, dcol):
    """Unit direction ``(lx, ly, lz)`` to light ``k`` (point lights first, then directional), its colour,
    and for point lights the vector to it and ``1 / |vector|`` (0 for directional lights)."""
    L = lpos.shape[0]
    if k < L:
        tx, ty, tz = lpos[k, 0] - P[0], lpos[k, 1] - P[1], lpos[k, 2] - P[2]
        lx, ly, lz, inv = _unit(tx, ty, tz)
        return lx, ly, lz, lcol[k, 0], lcol[k, 1], lcol[k, 2], inv
    j = k - L
    return ldir[j, 0], ldir[j, 1], ldir[j, 2], dcol[j, 0], dcol[j, 1], dcol[j, 2], 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _surface(q, verts, vnorm, vcol, faces, inst_face, inst_cam, centres):
    """Point, raw normal, albedo and camera centre of pair ``q``, the face's corners and the camera."""
    i, b0, b1, b2 = q[2], q[19], q[20], q[21]
    fc = inst_face[i]
    c0, c1, c2 = faces[fc, 0], faces[fc, 1], faces[fc, 2]
    P = (b0 * verts[c0, 0] + b1 * verts[c1, 0] + b2 * verts[c2, 0],
         b0 * verts[c0, 1] + b1 * verts[c1, 1] + b2 * verts[c2, 1],
         b0 * verts[c0, 2] + b1 * verts[c1, 2] + b2 * verts[c2, 2])  # fmt: skip
    N = (b0 * vnorm[c0, 0] + b1 * vnorm[c1, 0] + b2 * vnorm[c2, 0],
         b0 * vnorm[c0, 1] + b1 * vnorm[c1, 1] + b2 * vnorm[c2, 1],
         b0 * vnorm[c0, 2] + b1 * vnorm[c1, 2] + b2 * vnorm[c2, 2])  # fmt: skip
    if vcol.shape[0] > 0:
        A = (b0 * vcol[c0, 0] + b1 * vcol[c1, 0] + b2 * vcol[c2, 0],
             b0 * vcol[c0, 1] + b1 * vcol[c1, 1] + b2 * vcol[c2, 1],
             b0 * vcol[c0, 2] + b1 * vcol[c1, 2] + b2 * vcol[c2, 2])  # fmt: skip
    else:
        A = (1.0, 1.0, 1.0)
    cam = inst_cam[i]
    Eye = (centres[cam, 0], centres[cam, 1], centres[cam, 2])
    return P, N, A, Eye, c0, c1, c2, cam


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _frame(P, N, Eye, two_sided):
    """Unit normal (flipped towards the camera with ``two_sided``), its sign, ``1 / |N|``, and the unit
    direction to the camera with ``1 / |eye - P|``."""
    nx, ny, nz, inv_n = _unit(N[0], N[1], N[2])
    sgn = 1.0
    if two_sided and nx * (P[0] - Eye[0]) + ny * (P[1] - Eye[1]) + nz * (P[2] - Eye[2]) > 0:
        sgn = -1.0
    vx, vy, vz, inv_v = _unit(Eye[0] - P[0], Eye[1] - P[1], Eye[2] - P[2])
    return sgn * nx, sgn * ny, sgn * nz, sgn, (nx, ny, nz), inv_n, vx, vy, vz, inv_v


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _shade(P, N, A, Eye, ambient, lpos, lcol, ldir, dcol, ks, shininess, model, two_sided):
    """The colour ``(r, g, b)`` of one surface point (module docstring)."""
    if model == UNLIT:
        return A
    nx, ny, nz, _, _, _, vx, vy, vz, _ = _frame(P, N, Eye, two_sided)
    nv = nx * vx + ny * vy + nz * vz
    dr, dg, db = ambient[0], ambient[1], ambient[2]
    sr = sg = sb = 0.0
    for k in range(lpos.shape[0] + ldir.shape[0]):
        lx, ly, lz, cr, cg, cb, _ = _light(k, P, lpos, lcol, ldir, dcol)
        cos = nx * lx + ny * ly + nz * lz
        lam = max(cos, 0.0)
        dr, dg, db = dr + lam * cr, dg + lam * cg, db + lam * cb
        if model != LAMBERT:
            sp = _spec_term(cos, nv, lx * vx + ly * vy + lz * vz, shininess, model)[0]
            sr, sg, sb = sr + sp * cr, sg + sp * cg, sb + sp * cb
    return A[0] * dr + ks[0] * sr, A[1] * dg + ks[1] * sg, A[2] * db + ks[2] * sb


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _shade_backward(P, N, A, Eye, ambient, lpos, lcol, ldir, dcol, ks, shininess, model, two_sided, gC):
    """``_shade``'s colour and its gradients with respect to ``P``, ``N``, ``A`` and ``Eye`` for the colour
    gradient ``gC``."""
    zero3 = (0.0, 0.0, 0.0)
    if model == UNLIT:
        return A, zero3, zero3, gC, zero3
    nx, ny, nz, sgn, u, inv_n, vx, vy, vz, inv_v = _frame(P, N, Eye, two_sided)
    nv = nx * vx + ny * vy + nz * vz
    dr, dg, db = ambient[0], ambient[1], ambient[2]
    sr = sg = sb = 0.0
    gnx = gny = gnz = gvx = gvy = gvz = gpx = gpy = gpz = g_nv = 0.0
    for k in range(lpos.shape[0] + ldir.shape[0]):
        lx, ly, lz, cr, cg, cb, inv_l = _light(k, P, lpos, lcol, ldir, dcol)
        cos = nx * lx + ny * ly + nz * lz
        lam = max(cos, 0.0)
        dr, dg, db = dr + lam * cr, dg + lam * cg, db + lam * cb
        g_cos = (gC[0] * A[0] * cr + gC[1] * A[1] * cg + gC[2] * A[2] * cb) if cos >= 0 else 0.0
        g_lv = 0.0
        if model != LAMBERT:
            lv = lx * vx + ly * vy + lz * vz
            sp, d_cos, d_nv, d_lv = _spec_term(cos, nv, lv, shininess, model)
            sr, sg, sb = sr + sp * cr, sg + sp * cg, sb + sp * cb
            g_sp = gC[0] * ks[0] * cr + gC[1] * ks[1] * cg + gC[2] * ks[2] * cb
            g_cos += g_sp * d_cos
            g_nv += g_sp * d_nv
            g_lv = g_sp * d_lv
            gvx, gvy, gvz = gvx + g_lv * lx, gvy + g_lv * ly, gvz + g_lv * lz
        gnx, gny, gnz = gnx + g_cos * lx, gny + g_cos * ly, gnz + g_cos * lz
        if k < lpos.shape[0]:  # the direction to a point light moves with P
            glx, gly, glz = g_cos * nx + g_lv * vx, g_cos * ny + g_lv * vy, g_cos * nz + g_lv * vz
            tx, ty, tz = _unit_backward(glx, gly, glz, lx, ly, lz, inv_l)
            gpx, gpy, gpz = gpx - tx, gpy - ty, gpz - tz
    gEye = zero3
    if model != LAMBERT:  # v = unit(Eye - P)
        gnx, gny, gnz = gnx + g_nv * vx, gny + g_nv * vy, gnz + g_nv * vz
        gvx, gvy, gvz = gvx + g_nv * nx, gvy + g_nv * ny, gvz + g_nv * nz
        gEye = _unit_backward(gvx, gvy, gvz, vx, vy, vz, inv_v)
        gpx, gpy, gpz = gpx - gEye[0], gpy - gEye[1], gpz - gEye[2]
    gN = _unit_backward(sgn * gnx, sgn * gny, sgn * gnz, u[0], u[1], u[2], inv_n)
    C = (A[0] * dr + ks[0] * sr, A[1] * dg + ks[1] * sg, A[2] * db + ks[2] * sb)
    return C, (gpx, gpy, gpz), gN, (gC[0] * dr, gC[1] * dg, gC[2] * db), gEye


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sums(weights, pairs, mesh, lights, lo, hi, acc, wsum):
    """Add ``w C`` and ``w`` of pairs ``lo:hi`` to the per-pixel sums."""
    tris, planes, z, owner, far, span, top, W, H, c, gamma = weights
    pixel, tri, edge, t, inside = pairs
    verts, vnorm, vcol, faces, inst_face, inst_cam, centres = mesh
    ambient, lpos, lcol, ldir, dcol, ks, shininess, model, two_sided = lights
    for n in range(lo, hi):
        q = pair(n, tris, planes, z, owner, far, span, top, W, H, c, gamma, pixel, tri, edge, t, inside)
        P, N, A, Eye, _, _, _, _ = _surface(q, verts, vnorm, vcol, faces, inst_face, inst_cam, centres)
        C = _shade(P, N, A, Eye, ambient, lpos, lcol, ldir, dcol, ks, shininess, model, two_sided)
        p, w = q[0], q[11] * q[12]
        acc[p, 0] += w * C[0]
        acc[p, 1] += w * C[1]
        acc[p, 2] += w * C[2]
        wsum[p] += w


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sums_backward(weights, pairs, mesh, lights, lo, hi, g_acc, g_wsum, v_tris, v_planes, v_z, v_verts,
                   v_vnorm, v_vcol, v_centres):  # fmt: skip
    tris, planes, z, owner, far, span, top, W, H, c, gamma = weights
    pixel, tri, edge, t, inside = pairs
    verts, vnorm, vcol, faces, inst_face, inst_cam, centres = mesh
    ambient, lpos, lcol, ldir, dcol, ks, shininess, model, two_sided = lights
    for n in range(lo, hi):
        q = pair(n, tris, planes, z, owner, far, span, top, W, H, c, gamma, pixel, tri, edge, t, inside)
        P, N, A, Eye, c0, c1, c2, cam = _surface(q, verts, vnorm, vcol, faces, inst_face, inst_cam, centres)
        p, w = q[0], q[11] * q[12]
        gC = (w * g_acc[p, 0], w * g_acc[p, 1], w * g_acc[p, 2])
        C, gP, gN, gA, gEye = _shade_backward(
            P, N, A, Eye, ambient, lpos, lcol, ldir, dcol, ks, shininess, model, two_sided, gC
        )
        g_w = g_acc[p, 0] * C[0] + g_acc[p, 1] * C[1] + g_acc[p, 2] * C[2] + g_wsum[p]
        for d in range(3):
            v_centres[cam, d] += gEye[d]
        gb0 = _corner_backward(c0, q[19], gP, gN, gA, verts, vnorm, vcol, v_verts, v_vnorm, v_vcol)
        gb1 = _corner_backward(c1, q[20], gP, gN, gA, verts, vnorm, vcol, v_verts, v_vnorm, v_vcol)
        gb2 = _corner_backward(c2, q[21], gP, gN, gA, verts, vnorm, vcol, v_verts, v_vnorm, v_vcol)
        pair_backward(q, gb0, gb1, gb2, g_w, tris, planes, z, span, c, gamma, v_tris, v_planes, v_z)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _corner_backward(corner, bk, gP, gN, gA, verts, vnorm, vcol, v_verts, v_vnorm, v_vcol):
    """Add a corner's share of the point, normal and albedo gradients to its vertex; return the gradient
    of its barycentric."""
    g = 0.0
    for d in range(3):
        g += verts[corner, d] * gP[d] + vnorm[corner, d] * gN[d]
        v_verts[corner, d] += bk * gP[d]
        v_vnorm[corner, d] += bk * gN[d]
        if vcol.shape[0] > 0:
            g += vcol[corner, d] * gA[d]
            v_vcol[corner, d] += bk * gA[d]
    return g


@dataclass(frozen=True)
class ShadingConstants:
    """The lights and material as the kernels take them (constants: no gradient flows to them).

    Attributes:
        model: "unlit" (the albedo), "lambert", "phong" or "blinn_phong".
        ambient: ``(3,)`` ambient colour.
        point_positions: ``(L, 3)``; point_colors: ``(L, 3)`` (no attenuation).
        directions: ``(M, 3)`` unit directions towards the directional lights; direction_colors: ``(M, 3)``.
        specular: ``(3,)`` the material's specular colour; shininess: its exponent.
        two_sided: flip normals that face away from the camera.
    """

    model: str
    ambient: Tensor
    point_positions: Tensor
    point_colors: Tensor
    directions: Tensor
    direction_colors: Tensor
    specular: Tensor
    shininess: float
    two_sided: bool

    def lights(self) -> tuple[object, ...]:
        """The kernels' ``lights`` tuple: ``(ambient, point positions, point colours, directions, direction
        colours, specular colour, shininess, model code, two_sided)``, arrays in float64."""
        tensors = (self.ambient, self.point_positions, self.point_colors, self.directions,
                   self.direction_colors, self.specular)  # fmt: skip
        f64 = [as_numpy(x.detach().to(torch.float64)) for x in tensors]
        code = UNLIT if self.model == "unlit" else MODELS[self.model]
        return (*f64, float(self.shininess), code, bool(self.two_sided))


def _split(count: int) -> list[tuple[int, int]]:
    """``count`` pairs in equal ranges, one per torch thread (one range for small counts)."""
    parts = max(1, min(torch.get_num_threads(), count // 20_000))
    cuts = [count * k // parts for k in range(parts + 1)]
    return [(cuts[k], cuts[k + 1]) for k in range(parts)]


class _ShadedSums(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        tris: Tensor,
        planes: Tensor,
        z: Tensor,
        verts: Tensor,
        vnorm: Tensor,
        vcol: Tensor,
        centres: Tensor,
        setup: tuple[tuple[Tensor, ...], PairConstants, tuple[Tensor, ...], ShadingConstants, int],
    ) -> tuple[Tensor, Tensor]:
        fields, consts, topology, shading, num_pixels = setup
        inputs = (tris, planes, z, verts, vnorm, vcol, centres)
        args = _kernel_args(inputs, fields, consts, topology, shading)
        ranges = _split(fields[0].shape[0])
        acc = np.zeros((len(ranges), num_pixels, 3), np.float64)
        wsum = np.zeros((len(ranges), num_pixels), np.float64)

        def job(lo: int, hi: int) -> None:
            k = ranges.index((lo, hi))
            _sums(*args, lo, hi, acc[k], wsum[k])

        on_threads(ranges, job)
        ctx.save_for_backward(*inputs)
        ctx.setup = setup  # type: ignore[attr-defined]
        return torch.from_numpy(acc.sum(0)).to(tris.dtype), torch.from_numpy(wsum.sum(0)).to(tris.dtype)

    @staticmethod
    @first_order
    def backward(
        ctx: torch.autograd.function.FunctionCtx, g_acc: Tensor, g_wsum: Tensor
    ) -> tuple[Tensor | None, ...]:
        inputs = ctx.saved_tensors  # type: ignore[attr-defined]
        fields, consts, topology, shading, _ = ctx.setup  # type: ignore[attr-defined]
        args = _kernel_args(inputs, fields, consts, topology, shading)
        ranges = _split(fields[0].shape[0])
        grads = [np.zeros((len(ranges), *x.shape), np.float64) for x in inputs]
        g = [as_numpy(x.to(torch.float64)) for x in (g_acc, g_wsum)]

        def job(lo: int, hi: int) -> None:
            k = ranges.index((lo, hi))
            _sums_backward(*args, lo, hi, *g, *(v[k] for v in grads))

        on_threads(ranges, job)
        out = [torch.from_numpy(v.sum(0)).to(x.dtype) for v, x in zip(grads, inputs, strict=True)]
        return (*out, None)


def _kernel_args(inputs: tuple[Tensor, ...], fields: tuple[Tensor, ...], consts: PairConstants,
                 topology: tuple[Tensor, ...], shading: ShadingConstants) -> tuple[object, ...]:  # fmt: skip
    """``(weights, pairs, mesh, lights)``: the kernels' argument tuples for the differentiable ``inputs``
    ``(tris, planes, z, verts, vertex normals, vertex colours, camera centres)``."""
    tris, planes, z, verts, vnorm, vcol, centres = (as_numpy(x.detach().to(torch.float64)) for x in inputs)
    weights = (tris, planes, z, *consts.arrays())
    pairs = tuple(as_numpy(f) for f in fields)
    faces, inst_face, inst_cam = (as_numpy(x.long()) for x in topology)
    mesh = (verts, vnorm, vcol, faces, inst_face, inst_cam, centres)
    return weights, pairs, mesh, shading.lights()


def shaded_sums(
    tris: Tensor,
    planes: Tensor,
    z: Tensor,
    mesh: tuple[Tensor, Tensor, Tensor, Tensor],
    fields: tuple[Tensor, ...],
    consts: PairConstants,
    topology: tuple[Tensor, ...],
    shading: ShadingConstants,
    num_pixels: int,
) -> tuple[Tensor, Tensor]:
    """``(acc (num_pixels, 3), wsum (num_pixels,))``: per pixel the sums of ``w C`` and ``w`` over the pairs
    ``fields = (pixel, tri, edge, t, inside)`` (module docstring).

    Differentiable in the screen triangles ``tris`` ``(T, 3, 2)``, the plane and depth rows ``planes``
    ``(9, I)`` and ``z`` ``(3, I)`` (``softras.surface_rows``) and ``mesh = (verts (V, 3), vertex normals
    (V, 3), vertex colours (V, 3) or (0, 3), camera centres (B, 3))``. ``topology = (faces (F, 3), face of
    each instance (I,), camera of each instance (I,))``."""
    setup = (fields, consts, topology, shading, num_pixels)
    acc, wsum = _ShadedSums.apply(tris, planes, z, *mesh, setup)
    return acc, wsum
