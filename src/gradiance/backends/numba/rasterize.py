"""The mesh z-buffer as one compiled pass over the triangles (numba).

It decides the same visibility as the torch reference, ``covered_pairs`` followed by ``nearest_k`` in
``gradiance.backends.torch.rasterize``, and with the same arithmetic in the triangles' dtype:

- twice the signed area ``(p1 - p0) x (p2 - p0)``; zero, non-finite or (with culling) non-negative
  areas cover nothing;
- the candidate pixels are the centres inside the bounding box, clipped to the image;
- edge ``k`` (opposite corner ``k``, from ``p_{k+1}`` to ``p_{k+2}``) has ``(a, b, c) = (-dy, dx,
  dy a_x - dx a_y)`` times the sign of the area, and a centre ``(u, v)`` is covered when
  ``fma(b, v, fma(a, u, c)) >= 0`` for all three edges (edges inclusive), which is what the reference's
  two ``addcmul`` compute where the CPU has fused multiply-add (the results can differ in the last bit, and
  then at a centre exactly on an edge, on CPUs without it);
- the depth plane interpolates ``1 / z`` (perspective) or ``z`` with the screen-space barycentrics
  ``edge_k / area``; depths outside the camera's ``[near, far]`` are not covered;
- per pixel the ``K`` nearest win, ordered by the depth rounded to float32, then the instance id.

Instead of expanding candidate pairs into tensors (several passes over memory per pair), each candidate is
tested and merged into the z-buffer at once, so memory is the z-buffer itself, ``num_pixels x K``. The
torch backend's ``max_pairs_per_chunk`` budget therefore does not apply here.
"""

# numba kernels are typed by numba, not by annotations; the wrapper ``nearest_k`` is fully annotated.
# mypy: disable-error-code="no-untyped-def,untyped-decorator,call-arg"

from __future__ import annotations

import numba
import numpy as np
import torch
from numba.extending import intrinsic
from torch import Tensor

from .arrays import as_numpy, pixel_centres, thread_pool


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once, as ``torch.addcmul`` computes it on CPU (and CUDA) with FMA hardware."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _edge(tris, t, k):
    """Edge ``k`` of triangle ``t`` (opposite corner ``k``): ``(a, b, c)`` of ``a u + b v + c``."""
    i, j = (k + 1) % 3, (k + 2) % 3
    ax, ay = tris[t, i, 0], tris[t, i, 1]
    dx, dy = tris[t, j, 0] - ax, tris[t, j, 1] - ay
    return -dy, dx, dy * ax - dx * ay


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _insert(best_z, best_i, p, z, inst, K):
    """Merge ``(z, inst)`` into pixel ``p``'s sorted list of the ``K`` nearest."""
    pos = K
    for j in range(K):
        if best_i[p, j] < 0 or z < best_z[p, j] or (z == best_z[p, j] and inst < best_i[p, j]):
            pos = j
            break
    if pos == K:
        return
    for j in range(K - 1, pos, -1):
        best_z[p, j] = best_z[p, j - 1]
        best_i[p, j] = best_i[p, j - 1]
    best_z[p, pos] = z
    best_i[p, pos] = inst


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _band(
    tris, tri_z, owner, camera, near, far, centre_u, centre_v, K, cull, perspective, g0, g1, best_z, best_i
):
    """The z-buffer of global rows ``[g0, g1)`` (row ``r`` of camera ``b`` is global row ``b * H + r``):
    ``best_z``/``best_i`` ``(num_pixels, K)`` get the ``K`` nearest ``(depth, instance)`` of each pixel,
    nearest first. ``centre_u`` ``(W,)`` and ``centre_v`` ``(H,)`` are the pixel centres ``j + 0.5`` in the
    triangles' dtype, so that all arithmetic stays in that dtype. Each band walks all triangles in order, so
    the result does not depend on how the rows are split into bands."""
    H, W = centre_v.shape[0], centre_u.shape[0]
    half = centre_u[0]
    one = half + half
    for t in range(tris.shape[0]):
        base = camera[owner[t]] * H
        if base >= g1 or base + H <= g0:
            continue
        p0x, p0y = tris[t, 0, 0], tris[t, 0, 1]
        lo_y = min(p0y, tris[t, 1, 1], tris[t, 2, 1])
        hi_y = max(p0y, tris[t, 1, 1], tris[t, 2, 1])
        # clamped as floats first: a far-off corner must not overflow the integer conversion
        r0 = max(int(min(max(np.ceil(lo_y - half), 0.0), H)), g0 - base)
        r1 = min(int(min(max(np.floor(hi_y - half), -1.0), H - 1)), g1 - 1 - base)
        if r1 < r0:
            continue
        area = (tris[t, 1, 0] - p0x) * (tris[t, 2, 1] - p0y) - (tris[t, 1, 1] - p0y) * (tris[t, 2, 0] - p0x)
        if not np.isfinite(area) or area == 0 or (cull and area > 0):
            continue
        lo_x = min(p0x, tris[t, 1, 0], tris[t, 2, 0])
        hi_x = max(p0x, tris[t, 1, 0], tris[t, 2, 0])
        c0 = int(min(max(np.ceil(lo_x - half), 0.0), W))
        c1 = int(min(max(np.floor(hi_x - half), -1.0), W - 1))
        if c1 < c0:
            continue
        a0, b0, c0_ = _edge(tris, t, 0)
        a1, b1, c1_ = _edge(tris, t, 1)
        a2, b2, c2_ = _edge(tris, t, 2)
        # the depth plane: screen-space barycentrics edge_k / area weighting 1 / z_k (or z_k)
        z0, z1, z2 = tri_z[t, 0], tri_z[t, 1], tri_z[t, 2]
        if perspective:
            z0, z1, z2 = one / z0, one / z1, one / z2
        da = ((a0 / area) * z0 + (a1 / area) * z1) + (a2 / area) * z2
        db = ((b0 / area) * z0 + (b1 / area) * z1) + (b2 / area) * z2
        dc = ((c0_ / area) * z0 + (c1_ / area) * z1) + (c2_ / area) * z2
        if area < 0:  # orient the edges so that they are >= 0 inside
            a0, b0, c0_, a1, b1, c1_, a2, b2, c2_ = -a0, -b0, -c0_, -a1, -b1, -c1_, -a2, -b2, -c2_
        inst = owner[t]
        for r in range(r0, r1 + 1):
            v = centre_v[r]
            for c in range(c0, c1 + 1):
                u = centre_u[c]
                if (
                    _fma(b0, v, _fma(a0, u, c0_)) < 0
                    or _fma(b1, v, _fma(a1, u, c1_)) < 0
                    or _fma(b2, v, _fma(a2, u, c2_)) < 0
                ):
                    continue
                z = _fma(db, v, _fma(da, u, dc))
                if perspective:
                    z = one / z
                if not (z >= near[inst] and z <= far[inst]):
                    continue
                _insert(best_z, best_i, (base + r) * W + c, np.float32(z), inst, K)


