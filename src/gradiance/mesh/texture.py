"""Texture sampling by UV: nearest, bilinear and trilinear (mipmapped) filtering, repeat or clamp wrapping.

The ``texture`` op of the modular mesh pipeline (Laine et al. 2020, "Modular Primitives for High-Performance
Differentiable Rendering", the nvdiffrast ``texture`` op), written with gathers so that autograd gives
gradients with respect to the texture, the UVs and (trilinear) the UV derivatives.

UV convention (the OBJ/OpenGL one, matching ``SurfaceMaterial.diffuse_map``): ``u`` grows to the right and
``v`` grows upwards; ``u = 0`` is the left edge and ``v = 0`` the *bottom* edge of the image, ``v = 1`` its
top (row 0). Texel ``(row r, col c)`` of an ``(Ht, Wt, C)`` texture covers
``[c / Wt, (c + 1) / Wt] x [1 - (r + 1) / Ht, 1 - r / Ht]`` with its centre at
``u = (c + 0.5) / Wt, v = 1 - (r + 0.5) / Ht``. In continuous texel coordinates a sample sits at
``x = u * Wt - 0.5`` (columns) and ``y = (1 - v) * Ht - 0.5`` (rows).

Mipmaps: level ``k + 1`` halves level ``k`` by 2x2 box averaging. Odd sizes are *ceil-halved*
(``ceil(n / 2)``) with edge-aware averaging: the last row/column of the coarser level averages only the
finer texels that exist (a 2x1, 1x2 or 1x1 block), so every level is a true mean of the texels it covers.
Every level is sampled over the whole ``[0, 1]^2`` UV square with its own size, so for odd sizes its texel
grid is only approximately nested in the finer one (exactly nested for even sizes), as in OpenGL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.nn.functional import pad

from gradiance.core.checks import check_choice, check_same_device, check_tensor

TextureFilter = Literal["nearest", "bilinear", "trilinear"]
TextureWrap = Literal["repeat", "clamp"]
FILTERS: tuple[str, ...] = ("nearest", "bilinear", "trilinear")
WRAPS: tuple[str, ...] = ("repeat", "clamp")

__all__ = [
    "FILTERS",
    "WRAPS",
    "TextureFilter",
    "TextureWrap",
    "mip_pyramid",
    "texture",
    "texture_by_material",
]


def texture(
    tex: Tensor,
    uv: Tensor,
    uv_da: Tensor | None = None,
    *,
    filter: TextureFilter = "bilinear",
    wrap: TextureWrap = "repeat",
    max_mip_level: int | None = None,
) -> Tensor:
    """Sample a texture at texture coordinates.

    Args:
        tex: ``(Ht, Wt, C)`` texture shared by the batch, or ``(B, Ht, Wt, C)`` one per batch item (a
            leading 1 broadcasts); float32 or float64. Row 0 is the top of the image (``v = 1``).
        uv: ``(B, *, 2)`` texture coordinates ``(u, v)`` (e.g. ``(B, H, W, 2)`` per pixel or ``(B, N, 2)``),
            finite, same dtype and device as ``tex``; ``u`` right, ``v`` up (see the module docstring).
        uv_da: ``(B, *, 4)`` screen-space derivatives ``(du/dx, du/dy, dv/dx, dv/dy)`` in UV units per pixel
            (nvdiffrast's ``uv_da`` layout, e.g. from ``interpolate`` with pixel derivatives). Required for
            ``filter="trilinear"``, ignored otherwise.
        filter: ``"nearest"`` (the texel containing the sample), ``"bilinear"`` (the four nearest texel
            centres) or ``"trilinear"`` (bilinear on the two mip levels around the level of detail, blended).
        wrap: ``"repeat"`` (``u, v`` taken mod 1: the texture tiles the plane) or ``"clamp"`` (texel indices
            clamped to the edge: outside ``[0, 1]`` the edge texels extend).
        max_mip_level: the coarsest mip level used by ``"trilinear"``; None builds the full pyramid down
            to 1x1; 0 makes trilinear equal to bilinear.

    Returns:
        ``(B, *, C)`` samples. With ``x = u * Wt - 0.5``, ``y = (1 - v) * Ht - 0.5``, ``c0 = floor(x)``,
        ``r0 = floor(y)``, ``a = x - c0``, ``b = y - r0`` and ``W(i)`` the wrapped index (``i mod n`` or
        ``clamp(i, 0, n - 1)``) and ``T = tex[b]`` (or the shared ``tex``), bilinear gives::

            out[b, ..., :] = (1-a)(1-b) T[W(r0), W(c0)] + a(1-b) T[W(r0), W(c0+1)]
                           + (1-a) b T[W(r0+1), W(c0)] + a b T[W(r0+1), W(c0+1)]

        nearest gives ``T[W(floor((1 - v) * Ht)), W(floor(u * Wt))]`` (zero gradient with respect to
        ``uv``). Trilinear computes the level of detail (OpenGL 4.6 core spec, section 8.14.1):
        ``lod = log2(max(|(du/dx * Wt, dv/dx * Ht)|, |(du/dy * Wt, dv/dy * Ht)|))`` clamped to
        ``[0, L]`` with ``L`` the coarsest level, then with ``k = min(floor(lod), L - 1)`` and
        ``t = lod - k``: ``out = (1 - t) bilinear(level k) + t bilinear(level k + 1)``.

    Gradients flow to ``tex`` (all filters), to ``uv`` (bilinear, trilinear) and to ``uv_da`` (trilinear,
    through ``t``). Memory is O(pixels * C) per mip level touched; each sample touches two levels.
    """
    _check_options(filter, wrap, max_mip_level)
    dtype = check_tensor(tex, "tex").dtype
    _check_uv(uv, uv_da, filter, dtype)
    tex4 = _check_tex(tex, "tex", batch=uv.shape[0])
    _check_devices_and_values({"tex": tex4}, uv, uv_da)
    batch = uv.shape[0]
    lead = uv.shape[:-1]
    uv_flat = uv.reshape(-1, 2)
    da_flat = None if uv_da is None else uv_da.reshape(-1, 4)
    bidx = None
    if tex4.shape[0] > 1:
        per_item = uv_flat.shape[0] // batch if batch > 0 else 0
        bidx = torch.arange(batch, device=uv.device).repeat_interleave(per_item)
    out = _sample(tex4, uv_flat, da_flat, bidx, filter, wrap, max_mip_level)
    return out.reshape(*lead, tex4.shape[-1])


def texture_by_material(
    maps: Sequence[Tensor],
    material_id: Tensor,
    uv: Tensor,
    uv_da: Tensor | None = None,
    *,
    filter: TextureFilter = "bilinear",
    wrap: TextureWrap = "repeat",
    max_mip_level: int | None = None,
    background: float = 0.0,
) -> Tensor:
    """Sample one of several textures per pixel, chosen by material id.

    Args:
        maps: ``K >= 1`` textures ``maps[k]`` of shape ``(Ht_k, Wt_k, C)`` (sizes may differ, ``C`` and
            dtype may not), shared by the batch.
        material_id: ``(B, *)`` int64 (or int32) material of each sample, ``-1`` for none; must lie in
            ``[-1, K)``. Its shape is ``uv.shape[:-1]``.
        uv, uv_da, filter, wrap, max_mip_level: as in ``texture``.
        background: the value of every channel where ``material_id == -1``.

    Returns:
        ``(B, *, C)``: ``out[b, ...] = texture(maps[m], uv[b, ...])`` where ``m = material_id[b, ...] >= 0``,
        and ``background`` where ``m == -1``. The loop runs over maps, not pixels: each map samples only
        its own pixels (selected by index) and the results are scattered back.
    """
    _check_options(filter, wrap, max_mip_level)
    if isinstance(maps, Tensor) or not isinstance(maps, Sequence) or len(maps) == 0:
        raise ValueError("maps must be a non-empty sequence of (Ht, Wt, C) textures")
    first = check_tensor(maps[0], "maps[0]", (None, None, "C"))
    sizes: dict[str, int] = {"C": first.shape[-1]}
    tex4s = []
    for k, m in enumerate(maps):
        check_tensor(m, f"maps[{k}]", (None, None, "C"), dtype=first.dtype, sizes=sizes)
        tex4s.append(_check_tex(m, f"maps[{k}]", batch=None))
    _check_uv(uv, uv_da, filter, first.dtype)
    check_tensor(material_id, "material_id", tuple(uv.shape[:-1]), dtype="index")
    named = {f"maps[{k}]": m for k, m in enumerate(tex4s)}
    _check_devices_and_values({**named, "material_id": material_id}, uv, uv_da)
    ids = material_id.reshape(-1)
    bad = (ids < -1) | (ids >= len(maps))
    if bool(bad.any()):
        raise ValueError(
            f"material_id has value {int(ids[bad][0])} outside [-1, {len(maps)}) (-1 means no material, "
            f"otherwise an index into the {len(maps)} maps)"
        )
    uv_flat = uv.reshape(-1, 2)
    da_flat = None if uv_da is None else uv_da.reshape(-1, 4)
    out = uv_flat.new_full((uv_flat.shape[0], sizes["C"]), float(background))
    for k, tex4 in enumerate(tex4s):
        idx = torch.nonzero(ids == k).squeeze(1)
        if idx.numel() == 0:
            continue
        da_k = None if da_flat is None else da_flat[idx]
        out = out.index_copy(0, idx, _sample(tex4, uv_flat[idx], da_k, None, filter, wrap, max_mip_level))
    return out.reshape(*uv.shape[:-1], sizes["C"])


def mip_pyramid(tex: Tensor, max_mip_level: int | None = None) -> list[Tensor]:
    """The mipmap pyramid of ``tex`` (``(Ht, Wt, C)`` or ``(B, Ht, Wt, C)``), differentiable w.r.t. ``tex``.

    ``levels[0] = tex``; ``levels[k + 1]`` has size ``(ceil(h_k / 2), ceil(w_k / 2))`` and
    ``levels[k + 1][..., i, j, :] = mean(levels[k][..., 2i + di, 2j + dj, :])`` over the ``di, dj in {0, 1}``
    whose index lies inside level ``k``. Stops at 1x1 or after ``max_mip_level`` halvings.
    """
    levels = [tex]
    while levels[-1].shape[-3] * levels[-1].shape[-2] > 1 and (
        max_mip_level is None or len(levels) <= max_mip_level
    ):
        levels.append(_downsample(levels[-1]))
    return levels


# ----------------------------------------------------------------------------------------- internals
def _check_options(filter: object, wrap: object, max_mip_level: object) -> None:
    check_choice(filter, "filter", FILTERS)
    check_choice(wrap, "wrap", WRAPS)
    if max_mip_level is not None and (
        isinstance(max_mip_level, bool) or not isinstance(max_mip_level, int) or max_mip_level < 0
    ):
        raise ValueError(f"max_mip_level must be None or an int >= 0, got {max_mip_level!r}")


def _check_tex(tex: object, name: str, batch: int | None) -> Tensor:
    """Validate a texture and return it as ``(Bt, Ht, Wt, C)`` with ``Bt`` 1 (shared) or ``batch``."""
    t = check_tensor(tex, name)
    if t.dim() == 3:
        t = t.unsqueeze(0)
    elif t.dim() != 4 or batch is None:
        want = "(Ht, Wt, C) or (B, Ht, Wt, C)" if batch is not None else "(Ht, Wt, C)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if t.shape[0] != 1 and t.shape[0] != batch:
        raise ValueError(f"{name} has batch size {t.shape[0]} but uv has {batch} (use 1 or a shared texture)")
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise ValueError(f"{name} must have at least one texel, got shape {tuple(t.shape)}")
    return t


def _check_uv(uv: object, uv_da: object, filter: str, dtype: torch.dtype) -> None:
    """Types and shapes of ``uv`` and ``uv_da`` (values and devices come later)."""
    u = check_tensor(uv, "uv", dtype=dtype)
    if u.dim() < 3 or u.shape[-1] != 2:
        raise ValueError(
            f"uv must have shape (B, *, 2) such as (B, H, W, 2) or (B, N, 2), got {tuple(u.shape)}"
        )
    if filter == "trilinear" and uv_da is None:
        raise ValueError('uv_da (B, *, 4) screen-space UV derivatives are required for filter="trilinear"')
    if uv_da is not None:
        check_tensor(uv_da, "uv_da", (*u.shape[:-1], 4), dtype=dtype)


def _check_devices_and_values(others: dict[str, Tensor], uv: Tensor, uv_da: Tensor | None) -> None:
    """One device for everything, then finite ``uv`` and ``uv_da`` (this synchronises with the device)."""
    check_same_device(**others, uv=uv, uv_da=uv_da)
    check_tensor(uv, "uv", finite=True, dtype=None)
    if uv_da is not None:
        check_tensor(uv_da, "uv_da", finite=True, dtype=None)


def _sample(
    tex4: Tensor,
    uv: Tensor,
    uv_da: Tensor | None,
    bidx: Tensor | None,
    filter: str,
    wrap: str,
    max_mip_level: int | None,
) -> Tensor:
    """``(M, C)`` samples of ``tex4`` ``(Bt, Ht, Wt, C)`` at ``uv`` ``(M, 2)``; ``bidx`` ``(M,)`` picks the
    texture of each sample when ``Bt > 1`` (None: texture 0)."""
    if filter == "nearest":
        return _nearest(tex4, uv, bidx, wrap)
    if filter == "bilinear":
        return _bilinear(tex4, uv, bidx, wrap)
    assert uv_da is not None
    return _trilinear(tex4, uv, uv_da, bidx, wrap, max_mip_level)


def _wrap_index(i: Tensor, n: int, wrap: str) -> Tensor:
    """Integer-valued float indices -> int64 indices in ``[0, n)`` (mod ``n`` or clamped)."""
    i = torch.remainder(i, n) if wrap == "repeat" else i.clamp(0, n - 1)
    return i.long()


def _gather(tex4: Tensor, bidx: Tensor | None, rows: Tensor, cols: Tensor) -> Tensor:
    """``tex4[bidx, rows, cols, :]`` as one flat gather: ``(M, C)``."""
    _, h, w, c = tex4.shape
    flat = rows * w + cols
    if bidx is not None:
        flat = flat + bidx * (h * w)
    return tex4.reshape(-1, c)[flat]


def _nearest(tex4: Tensor, uv: Tensor, bidx: Tensor | None, wrap: str) -> Tensor:
    h, w = tex4.shape[1], tex4.shape[2]
    cf = torch.floor(uv[:, 0] * w)
    rf = torch.floor((1 - uv[:, 1]) * h)
    out = _gather(tex4, bidx, _wrap_index(rf, h, wrap), _wrap_index(cf, w, wrap))
    # floor has derivative zero: this adds exactly 0 and keeps uv in the graph, so uv.grad is zeros, not None.
    return out + (cf + rf).unsqueeze(1) * 0


def _bilinear(tex4: Tensor, uv: Tensor, bidx: Tensor | None, wrap: str) -> Tensor:
    h, w = tex4.shape[1], tex4.shape[2]
    x = uv[:, 0] * w - 0.5
    y = (1 - uv[:, 1]) * h - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    a = (x - x0).unsqueeze(1)
    b = (y - y0).unsqueeze(1)
    c0, c1 = _wrap_index(x0, w, wrap), _wrap_index(x0 + 1, w, wrap)
    r0, r1 = _wrap_index(y0, h, wrap), _wrap_index(y0 + 1, h, wrap)
    top = _gather(tex4, bidx, r0, c0) * (1 - a) + _gather(tex4, bidx, r0, c1) * a
    bottom = _gather(tex4, bidx, r1, c0) * (1 - a) + _gather(tex4, bidx, r1, c1) * a
    return top * (1 - b) + bottom * b


def _lod(uv_da: Tensor, h: int, w: int) -> Tensor:
    """``(M,)`` level of detail ``log2(rho)`` of level 0 (OpenGL 4.6 core spec, section 8.14.1)."""
    dudx, dudy, dvdx, dvdy = uv_da.unbind(-1)
    rho2_x = (dudx * w) ** 2 + (dvdx * h) ** 2
    rho2_y = (dudy * w) ** 2 + (dvdy * h) ** 2
    rho2 = torch.maximum(rho2_x, rho2_y).clamp_min(torch.finfo(uv_da.dtype).tiny)
    return 0.5 * torch.log2(rho2)


def _trilinear(
    tex4: Tensor, uv: Tensor, uv_da: Tensor, bidx: Tensor | None, wrap: str, max_mip_level: int | None
) -> Tensor:
    levels = mip_pyramid(tex4, max_mip_level)
    top = len(levels) - 1
    if top == 0:
        return _bilinear(tex4, uv, bidx, wrap)
    lod = _lod(uv_da, tex4.shape[1], tex4.shape[2]).clamp(0, top)
    k0 = torch.floor(lod).clamp(max=top - 1)
    t = lod - k0  # in [0, 1]; t = 1 at lod = top
    k0 = k0.long()
    out = uv.new_zeros(uv.shape[0], tex4.shape[-1])
    for k, level in enumerate(levels):
        # each sample touches levels k0 and k0 + 1, even with weight 0 there, so that t gets its gradient
        idx = torch.nonzero((k0 == k) | (k0 + 1 == k)).squeeze(1)
        if idx.numel() == 0:
            continue
        weight = torch.where(k0[idx] == k, 1 - t[idx], t[idx]).unsqueeze(1)
        sub = None if bidx is None else bidx[idx]
        out = out.index_add(0, idx, _bilinear(level, uv[idx], sub, wrap) * weight)
    return out


def _downsample(t: Tensor) -> Tensor:
    """One ceil-halving 2x2 box step of ``(..., h, w, C)`` with edge-aware counts (see ``mip_pyramid``)."""
    *lead, h, w, c = t.shape
    ph, pw = h % 2, w % 2
    padded = pad(t, (0, 0, 0, pw, 0, ph))
    h2, w2 = (h + ph) // 2, (w + pw) // 2
    sums = padded.reshape(*lead, h2, 2, w2, 2, c).sum(dim=(-4, -2))
    if ph == 0 and pw == 0:
        return sums * 0.25
    ones = pad(t.new_ones(h, w), (0, pw, 0, ph))
    counts = ones.reshape(h2, 2, w2, 2).sum(dim=(1, 3)).unsqueeze(-1)
    return sums / counts
