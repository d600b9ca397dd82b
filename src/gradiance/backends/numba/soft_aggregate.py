"""SoftRas per pixel without storing the pixel-face pairs: each pair is visited, used and forgotten.

The pairs are those of the reference ``soft_pairs`` with the Euclidean distance (``pairs_near`` in
``soft.py`` followed by the logit test): every pixel centre inside a screen triangle or within ``radius``
of its boundary whose logit ``x = s d^2 / c`` (``s = +1`` inside, ``-1`` outside) exceeds ``threshold``.
From them, in passes over the triangles:

- ``soft_log_transmit``: per pixel ``-sum_j softplus(x_j) = log prod_j (1 - D_j)``, the reference's "prod"
  silhouette before ``1 - exp``. Its backward pass visits the pairs again and scatters
  ``d/dx (-softplus(x)) = -sigmoid(x)`` into the triangles' corners through ``d^2 = |p - lerp(a, b, t)|^2``
  with the closest point's parameter ``t`` held (as ``edge_distance2`` differentiates it). Given the
  colour weights, the same pass finds each pixel's largest lower bound of the pairs' log weights.
- ``colour_candidates``: the pairs that ``gradiance.mesh.softras.colour_pairs`` keeps, found the same way
  (a bound from the face's corner depths, then the exact depth of the clipped barycentrics), as a compact
  list, with each pixel's largest log weight.

Memory is per pixel and per triangle, never per pair (except the colour pairs that are kept). The kernels
expect one triangle per face instance (no face split by the near plane; the caller checks). Threads: the
triangles are split into ranges of about equal candidate pixels, one per thread, each with its own
per-pixel buffer (summed, or maxed, afterwards); the backward pass writes only its own range's corners.
Sums run in float64, so results equal the reference's up to the order and precision of its float sums.
"""

# numba kernels are typed by numba, not by annotations; the wrappers below are fully annotated.
# mypy: disable-error-code="no-untyped-def,untyped-decorator,call-arg,var-annotated"

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
import torch
from torch import Tensor

from ..torch.rasterize import bounding_boxes
from .arrays import as_numpy, first_order, on_threads, pixel_centres
from .rasterize import _fma
from .soft import box, closest