def nearest_k(
    tris: Tensor,
    tri_z: Tensor,
    owner: Tensor,
    camera: Tensor,
    near: Tensor,
    far: Tensor,
    image_size: tuple[int, int],
    num_pixels: int,
    k: int,
    cull_backfaces: bool,
    perspective: bool,
) -> Tensor:
    """``(num_pixels, k)`` int64 ids of the ``k`` nearest instances covering each pixel, nearest first, -1
    where fewer cover it; ties in depth go to the smaller id.

    Args are those of the torch backend's ``covered_pairs`` (CPU tensors): screen triangles ``tris``
    ``(T, 3, 2)`` and their corner depths ``tri_z`` ``(T, 3)`` from ``clip_near``, the instance ``owner``
    ``(T,)`` of each, and per instance its ``camera``, ``near`` and ``far`` ``(I,)``.
    """
    H, W = image_size
    if not tris.is_floating_point() or tris.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"tris must be float32 or float64, got {tris.dtype}")
    arrays = [as_numpy(x) for x in (tris, tri_z.to(tris.dtype))]
    ids = [as_numpy(x) for x in (owner.long(), camera.long())]
    bounds = [as_numpy(x.to(tris.dtype)) for x in (near, far)]
    centres = pixel_centres(W, H, arrays[0])
    best_z = np.full((num_pixels, k), np.inf, np.float32)
    best_i = np.full((num_pixels, k), -1, np.int64)
    rows = num_pixels // W if W else 0
    # bands of rows on torch's number of threads (``thread_pool``); the kernels release the GIL
    bands = max(1, min(torch.get_num_threads(), rows // 16))
    per = -(-rows // bands) if rows else 0

    def band(i: int) -> None:
        _band(*arrays, *ids, *bounds, *centres, k, cull_backfaces, perspective,
              i * per, min(rows, (i + 1) * per), best_z, best_i)  # fmt: skip

    if bands == 1:
        band(0)
    else:
        list(thread_pool(bands).map(band, range(bands)))
    return torch.from_numpy(best_i)
