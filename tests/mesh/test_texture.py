"""Texture sampling: filters, wrapping, mipmaps, materials, gradients and a small inverse problem."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.mesh.texture import mip_pyramid, texture, texture_by_material

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _centre_uv(r: float, c: float, h: int, w: int) -> tuple[float, float]:
    """UV of continuous texel coordinates (row r, col c): the inverse of x = u*W - 0.5, y = (1-v)*H - 0.5."""
    return (c + 0.5) / w, 1.0 - (r + 0.5) / h


def _smooth_uv(n: int, h: int, w: int, g: torch.Generator, lo: float = -1.0, hi: float = 2.0) -> torch.Tensor:
    """(n, 2) UVs whose texel coordinates keep >= 0.2 texel away from texel centres (bilinear kinks)."""
    cols = torch.randint(int(lo * w), int(hi * w), (n,), generator=g).to(DT)
    rows = torch.randint(int(lo * h), int(hi * h), (n,), generator=g).to(DT)
    cols = cols + 0.2 + 0.6 * torch.rand(n, generator=g, dtype=DT)
    rows = rows + 0.2 + 0.6 * torch.rand(n, generator=g, dtype=DT)
    return torch.stack([(cols + 0.5) / w, 1.0 - (rows + 0.5) / h], dim=-1)


def _brute_bilinear(tex: torch.Tensor, u: float, v: float, wrap: str) -> torch.Tensor:
    """Plain-Python bilinear sample of an (H, W, C) texture at one UV."""
    h, w = tex.shape[0], tex.shape[1]
    x, y = u * w - 0.5, (1.0 - v) * h - 0.5
    x0, y0 = math.floor(x), math.floor(y)
    a, b = x - x0, y - y0

    def idx(i: int, n: int) -> int:
        return i % n if wrap == "repeat" else min(max(i, 0), n - 1)

    out = torch.zeros(tex.shape[2], dtype=tex.dtype)
    for dr, wr in ((0, 1 - b), (1, b)):
        for dc, wc in ((0, 1 - a), (1, a)):
            out += wr * wc * tex[idx(y0 + dr, h), idx(x0 + dc, w)]
    return out


def _box_level(tex: torch.Tensor, k: int) -> torch.Tensor:
    """Mip level k of an (H, W, C) power-of-two texture by direct 2^k x 2^k block means."""
    h, w, c = tex.shape
    s = 2**k
    return tex.reshape(h // s, s, w // s, s, c).mean(dim=(1, 3))


def _iso_da(n: int, texels: float, h: int, w: int) -> torch.Tensor:
    """(1, n, 4) derivatives that span `texels` texels per pixel along both axes (lod = log2(texels))."""
    da = torch.tensor([texels / w, 0.0, 0.0, texels / h], dtype=DT)
    return da.expand(1, n, 4).clone()


def test_smoke() -> None:
    tex = torch.rand(4, 4, 3, generator=_gen())
    uv = torch.rand(2, 5, 5, 2, generator=_gen(1))
    for filt in ("nearest", "bilinear", "trilinear"):
        out = texture(tex, uv, torch.full((2, 5, 5, 4), 0.1), filter=filt)  # type: ignore[arg-type]
        assert out.shape == (2, 5, 5, 3) and out.dtype == torch.float32 and bool(torch.isfinite(out).all())


def test_shape() -> None:
    g = _gen()
    shared = torch.rand(6, 5, 3, dtype=DT, generator=g)
    batched = torch.rand(2, 6, 5, 3, dtype=DT, generator=g)
    uv_img = torch.rand(2, 4, 7, 2, dtype=DT, generator=g)
    uv_pts = torch.rand(2, 9, 2, dtype=DT, generator=g)
    for uv in (uv_img, uv_pts):
        da = torch.full((*uv.shape[:-1], 4), 0.3, dtype=DT)
        for filt in ("nearest", "bilinear", "trilinear"):
            for tex in (shared, batched, batched[:1]):
                out = texture(tex, uv, da, filter=filt)  # type: ignore[arg-type]
                assert out.shape == (*uv.shape[:-1], 3)
            # batched textures: item b samples texture b
            out = texture(batched, uv, da, filter=filt)  # type: ignore[arg-type]
            for b in range(2):
                ref = texture(batched[b], uv[b : b + 1], da[b : b + 1], filter=filt)  # type: ignore[arg-type]
                torch.testing.assert_close(out[b : b + 1], ref)
    assert texture(shared, uv_pts[:, :0]).shape == (2, 0, 3)


@pytest.mark.parametrize("filt", ["nearest", "bilinear"])
def test_texel_centres_are_exact(filt: str) -> None:
    h, w = 5, 7
    tex = torch.rand(h, w, 2, dtype=DT, generator=_gen())
    rr, cc = torch.meshgrid(torch.arange(h, dtype=DT), torch.arange(w, dtype=DT), indexing="ij")
    uv = torch.stack([(cc + 0.5) / w, 1 - (rr + 0.5) / h], dim=-1)[None]
    for wrap in ("repeat", "clamp"):
        out = texture(tex, uv, filter=filt, wrap=wrap)  # type: ignore[arg-type]
        torch.testing.assert_close(out[0], tex, atol=1e-12, rtol=0)


def test_bilinear_midpoint_wrap_and_clamp() -> None:
    h, w = 4, 6
    tex = torch.rand(h, w, 3, dtype=DT, generator=_gen())
    # midway between texels (1, 2) and (1, 3), and between (1, 2) and (2, 2)
    uv = torch.tensor([[_centre_uv(1, 2.5, h, w), _centre_uv(1.5, 2, h, w)]], dtype=DT)
    out = texture(tex, uv)[0]
    torch.testing.assert_close(out[0], (tex[1, 2] + tex[1, 3]) / 2)
    torch.testing.assert_close(out[1], (tex[1, 2] + tex[2, 2]) / 2)
    # v = 0 is the bottom row, v = 1 the top row (row 0)
    edge = torch.tensor([[_centre_uv(h - 1, 0, h, w), _centre_uv(0, 0, h, w)]], dtype=DT)
    torch.testing.assert_close(texture(tex, edge)[0], tex[[h - 1, 0], 0])
    # repeat: u + 1 and v - 2 equal u, v
    uv = torch.rand(1, 20, 2, dtype=DT, generator=_gen(1))
    shifted = uv + torch.tensor([1.0, -2.0], dtype=DT)
    for filt in ("nearest", "bilinear"):
        a = texture(tex, uv, filter=filt)  # type: ignore[arg-type]
        torch.testing.assert_close(texture(tex, shifted, filter=filt), a)  # type: ignore[arg-type]
    # repeat across the seam u = 0 = 1: blends the last and first columns
    seam = torch.tensor([[[0.0, _centre_uv(2, 0, h, w)[1]], [1.0, _centre_uv(2, 0, h, w)[1]]]], dtype=DT)
    want = (tex[2, 0] + tex[2, w - 1]) / 2
    out = texture(tex, seam, wrap="repeat")[0]
    torch.testing.assert_close(out, torch.stack([want, want]))
    # clamp: beyond the edges the edge texel extends
    far = torch.tensor([[[-0.7, _centre_uv(3, 0, h, w)[1]], [1.3, 2.5], [0.0, 1.0]]], dtype=DT)
    out = texture(tex, far, wrap="clamp")[0]
    torch.testing.assert_close(out, torch.stack([tex[3, 0], tex[0, w - 1], tex[0, 0]]))
    out = texture(tex, far, wrap="clamp", filter="nearest")[0]
    torch.testing.assert_close(out, torch.stack([tex[3, 0], tex[0, w - 1], tex[0, 0]]))


@pytest.mark.parametrize("wrap", ["repeat", "clamp"])
def test_matches_brute_force_loop(wrap: str) -> None:
    tex = torch.rand(5, 7, 3, dtype=DT, generator=_gen())
    uv = (torch.rand(1, 40, 2, dtype=DT, generator=_gen(1)) * 3) - 1
    out = texture(tex, uv, wrap=wrap)  # type: ignore[arg-type]
    for n in range(uv.shape[1]):
        ref = _brute_bilinear(tex, float(uv[0, n, 0]), float(uv[0, n, 1]), wrap)
        torch.testing.assert_close(out[0, n], ref)


def test_mip_pyramid_non_power_of_two() -> None:
    tex = torch.rand(5, 3, 2, dtype=DT, generator=_gen())
    levels = mip_pyramid(tex)
    assert [tuple(t.shape[:2]) for t in levels] == [(5, 3), (3, 2), (2, 1), (1, 1)]
    # edge-aware: the last row/column averages only existing texels; the 1x1 level of a 2-level chain
    torch.testing.assert_close(levels[1][2, 1], tex[4, 2])
    torch.testing.assert_close(levels[1][2, 0], tex[4, :2].mean(0))
    torch.testing.assert_close(levels[1][0, 1], tex[:2, 2].mean(0))
    assert len(mip_pyramid(tex, max_mip_level=1)) == 2


def test_trilinear_levels() -> None:
    h, w = 16, 8
    tex = torch.rand(h, w, 3, dtype=DT, generator=_gen())
    uv = torch.rand(1, 30, 2, dtype=DT, generator=_gen(1)) * 2 - 0.5
    bil = texture(tex, uv)
    # lod <= 0 (zero or tiny derivatives, or magnification) equals bilinear on level 0
    for da in (torch.zeros(1, 30, 4, dtype=DT), _iso_da(30, 1e-3, h, w), _iso_da(30, 1.0, h, w)):
        torch.testing.assert_close(texture(tex, uv, da, filter="trilinear"), bil)
    # exactly 2^k texels per pixel: bilinear on level k of an independently computed pyramid
    for k in range(4):
        want = texture(_box_level(tex, k), uv)
        torch.testing.assert_close(texture(tex, uv, _iso_da(30, 2.0**k, h, w), filter="trilinear"), want)
    # between levels: linear blend in lod
    for k, t in ((0, 0.25), (1, 0.5), (2, 0.9)):
        da = _iso_da(30, 2.0 ** (k + t), h, w)
        want = (1 - t) * texture(_box_level(tex, k), uv) + t * texture(_box_level(tex, k + 1), uv)
        torch.testing.assert_close(texture(tex, uv, da, filter="trilinear"), want)
    # the lod is the larger of the two screen axes; a mixed du/dy, dv/dx Jacobian has the same rho
    da = torch.tensor([0.0, 4.0 / w, 4.0 / h, 0.0], dtype=DT).expand(1, 30, 4)
    torch.testing.assert_close(texture(tex, uv, da, filter="trilinear"), texture(_box_level(tex, 2), uv))
    # beyond the coarsest level and max_mip_level clamp the lod
    torch.testing.assert_close(
        texture(tex, uv, _iso_da(30, 1e4, h, w), filter="trilinear"),
        tex.mean(dim=(0, 1)).expand(1, 30, 3),
    )
    got = texture(tex, uv, _iso_da(30, 8.0, h, w), filter="trilinear", max_mip_level=1)
    torch.testing.assert_close(got, texture(_box_level(tex, 1), uv))


@pytest.mark.parametrize("wrap", ["repeat", "clamp"])
def test_gradcheck(wrap: str) -> None:
    g = _gen(3)
    h, w = 4, 5
    tex = torch.rand(h, w, 2, dtype=DT, generator=g, requires_grad=True)
    uv = _smooth_uv(6, h, w, g, lo=-0.5 if wrap == "repeat" else 0.0, hi=1.5 if wrap == "repeat" else 0.7)
    uv = uv[None].requires_grad_(True)
    # random derivatives with lod in (0.2, 2.8) away from integers (kinks of the level selection)
    lod = torch.tensor([0.3, 0.6, 1.2, 1.5, 2.4, 2.7], dtype=DT)
    ang = torch.rand(6, generator=g, dtype=DT) * 2 * math.pi
    # screen x spans 2^lod texels, screen y 0.6 of that (unequal, away from the kink of the max)
    da = torch.stack([ang.cos() / w, -0.6 * ang.sin() / w, ang.sin() / h, 0.6 * ang.cos() / h], dim=-1)
    da = (da * (2.0**lod)[:, None])[None].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, u: texture(t, u, wrap=wrap), (tex, uv))  # type: ignore[arg-type]
    assert torch.autograd.gradcheck(
        lambda t, u, d: texture(t, u, d, filter="trilinear", wrap=wrap),  # type: ignore[arg-type]
        (tex, uv, da),
    )
    batched = torch.rand(2, h, w, 2, dtype=DT, generator=g, requires_grad=True)
    uv2 = torch.cat([uv, uv.flip(1)]).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, u: texture(t, u, wrap=wrap), (batched, uv2))  # type: ignore[arg-type]


def test_nearest_gradients() -> None:
    tex = torch.rand(3, 3, 1, dtype=DT, generator=_gen(), requires_grad=True)
    uv = torch.rand(1, 8, 2, dtype=DT, generator=_gen(1), requires_grad=True)
    texture(tex, uv, filter="nearest").sum().backward()
    assert uv.grad is not None and bool((uv.grad == 0).all())
    assert tex.grad is not None and float(tex.grad.sum()) == 8.0


def test_texture_by_material() -> None:
    g = _gen()
    maps = [
        torch.rand(4, 6, 3, dtype=DT, generator=g, requires_grad=True),
        torch.rand(8, 2, 3, dtype=DT, generator=g, requires_grad=True),
    ]
    uv = torch.rand(2, 5, 4, 2, dtype=DT, generator=g) * 2 - 0.5
    da = torch.rand(2, 5, 4, 4, dtype=DT, generator=g) * 0.5
    ids = torch.randint(-1, 2, (2, 5, 4), generator=g)
    ids[0, 0, :3] = torch.tensor([-1, 0, 1])
    for filt in ("nearest", "bilinear", "trilinear"):
        out = texture_by_material(maps, ids, uv, da, filter=filt, background=0.5)  # type: ignore[arg-type]
        assert out.shape == (2, 5, 4, 3)
        for k, m in enumerate(maps):
            ref = texture(m, uv, da, filter=filt)  # type: ignore[arg-type]
            torch.testing.assert_close(out[ids == k], ref[ids == k])
        assert bool((out[ids == -1] == 0.5).all())
    out = texture_by_material(maps, ids, uv, da, filter="trilinear")
    out.square().sum().backward()
    for m in maps:
        assert m.grad is not None and float(m.grad.abs().sum()) > 0
    # all background: no map is sampled
    empty = texture_by_material(maps, torch.full((2, 5, 4), -1), uv)
    assert bool((empty == 0).all())


def test_exception() -> None:
    tex = torch.rand(4, 4, 3)
    uv = torch.rand(2, 5, 2)
    da = torch.rand(2, 5, 4)
    with pytest.raises(TypeError, match="tex"):
        texture(tex.numpy(), uv)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tex"):
        texture(tex.long(), uv)
    with pytest.raises(ValueError, match="tex"):
        texture(tex[0], uv)
    with pytest.raises(ValueError, match="tex"):
        texture(torch.rand(3, 4, 4, 3), uv)
    with pytest.raises(ValueError, match="tex"):
        texture(torch.rand(0, 4, 3), uv)
    with pytest.raises(ValueError, match="uv"):
        texture(tex, torch.rand(2, 5, 3))
    with pytest.raises(ValueError, match="uv"):
        texture(tex, torch.rand(5, 2))
    with pytest.raises(TypeError, match="uv"):
        texture(tex, uv.double())
    with pytest.raises(ValueError, match="uv contains NaN"):
        texture(tex, uv.clone().index_fill_(1, torch.tensor([2]), float("nan")))
    with pytest.raises(ValueError, match="uv_da"):
        texture(tex, uv, filter="trilinear")
    with pytest.raises(ValueError, match="uv_da"):
        texture(tex, uv, da[:, :4], filter="trilinear")
    with pytest.raises(ValueError, match="uv_da contains NaN"):
        texture(tex, uv, da.clone().fill_(float("inf")), filter="trilinear")
    with pytest.raises(ValueError, match="filter"):
        texture(tex, uv, filter="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wrap"):
        texture(tex, uv, wrap="mirror")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_mip_level"):
        texture(tex, uv, da, filter="trilinear", max_mip_level=-1)
    with pytest.raises(ValueError, match="uv is on meta"):
        texture(tex, uv.to("meta"))
    maps = [tex, torch.rand(2, 8, 3)]
    ids = torch.zeros(2, 5, dtype=torch.int64)
    with pytest.raises(ValueError, match="maps"):
        texture_by_material([], ids, uv)
    with pytest.raises(ValueError, match=r"maps\[1\]"):
        texture_by_material([tex, torch.rand(2, 8, 4)], ids, uv)
    with pytest.raises(ValueError, match=r"maps\[1\]"):
        texture_by_material([tex, torch.rand(1, 2, 8, 3)], ids, uv)
    with pytest.raises(TypeError, match=r"maps\[1\]"):
        texture_by_material([tex, torch.rand(2, 8, 3, dtype=DT)], ids, uv)
    with pytest.raises(TypeError, match="material_id"):
        texture_by_material(maps, ids.float(), uv)
    with pytest.raises(ValueError, match="material_id"):
        texture_by_material(maps, ids[:, :3], uv)
    for bad in (2, -2):
        with pytest.raises(ValueError, match="material_id"):
            texture_by_material(maps, ids.clone().fill_(bad), uv)
    with pytest.raises(ValueError, match="uv_da"):
        texture_by_material(maps, ids, uv, filter="trilinear")


def test_inverse() -> None:
    """Recover an 8x8x3 texture from 2048 bilinear samples: max abs error < 1e-2 within 200 Adam steps."""
    g = _gen(7)
    target = torch.rand(8, 8, 3, generator=g)
    uv = torch.rand(1, 2048, 2, generator=g)
    obs = texture(target, uv)
    tex = torch.full((8, 8, 3), 0.5, requires_grad=True)
    opt = torch.optim.Adam([tex], lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=200)
    for _ in range(200):
        opt.zero_grad()
        loss = (texture(tex, uv) - obs).square().mean()
        loss.backward()
        opt.step()
        sched.step()
    assert float((tex.detach() - target).abs().max()) < 1e-2