FORWARD, BACKWARD, CANDIDATES = 0, 1, 2


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _clipped_depth(planes, corner_z, f, u, v, zero, one):
    """The depth at the perspective-correct barycentrics of ``(u, v)`` on face ``f``, clipped to the face
    and renormalised, as the reference's ``clipped_barycentrics`` (``gradiance.mesh.softras``) computes it."""
    e0 = _fma(planes[f, 1], v, _fma(planes[f, 0], u, planes[f, 2]))
    e1 = _fma(planes[f, 4], v, _fma(planes[f, 3], u, planes[f, 5]))
    e2 = _fma(planes[f, 7], v, _fma(planes[f, 6], u, planes[f, 8]))
    s = e0 + e1 + e2
    inv = one / (s if s != 0 else one)
    b0, b1, b2 = max(e0 * inv, zero), max(e1 * inv, zero), max(e2 * inv, zero)
    total = b0 + b1 + b2
    if total > 0:
        inv_total = one / total
        b0, b1, b2 = b0 * inv_total, b1 * inv_total, b2 * inv_total
    else:
        b0 = b1 = b2 = one / (one + one + one)
    return _fma(b2, corner_z[f, 2], _fma(b1, corner_z[f, 1], b0 * corner_z[f, 0]))


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _visit(mode, tris, tri_cam, radius, centre_u, centre_v, tiny, c, threshold, lo, hi, pix, terms, out):
    """Every pair of triangles ``lo:hi``, by ``mode``, with ``pix = (pix_in, pix_out, pix_max)`` per-pixel
    buffers, ``terms = (tri_term, log_cut, planes, corner_z, far, span_gamma)`` per triangle and ``out =
    (v_tris, pixel, tri, edge, t, inside, log_w)``; returns ``(next triangle, pairs written)``:

    - ``FORWARD``: ``pix_out[p] -= softplus(x)``, and where ``tri_term`` is given (not empty) the weight
      floor ``pix_max[p] = max(pix_max[p], tri_term[f] + log sigmoid(x))``;
    - ``BACKWARD``: ``v_tris[f] += pix_in[p] * d(-softplus(x)) / d tris[f]``;
    - ``CANDIDATES``: the colour pairs into the output arrays until they are full (a triangle is written
      whole or not at all). A pair is a candidate when its weight's upper bound ``log sigmoid(x) +
      tri_term[f]`` reaches ``pix_in[p] - log_cut - 0.01`` (``pix_in`` the floor); it is written with its
      exact log weight ``log sigmoid(x) + (far[f] - depth) * span_gamma[f]``, and ``pix_max[p]`` keeps the
      largest.
    """
    pix_in, pix_out, pix_max = pix
    tri_term, log_cut, planes, corner_z, far, span_gamma = terms
    v_tris, pixel, tri, edge, t, inside, log_w = out
    floor = tri_term.shape[0] > 0
    H, W = centre_v.shape[0], centre_u.shape[0]
    half = centre_u[0]
    zero, one = half - half, half + half
    xs = np.empty(3, tris.dtype)
    ys = np.empty(3, tris.dtype)
    n = 0
    for f in range(lo, hi):
        r = radius[f]
        c0, c1, r0, r1 = box(tris, f, r, half, H, W)
        if c1 < c0 or r1 < r0:
            continue
        if mode == CANDIDATES and n + (c1 - c0 + 1) * (r1 - r0 + 1) > pixel.shape[0]:
            return f, n
        for k in range(3):
            xs[k], ys[k] = tris[f, k, 0], tris[f, k, 1]
        base = tri_cam[f] * H
        rr = r * r
        for row in range(r0, r1 + 1):
            py = centre_v[row]
            for col in range(c0, c1 + 1):
                px = centre_u[col]
                dd, e, tt, ins = closest(px, py, xs, ys, tiny, zero, one)
                if not (ins or dd <= rr):
                    continue
                x = dd / c if ins else -dd / c
                if not x > threshold:
                    continue
                p = (base + row) * W + col
                if mode == BACKWARD:
                    _scatter(-pix_in[p] / (1.0 + np.exp(-x)) / c, ins, e, tt, px, py, xs, ys, v_tris, f)
                    continue
                tail = np.log1p(np.exp(-abs(x)))  # softplus(x) = max(x, 0) + tail
                log_d = -max(-x, 0.0) - tail  # log sigmoid(x) = -softplus(-x)
                if mode == FORWARD:
                    pix_out[p] -= max(x, 0.0) + tail
                    if floor:
                        pix_max[p] = max(pix_max[p], tri_term[f] + log_d)
                elif log_d + tri_term[f] >= pix_in[p] - log_cut - 0.01:
                    w = (
                        log_d
                        + (far[f] - _clipped_depth(planes, corner_z, f, px, py, zero, one)) * span_gamma[f]
                    )
                    pix_max[p] = max(pix_max[p], w)
                    pixel[n], tri[n], edge[n], t[n], inside[n], log_w[n] = p, f, e, tt, ins, w
                    n += 1
    return hi, n


