"""Lights, materials and per-point shading: hand computations, brute-force loops, SH identities, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradiance.core.lights import (
    AmbientLight,
    DirectionalLights,
    Lights,
    PointLights,
    SHLighting,
    sh_basis,
)
from gradiance.core.materials import PhongMaterial
from gradiance.core.shading import shade

DT = torch.float64
MODELS = ("lambert", "phong", "blinn_phong")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scene(B: int = 2, N: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """Points near the origin with normals near +z, lights and camera above: every n.l, r.v, n.h > 0."""
    g = _gen(seed)
    return {
        "points": 0.3 * torch.rand(B, N, 3, dtype=DT, generator=g) - 0.15,
        "normals": torch.tensor([0.0, 0.0, 1.0], dtype=DT)
        + 0.2 * torch.rand(B, N, 3, dtype=DT, generator=g)
        - 0.1,
        "albedo": 0.2 + 0.8 * torch.rand(B, N, 3, dtype=DT, generator=g),
        "view_origins": torch.tensor([0.1, -0.1, 4.0], dtype=DT)
        + 0.2 * torch.rand(B, 3, dtype=DT, generator=g),
        "dir_directions": torch.tensor([[0.2, 0.1, 1.0], [-0.1, 0.3, 1.0]], dtype=DT).expand(B, 2, 3).clone(),
        "dir_colors": 0.5 + torch.rand(B, 2, 3, dtype=DT, generator=g),
        "pt_positions": torch.tensor([[0.5, -0.3, 3.0], [-0.4, 0.2, 2.5]], dtype=DT).expand(B, 2, 3).clone(),
        "pt_colors": 0.5 + torch.rand(B, 2, 3, dtype=DT, generator=g),
        "pt_attenuation": torch.tensor([[1.0, 0.2, 0.05], [0.5, 0.1, 0.1]], dtype=DT).expand(B, 2, 3).clone(),
        "sh": 0.3 * torch.randn(B, 9, 3, dtype=DT, generator=g),
        "ambient": 0.1 * torch.rand(B, 3, dtype=DT, generator=g),
        "specular_color": 0.2 + 0.3 * torch.rand(B, 3, dtype=DT, generator=g),
        "shininess": torch.tensor([5.0, 12.0], dtype=DT)[:B],
    }


def _lights(
    s: dict[str, torch.Tensor], parts: tuple[str, ...] = ("ambient", "directional", "point", "sh")
) -> Lights:
    return Lights(
        ambient=AmbientLight(s["ambient"]) if "ambient" in parts else None,
        directional=DirectionalLights(s["dir_directions"], s["dir_colors"])
        if "directional" in parts
        else None,
        point=PointLights(s["pt_positions"], s["pt_colors"], s["pt_attenuation"])
        if "point" in parts
        else None,
        sh=SHLighting(s["sh"]) if "sh" in parts else None,
    )


def _shade(
    s: dict[str, torch.Tensor], model: str, parts: tuple[str, ...] = ("ambient", "directional", "point", "sh")
) -> torch.Tensor:
    material = PhongMaterial(s["specular_color"], s["shininess"])
    return shade(
        s["points"], s["normals"], s["albedo"], s["view_origins"], _lights(s, parts), material, model
    )


def _fibonacci_sphere(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=DT) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (3 - math.sqrt(5)) * i
    r = (1 - z * z).sqrt()
    return torch.stack([r * phi.cos(), r * phi.sin(), z], -1)


# -------------------------------------------------------------------------------------------- basics
def test_smoke() -> None:
    lights = Lights(
        AmbientLight(torch.full((3,), 0.1)),
        DirectionalLights(torch.tensor([[0.0, 0.0, 1.0]]), torch.ones(1, 3)),
    )
    out = shade(
        torch.zeros(1, 4, 4, 3),
        torch.tensor([0.0, 0.0, 1.0]).expand(1, 4, 4, 3),
        torch.ones(1, 4, 4, 3),
        None,
        lights,
    )
    assert out.shape == (1, 4, 4, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full((1, 4, 4, 3), 1.1))


def test_shape() -> None:
    s = _scene(B=2, N=6)
    for model in MODELS:
        out = _shade(s, model)
        assert out.shape == (2, 6, 3)
    # middle dims (H, W) and (V,) and none
    hw = {k: v.reshape(2, 2, 3, 3) if k in ("points", "normals", "albedo") else v for k, v in s.items()}
    torch.testing.assert_close(_shade(hw, "phong"), _shade(s, "phong").reshape(2, 2, 3, 3))
    flat = {k: v[:, 0] if k in ("points", "normals", "albedo") else v for k, v in s.items()}
    torch.testing.assert_close(_shade(flat, "blinn_phong"), _shade(s, "blinn_phong")[:, 0])
    # batch 1 points against a batch of 2 lights, and batch 1 lights against 2 point sets
    one = {k: v[:1] if k in ("points", "normals", "albedo") else v for k, v in s.items()}
    out = _shade(one, "phong")
    assert out.shape == (2, 6, 3)
    second = {k: v[:1] if k in ("points", "normals", "albedo") else v[1:] for k, v in s.items()}
    torch.testing.assert_close(out[1], _shade(second, "phong")[0])
    shared = {k: v[:1] for k, v in s.items()}
    shared.update({k: s[k] for k in ("points", "normals", "albedo", "view_origins")})
    out2 = _shade(shared, "phong")
    assert out2.shape == (2, 6, 3)
    torch.testing.assert_close(out2[0], _shade({k: v[:1] for k, v in s.items()}, "phong")[0])
    # unbatched light inputs get a batch of 1; fields broadcast to a common batch inside one light
    d = DirectionalLights(torch.ones(3, 3), torch.ones(2, 3, 3))
    assert d.directions.shape == (2, 3, 3) and d.batch_size == 2
    assert Lights(ambient=AmbientLight(torch.ones(3)), directional=d).batch_size == 2
    assert Lights().batch_size == 1
    m = PhongMaterial(0.5, torch.tensor([1.0, 2.0, 3.0]))
    assert m.specular_color_t.shape == (3, 3) and m.shininess_t.shape == (3,)
    default = PhongMaterial()
    torch.testing.assert_close(default.specular_color_t, torch.full((1, 3), 0.2))
    assert default.shininess_t.tolist() == [32.0] and default.shininess_t.dtype == torch.float32
    # .to casts every tensor
    lights64 = _lights({k: v.float() for k, v in s.items()}).to(dtype=DT)
    assert all(t.dtype == DT for t in lights64.tensors().values()) and len(lights64.tensors()) == 7
    assert PhongMaterial().to(dtype=DT).shininess_t.dtype == DT
    # SH shapes
    for degree in range(4):
        assert sh_basis(torch.randn(2, 5, 3), degree).shape == (2, 5, (degree + 1) ** 2)
    sh = SHLighting(torch.randn(16, 3))
    assert sh.degree == 3 and sh.radiance(torch.randn(4, 7, 8, 3)).shape == (4, 7, 8, 3)
    assert SHLighting(torch.randn(9, 3)).irradiance(torch.randn(1, 5, 3)).shape == (1, 5, 3)


# ----------------------------------------------------------------------------- hand computations
def test_lambert_hand_computation() -> None:
    angle = math.radians(60)
    # an unnormalised direction: only its direction matters
    light = DirectionalLights(
        torch.tensor([[3 * math.sin(angle), 0.0, 3 * math.cos(angle)]], dtype=DT),
        torch.tensor([[2.0, 2.0, 2.0]], dtype=DT),
    )
    albedo = torch.tensor([[[0.8, 0.6, 0.4]]], dtype=DT)
    normals = torch.tensor([[[0.0, 0.0, 5.0]]], dtype=DT)  # normalised inside
    out = shade(torch.zeros(1, 1, 3, dtype=DT), normals, albedo, None, light)
    torch.testing.assert_close(out, albedo * 2.0 * 0.5)  # cos 60 = 0.5
    amb = shade(
        torch.zeros(1, 1, 3, dtype=DT),
        normals,
        albedo,
        None,
        Lights(AmbientLight(torch.tensor([0.1, 0.2, 0.3], dtype=DT)), light),
    )
    torch.testing.assert_close(amb, albedo * (1.0 + torch.tensor([0.1, 0.2, 0.3], dtype=DT)))


def test_back_facing_light_gives_zero() -> None:
    normals = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=DT)
    pts, albedo = torch.zeros(1, 1, 3, dtype=DT), torch.ones(1, 1, 3, dtype=DT)
    view = torch.tensor([[0.0, 0.0, -3.0]], dtype=DT)  # camera behind as well: r.v would be positive
    lights = Lights(
        directional=DirectionalLights(torch.tensor([[0.3, 0.0, -1.0]], dtype=DT), torch.ones(1, 3, dtype=DT)),
        point=PointLights(torch.tensor([[0.0, 0.5, -2.0]], dtype=DT), torch.ones(1, 3, dtype=DT)),
    )
    for model in MODELS:
        out = shade(pts, normals, albedo, view, lights, PhongMaterial(1.0, 1.0), model)
        assert out.abs().max().item() == 0.0


def _brute_force(s: dict[str, torch.Tensor], model: str, b: int, i: int) -> list[float]:
    """Radiance of point ``i`` of scene ``b`` with directional and point lights, in plain Python."""

    def unit(v: list[float]) -> list[float]:
        n = math.sqrt(sum(c * c for c in v))
        return [c / n for c in v]

    def dot(u: list[float], v: list[float]) -> float:
        return sum(a * c for a, c in zip(u, v, strict=True))

    p, n = s["points"][b, i].tolist(), unit(s["normals"][b, i].tolist())
    a, ks = s["albedo"][b, i].tolist(), s["specular_color"][b].tolist()
    v = unit([o - q for o, q in zip(s["view_origins"][b].tolist(), p, strict=True)])
    shin = s["shininess"][b].item()
    incoming = []  # (direction to the light, colour times attenuation)
    for d, c in zip(s["dir_directions"][b].tolist(), s["dir_colors"][b].tolist(), strict=True):
        incoming.append((unit(d), c))
    for q, c, (c0, c1, c2) in zip(
        *(s[k][b].tolist() for k in ("pt_positions", "pt_colors", "pt_attenuation")), strict=True
    ):
        to = [qq - pp for qq, pp in zip(q, p, strict=True)]
        dist = math.sqrt(dot(to, to))
        incoming.append((unit(to), [cc / (c0 + c1 * dist + c2 * dist * dist) for cc in c]))
    out = [s["ambient"][b, k].item() * a[k] for k in range(3)]
    for ldir, c in incoming:
        cos = dot(n, ldir)
        if cos <= 0:
            continue
        spec = 0.0
        if model == "phong":
            r = [2 * cos * nn - ll for nn, ll in zip(n, ldir, strict=True)]
            spec = max(dot(r, v), 0.0) ** shin
        elif model == "blinn_phong":
            h = unit([ll + vv for ll, vv in zip(ldir, v, strict=True)])
            spec = max(dot(n, h), 0.0) ** shin
        for k in range(3):
            out[k] += a[k] * c[k] * cos + ks[k] * c[k] * spec
    return out


@pytest.mark.parametrize("model", MODELS)
def test_matches_brute_force(model: str) -> None:
    g = _gen(3)
    s = _scene(B=2, N=6, seed=3)
    # spread the normals and camera so that some lights are behind and some highlights vanish
    s["normals"] = torch.randn(2, 6, 3, dtype=DT, generator=g)
    s["view_origins"] = 3 * torch.randn(2, 3, dtype=DT, generator=g)
    s["pt_positions"] = 2 * torch.randn(2, 2, 3, dtype=DT, generator=g)
    out = _shade(s, model, ("ambient", "directional", "point"))
    expected = torch.tensor([[_brute_force(s, model, b, i) for i in range(6)] for b in range(2)], dtype=DT)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("model", MODELS)
def test_per_point_view_origins_match_per_batch_ones(model: str) -> None:
    s = _scene(B=2, N=5, seed=4)
    batch = _shade(s, model)
    s["view_origins"] = s["view_origins"][:, None].expand(2, 5, 3).clone()
    torch.testing.assert_close(_shade(s, model), batch)


def test_point_light_attenuation() -> None:
    normals = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]], dtype=DT)
    pts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 0.5]]], dtype=DT)
    albedo = torch.full((1, 2, 3), 0.5, dtype=DT)
    pos = torch.tensor([[[0.0, 0.0, 2.0]]], dtype=DT)
    color = torch.tensor([[[1.0, 2.0, 4.0]]], dtype=DT)
    # straight above the first point at distance 2: 1 / (c0 + 2 c1 + 4 c2)
    att = torch.tensor([[[0.5, 0.25, 0.125]]], dtype=DT)
    out = shade(pts, normals, albedo, None, PointLights(pos, color, att))
    torch.testing.assert_close(out[0, 0], 0.5 * color[0, 0] / (0.5 + 0.5 + 0.5))
    # second point: distance 1.5 * sqrt(... ) with cos = 1.5 / d
    d = math.sqrt(1 + 1 + 1.5**2)
    torch.testing.assert_close(out[0, 1], 0.5 * color[0, 0] * (1.5 / d) / (0.5 + 0.25 * d + 0.125 * d * d))
    # default: no falloff, the same at any distance along the normal
    far = shade(pts[:, :1], normals[:, :1], albedo[:, :1], None, PointLights(pos * 10, color))
    torch.testing.assert_close(far[0, 0], 0.5 * color[0, 0])


def test_multiple_lights_add_linearly() -> None:
    s = _scene(B=2, N=7, seed=5)
    s["normals"] = torch.randn(2, 7, 3, dtype=DT, generator=_gen(6))
    parts = ("ambient", "directional", "point", "sh")
    for model in MODELS:
        total = _shade(s, model, parts)
        torch.testing.assert_close(total, sum(_shade(s, model, (p,)) for p in parts))
    # and within one DirectionalLights, L lights add up
    d = DirectionalLights(s["dir_directions"], s["dir_colors"])
    one = [
        DirectionalLights(s["dir_directions"][:, k : k + 1], s["dir_colors"][:, k : k + 1]) for k in range(2)
    ]
    args = (s["points"], s["normals"], s["albedo"], s["view_origins"])
    m = PhongMaterial(s["specular_color"], s["shininess"])
    torch.testing.assert_close(shade(*args, d, m, "phong"), sum(shade(*args, x, m, "phong") for x in one))


# ------------------------------------------------------------------------------ spherical harmonics
def test_sh_basis_orthonormal() -> None:
    # Gauss-Legendre in cos(theta) times uniform phi integrates products of degree <= 6 exactly
    t, w = np.polynomial.legendre.leggauss(8)
    n_phi = 16
    phi = torch.arange(n_phi, dtype=DT) * 2 * math.pi / n_phi
    z = torch.tensor(t, dtype=DT)[:, None].expand(8, n_phi)
    r = (1 - z * z).sqrt()
    dirs = torch.stack([r * phi.cos(), r * phi.sin(), z], -1).reshape(-1, 3)
    weights = (torch.tensor(w, dtype=DT)[:, None] * (2 * math.pi / n_phi)).expand(8, n_phi).reshape(-1)
    Y = sh_basis(dirs, 3)
    gram = Y.T @ (Y * weights[:, None])
    torch.testing.assert_close(gram, torch.eye(16, dtype=DT), atol=1e-12, rtol=0)
    # the listed closed forms: Y_1,-1 ~ y, Y_1,0 ~ z, Y_1,1 ~ x (no Condon-Shortley phase)
    Y1 = sh_basis(torch.eye(3, dtype=DT), 1)[:, 1:]
    torch.testing.assert_close(
        Y1, math.sqrt(3 / (4 * math.pi)) * torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=DT)
    )


def test_sh_constant_environment() -> None:
    c = torch.tensor([0.3, 0.6, 0.9], dtype=DT)
    coeffs = torch.zeros(9, 3, dtype=DT)
    coeffs[0] = 2 * math.sqrt(math.pi) * c  # projection of L = c onto Y_00
    sh = SHLighting(coeffs)
    n = torch.randn(1, 50, 3, dtype=DT, generator=_gen(1))
    torch.testing.assert_close(sh.radiance(n), c.expand(1, 50, 3))
    torch.testing.assert_close(sh.irradiance(n), math.pi * c.expand(1, 50, 3))
    out = shade(torch.zeros(1, 50, 3, dtype=DT), n, torch.ones(1, 50, 3, dtype=DT), None, sh)
    torch.testing.assert_close(out, c.expand(1, 50, 3))  # a white Lambertian surface reflects c


def test_sh_lobe() -> None:
    # a delta of unit power in direction d has L_lm = Y_lm(d); by the addition theorem
    # E(n) = sum_l A_l (2l + 1) / (4 pi) P_l(n . d) = 1/4 + t/2 + 5/32 (3 t^2 - 1), close to max(t, 0)
    d = torch.tensor([0.3, -0.4, 0.8], dtype=DT)
    coeffs = sh_basis(d, 2)[:, None].expand(9, 3)
    n = _fibonacci_sphere(500)[None]
    E = SHLighting(coeffs).irradiance(n)[0, :, 0]
    t = n[0] @ (d / d.norm())
    torch.testing.assert_close(E, 0.25 + t / 2 + 5 / 32 * (3 * t * t - 1))
    assert (E - t.clamp_min(0)).abs().max().item() < 0.1
    assert E.argmax() == t.argmax()  # brightest where the normal faces the lobe


def test_sh_degree_two_and_three_agree() -> None:
    s = _scene(B=2, N=8, seed=7)
    s["normals"] = torch.randn(2, 8, 3, dtype=DT, generator=_gen(8))
    c16 = torch.cat([s["sh"], torch.zeros(2, 7, 3, dtype=DT)], 1)
    args = (s["points"], s["normals"], s["albedo"], None)
    torch.testing.assert_close(shade(*args, SHLighting(s["sh"])), shade(*args, SHLighting(c16)))
    # A_3 = 0: degree-3 terms change the radiance of the environment, not the diffuse irradiance
    c16[:, 9:] = torch.randn(2, 7, 3, dtype=DT, generator=_gen(9))
    torch.testing.assert_close(shade(*args, SHLighting(s["sh"])), shade(*args, SHLighting(c16)))
    assert (
        SHLighting(c16).radiance(s["normals"]) - SHLighting(s["sh"]).radiance(s["normals"])
    ).abs().max() > 1e-3


# -------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("model", MODELS)
def test_gradcheck(model: str) -> None:
    s = _scene(B=2, N=2, seed=11)
    keys = list(s)
    base = _shade(s, model)
    assert base.abs().min() > 0  # sanity: the terms are active
    if model != "lambert":
        assert (base - _shade(s, "lambert")).min() > 0  # highlights everywhere

    def fn(*values: torch.Tensor) -> torch.Tensor:
        return _shade(dict(zip(keys, values, strict=True)), model)

    inputs = tuple(v.detach().requires_grad_(True) for v in s.values())
    assert torch.autograd.gradcheck(fn, inputs)


def test_gradcheck_sh16() -> None:
    g = _gen(12)
    n = torch.randn(2, 4, 3, dtype=DT, generator=g, requires_grad=True)
    c = torch.randn(2, 16, 3, dtype=DT, generator=g, requires_grad=True)
    a = torch.rand(2, 4, 3, dtype=DT, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda n, c, a: shade(torch.zeros_like(n), n, a, None, SHLighting(c)), (n, c, a)
    )
    assert torch.autograd.gradcheck(lambda d, c: SHLighting(c).radiance(d), (n, c))


def test_zero_normals_give_finite_gradients() -> None:
    s = _scene(B=2, N=4, seed=13)
    s["normals"] = s["normals"].clone()
    s["normals"][:, 1] = 0.0
    for model in MODELS:
        values = {k: v.detach().requires_grad_(True) for k, v in s.items()}
        out = _shade(values, model)
        torch.testing.assert_close(out[:, 1], values["ambient"] * values["albedo"][:, 1])
        out.sum().backward()
        unused = ("view_origins", "specular_color", "shininess") if model == "lambert" else ()
        for k, v in values.items():
            assert (v.grad is None) == (k in unused), k
            assert v.grad is None or bool(torch.isfinite(v.grad).all()), k
        grad = values["normals"].grad
        assert grad is not None and grad[:, 1].abs().max().item() == 0.0  # no orientation, no gradient


# ----------------------------------------------------------------------------------------- errors
def test_exception() -> None:
    s = _scene(B=2, N=3)
    P, Nn, A, V = s["points"], s["normals"], s["albedo"], s["view_origins"]
    light = DirectionalLights(s["dir_directions"], s["dir_colors"])
    ok = torch.ones(2, 3, dtype=DT)
    cases = [
        (TypeError, "color", lambda: AmbientLight([1.0, 1.0, 1.0])),  # type: ignore[arg-type]
        (ValueError, "color", lambda: AmbientLight(torch.ones(4))),
        (
            TypeError,
            "directions",
            lambda: DirectionalLights(torch.ones(1, 3, dtype=torch.int64), torch.ones(1, 3)),
        ),
        (ValueError, "colors", lambda: DirectionalLights(torch.ones(2, 3), torch.ones(3, 3))),
        (ValueError, "directions", lambda: DirectionalLights(torch.zeros(1, 3), torch.ones(1, 3))),
        (ValueError, "batch size", lambda: DirectionalLights(torch.ones(2, 1, 3), torch.ones(3, 1, 3))),
        (ValueError, "directions", lambda: DirectionalLights(torch.ones(3), torch.ones(1, 3))),
        (
            ValueError,
            "attenuation",
            lambda: PointLights(torch.ones(1, 3), torch.ones(1, 3), -torch.ones(1, 3)),
        ),
        (ValueError, "positions", lambda: PointLights(torch.full((1, 3), math.nan), torch.ones(1, 3))),
        (ValueError, "coefficients", lambda: SHLighting(torch.ones(10, 3))),
        (ValueError, "coefficients", lambda: SHLighting(torch.ones(9, 4))),
        (ValueError, "degree", lambda: sh_basis(torch.ones(3), 4)),
        (ValueError, "directions", lambda: sh_basis(torch.ones(5, 2), 2)),
        (ValueError, "normals", lambda: SHLighting(torch.ones(9, 3)).irradiance(torch.ones(3))),
        (ValueError, "shininess", lambda: PhongMaterial(0.2, 0.0)),
        (ValueError, "shininess", lambda: PhongMaterial(0.2, torch.tensor([1.0, -1.0]))),
        (ValueError, "specular_color", lambda: PhongMaterial(torch.ones(4))),
        (TypeError, "ambient", lambda: Lights(ambient=light)),  # type: ignore[arg-type]
        (ValueError, "batch size", lambda: Lights(AmbientLight(torch.ones(3, 3)), light)),
        (ValueError, "points", lambda: shade(torch.ones(3, dtype=DT), Nn, A, None, light)),
        (ValueError, "normals", lambda: shade(P, Nn[:, :2], A, None, light)),
        (ValueError, "albedo", lambda: shade(P, Nn, torch.ones(2, 3, 4, dtype=DT), None, light)),
        (TypeError, "normals", lambda: shade(P, Nn.long(), A, None, light)),
        (ValueError, "normals", lambda: shade(P, torch.ones(3, 3, 3, dtype=DT), A, None, light)),
        (
            ValueError,
            "lights",
            lambda: shade(P, Nn, A, None, Lights(AmbientLight(torch.ones(3, 3, dtype=DT)))),
        ),
        (ValueError, "model", lambda: shade(P, Nn, A, V, light, model="gouraud")),
        (ValueError, "view_origins", lambda: shade(P, Nn, A, None, light, model="phong")),
        (ValueError, "view_origins", lambda: shade(P, Nn, A, ok[:, :2], light, model="phong")),
        (ValueError, "view_origins", lambda: shade(P, Nn, A, torch.ones(2, 4, 3), light, model="phong")),
        (TypeError, "lights", lambda: shade(P, Nn, A, V, "sun")),  # type: ignore[arg-type]
        (TypeError, "material", lambda: shade(P, Nn, A, V, light, 0.5, "phong")),  # type: ignore[arg-type]
        (
            ValueError,
            "material",
            lambda: shade(P, Nn, A, V, light, PhongMaterial(0.2, torch.ones(3, dtype=DT)), "phong"),
        ),
        (ValueError, "normals is on meta", lambda: shade(P, Nn.to("meta"), A, None, light)),
    ]
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()


# ---------------------------------------------------------------------------------- optimisation
def test_inverse() -> None:
    """Recover a directional light's direction (to 0.1 degrees) and colour (to 1e-3) from a Lambert image,
    and 9 SH coefficients (to 1e-3) from an SH-lit image, with Adam."""
    g = _gen(21)
    n = torch.randn(1, 400, 3, generator=g)
    albedo = 0.2 + 0.8 * torch.rand(1, 400, 3, generator=g)
    pts = torch.zeros(1, 400, 3)
    true_dir, true_col = torch.tensor([[0.3, -0.5, 0.8]]), torch.tensor([[0.9, 0.6, 0.3]])
    target = shade(pts, n, albedo, None, DirectionalLights(true_dir, true_col))
    d = torch.tensor([[-0.5, 0.4, 0.7]], requires_grad=True)
    c = torch.full((1, 3), 0.5, requires_grad=True)
    opt = torch.optim.Adam([d, c], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = (shade(pts, n, albedo, None, DirectionalLights(d, c)) - target).square().mean()
        loss.backward()
        opt.step()
    cos = torch.nn.functional.cosine_similarity(d.detach(), true_dir).clamp(max=1.0)
    assert math.degrees(math.acos(cos.item())) < 0.1
    assert (c.detach() - true_col).abs().max().item() < 1e-3

    true_sh = 0.3 * torch.randn(9, 3, generator=g)
    target = shade(pts, n, albedo, None, SHLighting(true_sh))
    sh = torch.zeros(9, 3, requires_grad=True)
    opt = torch.optim.Adam([sh], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = (shade(pts, n, albedo, None, SHLighting(sh)) - target).square().mean()
        loss.backward()
        opt.step()
    assert (sh.detach() - true_sh).abs().max().item() < 1e-3
