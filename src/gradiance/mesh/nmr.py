"""Neural 3D Mesh Renderer's approximate visibility gradient (Kato, Ushiku and Harada, CVPR 2018).

The forward pass is the hard render, unchanged. The backward pass adds, to the ordinary autograd gradient,
a gradient for the projected vertex positions built from the pixels an edge could reach:

For every edge ``a -> b`` of every face ``f`` and every column whose centre line the edge crosses (and, in
the same way with rows and columns swapped, every row), let ``t_c`` be where it crosses, ``in`` the first
pixel on the face's side of the edge and ``out`` the first pixel on the other side. Moving vertex ``a``
by ``delta`` along the column moves the crossing by ``w_a delta`` (``w_a``, ``w_b`` the linear weights of
``a`` and ``b`` at the column), so reaching the centre ``t_p`` of pixel ``p`` takes ``delta = (t_p - t_c) /
w_a``. With the incoming gradient ``g_p = dL/dI_p``:

- covering: when ``in`` shows ``f``, each pixel ``p`` beyond the edge (``out`` and on, up to
  ``max_distance`` pixels) would take ``in``'s colour; if the face's plane lies in front of what ``p``
  shows now (so that moving the edge really changes ``p``),
- uncovering: each pixel ``p`` on the face's side that shows ``f`` (from ``in`` towards the opposite edge,
  up to ``max_distance`` pixels) would take ``out``'s colour;

and the loss would change by ``-diff = (I_new - I_p) . g_p``. Only moves that lower the loss count (the
paper's rule, ``diff > 0``); each adds ``-diff w_a / (t_p - t_c)`` to ``dL/da`` along the column (likewise
for ``b``; ``|t_p - t_c|`` is floored at ``MIN_DISTANCE`` = 0.1 pixel, as the original adds an epsilon,
for centres that lie on the edge). The original searches to the image border; ``max_distance`` bounds the
search (its cost and its reach), and the work is chunked under a pair budget. Faces with a corner behind
the near plane get no visibility gradient (they cannot be projected); degenerate faces and edges parallel
to the scan lines add nothing. Everything stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..backends.torch.rasterize import chunk_slices
from ..core.cameras import Cameras
from ..core.meshes import Meshes
from ..core.packing import gather_rows
from .rasterize import Fragments
from .visibility import VisibilityScene, with_visibility_gradient

MIN_DISTANCE = 0.1  # pixels: the floor of |t_p - t_c| (a centre on the edge), like the original's eps


@dataclass(frozen=True)
class NMRSettings:
    """Parameters of the NMR gradient.

    Attributes:
        max_distance: pixels searched from an edge along a row or column, in both the covering and the
            uncovering direction (the original searches to the image border). Short reaches give less
            noisy gradients: Spot's pose from a silhouette 30 degrees off (64 px, 150 Adam steps) ends
            0.2 degrees off with 4, 1.1 with 8 and 6 with 16.
        max_pairs_per_chunk: (edge crossing, pixel) pairs processed at once (memory budget).
    """

    max_distance: int = 4
    max_pairs_per_chunk: int = 4_000_000

    def __post_init__(self) -> None:
        for name in ("max_distance", "max_pairs_per_chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


def nmr_visibility(
    image: Tensor,
    fragments: Fragments,
    meshes: Meshes,
    cameras: Cameras,
    settings: NMRSettings | None = None,
) -> Tensor:
    """``image`` unchanged, with NMR's visibility gradient for the vertices in the backward pass (added to
    the ordinary gradient, which passes on to ``image`` unchanged).

    Args:
        image: ``(B, H, W, C)`` rendered from ``fragments`` (colour, alpha, any feature).
        fragments: ``rasterize(meshes, cameras)`` output; the nearest layer is used.
        meshes, cameras: the scene rendered; gradients reach ``meshes.verts`` and the camera parameters
            through the projected corners.
        settings: see ``NMRSettings``.
    """
    settings = settings or NMRSettings()

    def rule(image: Tensor, grad: Tensor, screen: Tensor, scene: VisibilityScene) -> tuple[Tensor, Tensor]:
        return grad, nmr_screen_gradient(image, grad, screen, scene, settings)

    return with_visibility_gradient(image, fragments, meshes, cameras, rule)


def nmr_screen_gradient(
    image: Tensor, grad: Tensor, screen: Tensor, scene: VisibilityScene, settings: NMRSettings
) -> Tensor:
    """``(V', 2)`` NMR gradient of the loss with respect to the projected corners ``screen`` (pixels),
    given the image ``(B, H, W, C)`` and the loss's gradient ``grad`` with respect to it."""
    H, W = scene.image_size
    flat_image, flat_grad = image.reshape(-1, image.shape[-1]), grad.reshape(-1, grad.shape[-1])
    out = torch.zeros_like(screen)
    if scene.face.numel() == 0:
        return out
    pts = gather_rows(screen, scene.corners.reshape(-1)).reshape(-1, 3, 2)  # (I, 3, 2)
    for axis in (0, 1):  # 0: scan columns, move corners along y; 1: scan rows, move corners along x
        s_len, t_len = (W, H) if axis == 0 else (H, W)
        crossings = _crossings(pts, axis, s_len)
        for case in ("cover", "uncover"):
            _accumulate(out, case, crossings, axis, t_len, flat_image, flat_grad, scene, settings)
    return out


@dataclass(frozen=True)
class _Crossings:
    """Where edges cross the centre lines of columns (axis 0) or rows (axis 1), one entry per crossing."""

    inst: Tensor  # face instance
    a: Tensor  # corner index (0-2) of the edge's start, the end is (a + 1) % 3
    line: Tensor  # column (axis 0) or row (axis 1) index
    t: Tensor  # crossing coordinate along the line, pixels
    inward: Tensor  # +1 or -1: the direction along the line towards the face's inside
    span: Tensor  # distance from the crossing to the opposite edge along the line (>= 0)
    w_a: Tensor  # weight of corner a at the line
    w_b: Tensor  # weight of corner b


def _crossings(pts: Tensor, axis: int, s_len: int) -> _Crossings:
    s_all, t_all = pts[..., axis], pts[..., 1 - axis]  # (I, 3) scan and moving coordinates
    a_s, a_t = s_all, t_all
    b_s, b_t = s_all.roll(-1, 1), t_all.roll(-1, 1)
    lo, hi = torch.minimum(a_s, b_s), torch.maximum(a_s, b_s)
    # line centres c + 0.5 in [lo, hi): lines ceil(lo - 0.5) .. ceil(hi - 0.5) - 1, clipped to the image
    first = torch.ceil(lo - 0.5).clamp(0, s_len)
    last = torch.ceil(hi - 0.5).clamp(0, s_len)
    count = (last - first).long().clamp_min(0).reshape(-1)
    count = torch.where((b_s != a_s).reshape(-1), count, torch.zeros_like(count))
    edge = torch.repeat_interleave(torch.arange(count.numel(), device=pts.device), count)
    start = torch.cumsum(count, 0) - count
    line = first.reshape(-1).long()[edge] + torch.arange(edge.numel(), device=pts.device) - start[edge]
    inst, a = torch.div(edge, 3, rounding_mode="floor"), edge % 3
    c = line.to(pts.dtype) + 0.5
    as_, at, bs, bt = (x.reshape(-1)[edge] for x in (a_s, a_t, b_s, b_t))
    w_b = (c - as_) / (bs - as_)
    w_a = 1 - w_b
    t = at + w_b * (bt - at)
    # the opposite side of the face at this line: the third corner's edge to a or to b, whichever spans c
    o = (a + 2) % 3
    os_, ot = s_all[inst, o], t_all[inst, o]
    via_a = (c - os_) * (c - as_) <= 0  # c between the third corner and a
    ps, pt = torch.where(via_a, as_, bs), torch.where(via_a, at, bt)
    denom = ps - os_
    frac = torch.where(denom != 0, (c - os_) / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.5)
    t_opp = ot + frac * (pt - ot)
    return _Crossings(
        inst=inst,
        a=a,
        line=line,
        t=t,
        inward=torch.sign(t_opp - t),
        span=(t_opp - t).abs(),
        w_a=w_a,
        w_b=w_b,
    )


def _pixel(scene: VisibilityScene, inst: Tensor, line: Tensor, pos: Tensor, axis: int) -> Tensor:
    """Flat pixel index of position ``pos`` along line ``line`` of instance ``inst``'s camera."""
    return scene.pixel(inst, pos, line) if axis == 0 else scene.pixel(inst, line, pos)


def _accumulate(
    out: Tensor,
    case: str,
    x: _Crossings,
    axis: int,
    t_len: int,
    image: Tensor,
    grad: Tensor,
    scene: VisibilityScene,
    settings: NMRSettings,
) -> None:
    """Add the gradient of one case (``"cover"`` or ``"uncover"``) of one scan axis to ``out``."""
    R = settings.max_distance
    inward = x.inward.long()
    # first pixel centre on the inside (centre on the edge counts as inside), and the one before it
    p_in = torch.where(inward > 0, torch.ceil(x.t - 0.5), torch.floor(x.t - 0.5)).long()
    p_out = p_in - inward
    ok = (inward != 0) & (p_in >= 0) & (p_in < t_len) & (p_out >= 0) & (p_out < t_len)
    face = gather_rows(scene.face, x.inst)
    pix_in = _pixel(scene, x.inst, x.line, p_in.clamp(0, t_len - 1), axis)
    pix_out = _pixel(scene, x.inst, x.line, p_out.clamp(0, t_len - 1), axis)
    if case == "cover":
        ok &= gather_rows(scene.face_id, pix_in) == face  # the edge is visible where it starts
        count = torch.full_like(p_in, R)
        source = pix_in  # the colour the covered pixels would take
        first, step = p_out, -inward
    else:
        # pixel centres from p_in towards the opposite edge, inclusive of centres on it
        # centres p_in + k * inward lie d0 + k from the crossing (d0 in [0, 1)); keep those within the span
        d0 = (p_in.to(x.t.dtype) + 0.5 - x.t) * x.inward
        count = (torch.floor(x.span - d0) + 1).clamp(0, R).long()
        source = pix_out
        first, step = p_in, inward
    count = torch.where(ok, count, torch.zeros_like(count))
    sel = torch.nonzero(count > 0).flatten()
    if sel.numel() == 0:
        return
    cols = [gather_rows(v, sel) for v in (count, first, step, source, x.inst, x.a, x.line, x.t, x.w_a, x.w_b)]
    count, first, step, source, inst, a, line, t, w_a, w_b = cols
    for c in chunk_slices(count, settings.max_pairs_per_chunk, "NMRSettings.max_pairs_per_chunk"):
        n = count[c]
        item = torch.repeat_interleave(torch.arange(n.numel(), device=n.device), n)
        k = torch.arange(item.numel(), device=n.device) - (torch.cumsum(n, 0) - n)[item]
        pos = first[c][item] + k * step[c][item]
        valid = (pos >= 0) & (pos < t_len)
        it = inst[c][item]
        pix = _pixel(scene, it, line[c][item], pos.clamp(0, t_len - 1), axis)
        src = source[c][item]
        if case == "cover":
            valid &= _in_front(scene, it, pix, line[c][item], pos, axis)
        else:
            valid &= gather_rows(scene.face_id, pix) == gather_rows(scene.face, it)
        diff = ((gather_rows(image, pix) - gather_rows(image, src)) * gather_rows(grad, pix)).sum(-1)
        valid &= diff > 0
        dist = pos.to(t.dtype) + 0.5 - t[c][item]  # how far the crossing must move to reach the centre
        dist = torch.where(dist < 0, -1.0, 1.0) * dist.abs().clamp_min(MIN_DISTANCE)
        base = -torch.where(valid, diff, torch.zeros_like(diff)) / dist
        corner_rows = gather_rows(scene.corners, it)
        a_k = a[c][item]
        for k_off, weight in ((0, w_a[c][item]), (1, w_b[c][item])):
            row = torch.gather(corner_rows, 1, ((a_k + k_off) % 3)[:, None])[:, 0]
            out[:, 1 - axis].index_add_(0, row, base * weight)


def _in_front(
    scene: VisibilityScene, inst: Tensor, pix: Tensor, line: Tensor, pos: Tensor, axis: int
) -> Tensor:
    """Whether face ``inst``'s plane, extended to the pixel, lies in front of the surface the pixel shows."""
    u, v = (line, pos) if axis == 0 else (pos, line)
    bary, ok = scene.barycentrics(inst, u.to(scene.planes.dtype) + 0.5, v.to(scene.planes.dtype) + 0.5)
    z = (bary * gather_rows(scene.corner_depth, inst)).sum(-1)
    return ok & (z > 0) & (z < gather_rows(scene.depth, pix))