# one compiled kernel per mode, so that the mode's branches fold away
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _forward(tris, tri_cam, radius, centre_u, centre_v, tiny, c, threshold, lo, hi, pix, terms, out):
    return _visit(
        FORWARD, tris, tri_cam, radius, centre_u, centre_v, tiny, c, threshold, lo, hi, pix, terms, out
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _backward(tris, tri_cam, radius, centre_u, centre_v, tiny, c, threshold, lo, hi, pix, terms, out):
    return _visit(
        BACKWARD, tris, tri_cam, radius, centre_u, centre_v, tiny, c, threshold, lo, hi, pix, terms, out
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _candidates(tris, tri_cam, radius, centre_u, centre_v, tiny, c, threshold, lo, hi, pix, terms, out):
    return _visit(
        CANDIDATES, tris, tri_cam, radius, centre_u, centre_v, tiny, c, threshold, lo, hi, pix, terms, out
    )


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _scatter(g, ins, e, tt, px, py, xs, ys, v_tris, f):
    """Add ``g d(x)/d(d^2)``-scaled corner gradients of the squared distance to the point at ``tt`` along
    edge ``e``: ``d(d^2)/d corner a = -2 diff (1 - t)``, ``d/d corner b = -2 diff t``; ``dx/d(d^2) = s / c``
    (``g`` carries the ``1 / c``)."""
    g = g if ins else -g
    a, b = e, (e + 1) % 3
    dx = px - (xs[a] + tt * (xs[b] - xs[a]))
    dy = py - (ys[a] + tt * (ys[b] - ys[a]))
    v_tris[f, a, 0] -= 2 * g * dx * (1 - tt)
    v_tris[f, a, 1] -= 2 * g * dy * (1 - tt)
    v_tris[f, b, 0] -= 2 * g * dx * tt
    v_tris[f, b, 1] -= 2 * g * dy * tt


@dataclass(frozen=True)
class SoftGeometry:
    """The screen triangles of a soft rasterisation and the pair test, as the kernels take them.

    Attributes:
        tris: ``(T, 3, 2)`` screen triangles in pixels, one per face instance (no near-plane splits).
        tri_camera: ``(T,)`` camera of each triangle.
        image_size: ``(H, W)``.
        num_cameras: ``B``; pixels are ``b * H * W + row * W + col``.
        radius: ``(T,)`` search radius in pixels beyond each triangle.
        scale: ``c`` in the logit ``s d^2 / c`` (``sigma`` times pixels per normalised unit, squared).
        threshold: pairs with a logit at or below it are left out.
    """

    tris: Tensor
    tri_camera: Tensor
    image_size: tuple[int, int]
    num_cameras: int
    radius: Tensor
    scale: float
    threshold: float

    @property
    def num_pixels(self) -> int:
        return self.num_cameras * self.image_size[0] * self.image_size[1]

    def kernel_args(self, tris: np.ndarray) -> tuple[object, ...]:
        """The kernels' leading arguments, for triangles ``tris`` (the detached ``self.tris``)."""
        H, W = self.image_size
        dtype = tris.dtype.type
        radius = as_numpy(self.radius.to(self.tris.dtype))
        tiny = dtype(torch.finfo(self.tris.dtype).tiny)
        return (tris, as_numpy(self.tri_camera.long()), radius, *pixel_centres(W, H, tris), tiny,
                dtype(self.scale), dtype(self.threshold))  # fmt: skip

    @functools.cached_property
    def ranges(self) -> list[tuple[int, int]]:
        """Triangle ranges of about equal candidate pixels, one per thread (one for small scenes); found
        once per geometry (~2 ms for 70k triangles), which every pass shares."""
        H, W = self.image_size
        _, _, bw, bh = bounding_boxes(self.tris.detach(), H, W, pad=self.radius.to(self.tris.dtype))
        work = torch.cumsum(bw * bh, 0)
        total = int(work[-1]) if work.numel() else 0
        parts = max(1, min(torch.get_num_threads(), total // 50_000))
        cuts = torch.searchsorted(work, torch.arange(1, parts) * (total / parts)).tolist()
        bounds = [0, *cuts, int(self.tris.shape[0])]
        return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]


class _SoftLogTransmit(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, tris: Tensor, geo: SoftGeometry, floor: tuple[Tensor, float]
    ) -> tuple[Tensor, Tensor]:
        args = geo.kernel_args(as_numpy(geo.tris))
        tri_term = as_numpy(floor[0].to(torch.float64))
        unused = np.zeros(0, np.float64)

        def job(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
            out = np.zeros(geo.num_pixels, np.float64)
            top = np.full(geo.num_pixels if tri_term.shape[0] else 0, floor[1], np.float64)
            terms = (tri_term, *_no_terms(geo.tris.dtype)[1:])
            _forward(*args, lo, hi, (unused, out, top), terms, _no_out(geo.tris.dtype))
            return out, top

        parts = on_threads(geo.ranges, job)
        out, top = parts[0]
        for more, more_top in parts[1:]:
            out, top = out + more, np.maximum(top, more_top)
        ctx.geo = geo  # type: ignore[attr-defined]
        top_t = torch.from_numpy(top)
        ctx.mark_non_differentiable(top_t)
        return torch.from_numpy(out).to(tris.dtype), top_t

    @staticmethod
    @first_order
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor, _: Tensor
    ) -> tuple[Tensor, None, None]:
        geo: SoftGeometry = ctx.geo  # type: ignore[attr-defined]
        args = geo.kernel_args(as_numpy(geo.tris))
        g = as_numpy(grad.to(torch.float64))
        v_tris = np.zeros(tuple(geo.tris.shape), np.float64)
        unused = np.zeros(0, np.float64)

        def job(lo: int, hi: int) -> None:
            out = (v_tris, *_no_out(geo.tris.dtype)[1:])
            _backward(*args, lo, hi, (g, unused, unused), _no_terms(geo.tris.dtype), out)

        on_threads(geo.ranges, job)
        return torch.from_numpy(v_tris).to(geo.tris.dtype), None, None


def soft_log_transmit(geo: SoftGeometry, weights: ColourWeights | None = None) -> tuple[Tensor, Tensor]:
    """``(num_pixels,)`` ``-sum_j softplus(x_j)`` over each pixel's pairs (module docstring), differentiable
    in ``geo.tris``; and with ``weights``, in the same pass, the floor that ``colour_candidates`` takes:
    per pixel the largest lower bound of the pairs' log weights, the background's included (float64, no
    gradient; empty without ``weights``)."""
    if weights is None:
        terms = (torch.zeros(0, dtype=torch.float64), 0.0)
    else:
        terms = (weights.bounds()[0], weights.background)
    return _SoftLogTransmit.apply(geo.tris, geo, terms)


class ColourPairs(NamedTuple):
    """The colour pairs as ``colour_candidates`` lists them: flat ``pixel``, triangle ``tri``, and the
    closest boundary point (``edge``, ``t``) and ``inside`` of ``pairs_near``, enough to recompute each
    pair's distance with autograd (``edge_distance2``)."""

    pixel: Tensor
    tri: Tensor
    edge: Tensor
    t: Tensor
    inside: Tensor


@dataclass(frozen=True)
class ColourWeights:
    """Per-triangle terms of the log softmax weight ``log D + (far - depth) / (far - near) / gamma``.

    Attributes:
        corner_z: ``(T, 3)`` camera-space depth of each triangle's corners.
        planes: ``(T, 9)`` the barycentric planes ``n_k = hom_{k+1} x hom_{k+2}`` of each triangle.
        far: ``(T,)`` far-plane depth of each triangle's camera.
        span: ``(T,)`` ``far - near`` of each triangle's camera.
        gamma: the softmax temperature.
        background: the background's log weight, ``epsilon / gamma``.
        log_cut: ``log(1 / cutoff)``: pairs whose weight falls below their pixel's largest by more are out.
    """

    corner_z: Tensor
    planes: Tensor
    far: Tensor
    span: Tensor
    gamma: float
    background: float
    log_cut: float

    def span_gamma(self) -> Tensor:
        """``(T,)`` float64 ``1 / ((far - near) gamma)``."""
        return 1.0 / (self.span.detach().to(torch.float64) * self.gamma)

    def bounds(self) -> tuple[Tensor, Tensor]:
        """``(lower, upper)``, each ``(T,)`` float64: bounds of ``(far - depth) / (far - near) / gamma`` over
        a triangle (clipped barycentrics are convex weights, so the depth lies between the corners')."""
        z = self.corner_z.detach().to(torch.float64)
        far, span_gamma = self.far.detach().to(torch.float64), self.span_gamma()
        return (far - z.amax(1)) * span_gamma, (far - z.amin(1)) * span_gamma


def colour_candidates(
    geo: SoftGeometry, weights: ColourWeights, max_pairs: int, floor: Tensor
) -> tuple[ColourPairs, Tensor]:
    """The pairs whose softmax weight is at least ``cutoff`` times their pixel's largest (background
    included), and ``(num_pixels,)`` that largest log weight: the selection of the reference's
    ``colour_pairs``, given the ``floor`` of ``soft_log_transmit(geo, weights)``. Output is written
    ``max_pairs`` candidates at a time per thread."""
    upper = as_numpy(weights.bounds()[1])
    far, span_gamma = weights.far.detach().to(torch.float64), weights.span_gamma()
    floor_np, unused = as_numpy(floor), np.zeros(0, np.float64)
    tris = as_numpy(geo.tris)
    args = geo.kernel_args(tris)
    dtype = geo.tris.dtype
    per_tri = (
        as_numpy(weights.planes.detach().reshape(-1, 9).to(dtype)),
        as_numpy(weights.corner_z.detach().to(dtype)),
        as_numpy(far),
        as_numpy(span_gamma),
    )

    def job(lo: int, hi: int) -> tuple[list[tuple[Tensor, ...]], np.ndarray]:
        top = np.full(geo.num_pixels, weights.background, np.float64)
        parts: list[tuple[Tensor, ...]] = []
        start = lo
        while start < hi:
            out = _candidate_buffers(cap, geo.tris.dtype)
            terms = (upper, weights.log_cut, *per_tri)
            outputs = (_no_out(dtype)[0], *(o.numpy() for o in out))
            start_next, n = _candidates(*args, start, hi, (floor_np, unused, top), terms, outputs)
            if start_next == start and n == 0:
                raise ValueError(
                    f"one triangle covers more candidate pixels than max_pairs_per_chunk={max_pairs} allows"
                )
            parts.append(tuple(o[:n].clone() for o in out))
            start = start_next
        return parts, top

    # buffers of at most 2^20 candidates (26 MB) per thread, refilled as often as needed
    cap = max(1, min(max_pairs, 1 << 20))
    results = on_threads(geo.ranges, job)
    top_np = results[0][1]
    for _, other in results[1:]:
        top_np = np.maximum(top_np, other)
    top = torch.from_numpy(top_np)
    kept: list[tuple[Tensor, ...]] = []
    for parts, _ in results:
        for part in parts:
            n = _keep(*(f.numpy() for f in part), top_np, weights.log_cut)
            kept.append(tuple(f[:n] for f in part[:5]))
    if not kept:
        kept.append(tuple(o[:0] for o in _candidate_buffers(0, geo.tris.dtype))[:5])
    return ColourPairs(*(torch.cat(f) for f in zip(*kept, strict=True))), top


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _keep(pixel, tri, edge, t, inside, log_w, top, log_cut):
    """Move the candidates whose log weight is within ``log_cut`` of their pixel's ``top`` to the front, in
    order; return how many."""
    n = 0
    for k in range(pixel.shape[0]):
        if log_w[k] >= top[pixel[k]] - log_cut:
            pixel[n], tri[n], edge[n], t[n], inside[n] = pixel[k], tri[k], edge[k], t[k], inside[k]
            n += 1
    return n


def _no_terms(dtype: torch.dtype) -> tuple[object, ...]:
    """Empty per-triangle terms for ``_visit`` modes that take none (typed as the real ones)."""
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    f64 = np.zeros(0, np.float64)
    return (f64, 0.0, np.zeros((0, 9), np_dtype), np.zeros((0, 3), np_dtype), f64, f64)


def _no_out(dtype: torch.dtype) -> tuple[np.ndarray, ...]:
    """Empty outputs for ``_visit`` modes that write none (typed as the real ones)."""
    return (np.zeros((0, 3, 2), np.float64), *(b.numpy() for b in _candidate_buffers(0, dtype)))


def _candidate_buffers(n: int, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """Output buffers of ``_candidates``: pixel, tri, edge, t, inside, log weight."""
    types = (torch.int64, torch.int64, torch.int8, dtype, torch.bool, torch.float64)
    return tuple(torch.empty(n, dtype=t) for t in types)


def logit_threshold(cutoff: float) -> float:
    """The logit of ``cutoff``: pairs with ``D <= cutoff`` (logit at or below it) are left out."""
    return math.log(cutoff / (1 - cutoff))
