"""SoftRas's compiled per-pixel kernels against the torch reference (the pair path of ``softras.py``).

In float64 the two compute the same function up to the order of float sums, so outputs and gradients
must agree to ~1e-10; in float32 they agree to the reference's rounding."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch.nn.functional import softplus

from gradiance.backends.numba import numba_available
from gradiance.core.cameras import Cameras
from gradiance.core.lights import AmbientLight, DirectionalLights, Lights, PointLights
from gradiance.core.materials import PhongMaterial
from gradiance.core.meshes import Meshes
from gradiance.mesh import softras_compiled
from gradiance.mesh.instances import FaceInstances
from gradiance.mesh.pixel_shading import vertex_normals
from gradiance.mesh.render import RenderSettings, render, render_silhouette
from gradiance.mesh.softras import (
    SoftRasSettings,
    aggregate_alpha,
    colour_pairs,
    soft_pairs,
    surface_rows,
)
from tests.backends.scenes import bumpy_sphere, orbit

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")
if numba_available():
    from gradiance.backends.numba.soft_aggregate import soft_log_transmit
    from gradiance.backends.numba.soft_weights import PairConstants, pair_weights

DT = torch.float64
SOFT = SoftRasSettings(sigma=3e-4, gamma=3e-3)


def _geometry(mesh: Meshes, cams: Cameras, s: SoftRasSettings = SOFT):  # type: ignore[no-untyped-def]
    inst = FaceInstances.build(mesh, cams)
    compiled = softras_compiled.compiled_geometry(inst, cams, s)
    assert compiled is not None
    return inst, compiled[0], compiled[1]


def test_log_transmit_matches_the_pairs() -> None:
    verts = bumpy_sphere(DT).verts.clone().requires_grad_()
    mesh, cams = bumpy_sphere(DT).with_verts(verts), orbit(2, 30, DT)
    H, W = cams.image_size
    inst, geo, _ = _geometry(mesh, cams)
    fast = soft_log_transmit(geo)[0]
    pairs = soft_pairs(inst, cams, SOFT, surface="none", backend="torch")
    ref = torch.zeros(2 * H * W, dtype=DT).index_add(0, pairs.pixel, -softplus(pairs.logit))
    assert float(ref.detach().min()) < -1  # many pixels are covered
    torch.testing.assert_close(1 - fast.exp(), aggregate_alpha(pairs, 2 * H * W, "prod"))
    torch.testing.assert_close(fast, ref, atol=1e-10, rtol=1e-10)
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(0), dtype=DT)
    (g_fast,) = torch.autograd.grad((fast * cot).sum(), verts, retain_graph=True)
    (g_ref,) = torch.autograd.grad((ref * cot).sum(), verts)
    torch.testing.assert_close(g_fast, g_ref, atol=1e-9 * float(g_ref.abs().max()), rtol=1e-8)


def _patch() -> Meshes:
    """Forty faces of the bumpy sphere, for gradchecks (one input per corner coordinate)."""
    mesh = bumpy_sphere(DT)
    return Meshes.single(mesh.verts, mesh.faces[:40])


def test_log_transmit_gradcheck() -> None:
    mesh, cams = _patch(), orbit(1, 12, DT)
    _, geo, _ = _geometry(mesh, cams, SoftRasSettings(sigma=3e-3))
    tris = geo.tris.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: soft_log_transmit(replace(geo, tris=t))[0], (tris,), eps=1e-7, atol=1e-6
    )


def test_colour_candidates_equal_the_reference_selection() -> None:
    mesh, cams = bumpy_sphere(DT), orbit(2, 30, DT)
    H, W = cams.image_size
    inst, geo, owner = _geometry(mesh, cams)
    rgb_pairs = _compiled_colour_pairs(inst, geo, owner, cams)
    pairs = soft_pairs(inst, cams, SOFT, surface="none", backend="torch")
    keep = colour_pairs(pairs, 2 * H * W, cams.near_t, cams.far_t, SOFT, (inst, (H, W)))
    ref = set(zip(pairs.pixel[keep].tolist(), pairs.instance[keep].tolist(), strict=True))
    fast = set(zip(rgb_pairs.pixel.tolist(), owner[rgb_pairs.tri].tolist(), strict=True))
    assert len(ref) > 1000 and fast == ref


def _compiled_colour_pairs(inst, geo, owner, cams):  # type: ignore[no-untyped-def]
    from gradiance.backends.numba.soft_aggregate import ColourWeights, colour_candidates, soft_log_transmit

    near, far = (t[geo.tri_camera] for t in (cams.near_t, cams.far_t))
    rows = surface_rows(inst)
    weights = ColourWeights(rows[1].T[owner], rows[0].T[owner], far, far - near, SOFT.gamma,
                            SOFT.epsilon / SOFT.gamma, math.log(1 / SOFT.cutoff))  # fmt: skip
    floor = soft_log_transmit(geo, weights)[1]
    return colour_candidates(geo, weights, 1000, floor)[0]  # a small buffer: written in many parts


def test_pair_weights_gradcheck() -> None:
    mesh, cams = _patch(), orbit(1, 24, DT)
    inst, geo, owner = _geometry(mesh, cams, SoftRasSettings(sigma=3e-3, gamma=0.05))
    pairs = _compiled_colour_pairs(inst, geo, owner, cams)
    sel = torch.arange(0, pairs.pixel.shape[0], 5)
    assert sel.numel() > 10 and bool(pairs.inside[sel].any()) and not bool(pairs.inside[sel].all())
    fields = tuple(f[sel] for f in pairs)
    near, far = (t[geo.tri_camera] for t in (cams.near_t, cams.far_t))
    top = torch.full((geo.num_pixels,), float((far[0] - 2.6) / (far[0] - near[0]) / 0.05), dtype=DT)
    consts = PairConstants(owner, far, far - near, top, geo.image_size, geo.scale, 0.05)  # weights ~ D
    planes, z = (r.detach().clone().requires_grad_() for r in surface_rows(inst))
    tris = geo.tris.detach().clone().requires_grad_()

    def f(t: torch.Tensor, p: torch.Tensor, zz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pair_weights(t, p, zz, fields, consts)

    assert torch.autograd.gradcheck(f, (tris, planes, z), eps=1e-7, atol=1e-6)


def _lights(kind: str) -> Lights | None:
    if kind == "none":
        return None
    ambient = AmbientLight(torch.tensor([0.2, 0.25, 0.3], dtype=DT))
    point = PointLights(torch.tensor([[1.0, 2.0, -3.0], [-2.0, 0.5, -1.0]], dtype=DT),
                        torch.tensor([[0.6, 0.5, 0.4], [0.2, 0.3, 0.4]], dtype=DT))  # fmt: skip
    directional = DirectionalLights(
        torch.tensor([[0.3, -1.0, -0.5]], dtype=DT), torch.tensor([[0.3] * 3], dtype=DT)
    )
    if kind == "ambient+points":
        return Lights(ambient=ambient, point=point)
    return Lights(ambient=ambient, point=point, directional=directional)


def _render_both(
    mesh: Meshes,
    cams: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
    leaves: list[torch.Tensor],
) -> list[list[torch.Tensor]]:
    """``[image, alpha, *gradients of leaves]`` of the torch and the numba render of the same scene."""
    results = []
    for backend in ("torch", "numba"):
        out = render(
            mesh, cams, lights, material, method="softras", settings=replace(settings, backend=backend)
        )
        cot = torch.randn(out.image.shape, generator=torch.Generator().manual_seed(2), dtype=DT)
        loss = (out.image * cot).sum() + (out.alpha * cot[..., :1]).sum()
        results.append([out.image, out.alpha, *torch.autograd.grad(loss, leaves)])
    return results


def _assert_same(results: list[list[torch.Tensor]]) -> None:
    (ref, fast) = results
    assert (
        float(ref[1].detach().max()) > 0.99 and float(ref[1].detach().min()) < 0.01
    )  # covered and empty pixels
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9 * max(1.0, float(b.detach().abs().max())), rtol=1e-8)


@pytest.mark.parametrize(
    ("model", "lights", "two_sided", "colours"),
    [
        ("phong", "ambient+points", True, False),
        ("blinn_phong", "all", False, True),
        ("lambert", "all", True, True),
        ("phong", "none", True, True),
    ],
)
def test_render_matches_the_reference(model: str, lights: str, two_sided: bool, colours: bool) -> None:
    """Outputs and gradients with respect to vertices, vertex colours and the camera pose, over shading
    models, lights, two-sided lighting and albedo (the one-pass colour kernel)."""
    base = bumpy_sphere(DT)
    verts = base.verts.clone().requires_grad_()
    g = torch.Generator().manual_seed(1)
    colors = torch.rand(base.verts.shape, generator=g, dtype=DT).requires_grad_()
    mesh = Meshes.single(verts, base.faces, vert_colors=colors if colours else None)
    c = orbit(2, 24, DT)
    R, t = c.R.clone().requires_grad_(), c.t.clone().requires_grad_()
    cams = Cameras(R, t, c.focal_t, c.principal_t, c.image_size, c.near_t, c.far_t)
    material = PhongMaterial(specular_color=torch.tensor([0.5, 0.4, 0.3], dtype=DT), shininess=12.0)
    settings = RenderSettings(model=model, two_sided=two_sided, softras=SOFT, background=(0.1, 0.2, 0.3))
    leaves = [verts, R, t] + ([colors] if colours else [])
    light = _lights(lights)
    with_normals = replace(mesh, vert_normals=vertex_normals(mesh))
    compiled = softras_compiled.fused_shading(
        with_normals, cams, light, material, ("smooth", model, two_sided)
    )
    assert compiled is not None  # this scene runs the one-pass kernel
    _assert_same(_render_both(mesh, cams, light, material, settings, leaves))


def test_a_batch_of_meshes_each_with_its_camera() -> None:
    """Two meshes paired with two cameras (packed vertices and faces), vertex-coloured and lit."""
    a, b = bumpy_sphere(DT, seed=0), bumpy_sphere(DT, seed=1)
    verts = torch.cat([a.verts, 0.8 * b.verts]).clone().requires_grad_()
    n = a.verts.shape[0]
    colors = torch.rand(verts.shape, generator=torch.Generator().manual_seed(3), dtype=DT)
    mesh = Meshes.from_list([verts[:n], verts[n:]], [a.faces, b.faces], vert_colors=[colors[:n], colors[n:]])
    settings = RenderSettings(model="phong", softras=SOFT)
    _assert_same(_render_both(mesh, orbit(2, 24, DT), _lights("all"), None, settings, [verts]))


def test_scenes_outside_the_one_pass_kernel_shade_in_chunks() -> None:
    """Lights that need gradients, flat shading and textures take the chunked torch shading; the result is
    the reference's still (the chunks recompute in the backward pass)."""
    base = bumpy_sphere(DT)
    verts = base.verts.clone().requires_grad_()
    mesh, cams = base.with_verts(verts), orbit(2, 24, DT)
    position = torch.tensor([[1.0, 2.0, -3.0]], dtype=DT, requires_grad=True)
    lights = Lights(point=PointLights(position, torch.tensor([[0.8, 0.7, 0.6]], dtype=DT)))
    settings = RenderSettings(model="phong", softras=replace(SOFT, shading_chunk=500))
    style = ("smooth", "phong", True)
    with_normals = replace(mesh, vert_normals=vertex_normals(mesh))
    assert softras_compiled.fused_shading(with_normals, cams, lights, None, style) is None
    _assert_same(_render_both(mesh, cams, lights, None, settings, [verts, position]))
    flat = replace(settings, shading="flat")
    _assert_same(_render_both(mesh, cams, _lights("all"), None, flat, [verts]))


def test_faces_across_the_near_plane_take_the_pair_path() -> None:
    mesh = bumpy_sphere(DT)
    c = orbit(1, 20, DT, distance=1.0)
    cams = Cameras(c.R, c.t, c.focal_t, c.principal_t, c.image_size, 0.9, 5.0)
    inst = FaceInstances.build(mesh, cams)
    assert softras_compiled.compiled_geometry(inst, cams, SOFT) is None
    verts = mesh.verts.clone().requires_grad_()
    results = _render_both(
        mesh.with_verts(verts), cams, _lights("all"), None, RenderSettings(softras=SOFT), [verts]
    )
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)


def test_silhouette_only_matches_the_render() -> None:
    mesh, cams = bumpy_sphere(DT), orbit(2, 24, DT)
    settings = RenderSettings(softras=SOFT, backend="numba")
    alpha = render_silhouette(mesh, cams, "softras", settings)
    ref = render(mesh, cams, method="softras", settings=replace(settings, backend="torch")).alpha
    torch.testing.assert_close(alpha, ref, atol=1e-10, rtol=1e-10)


def test_float32_stays_close_to_float64() -> None:
    """The kernels sum in float64: float32 inputs give the float64 result to float32 rounding."""
    out = {}
    for dtype in (torch.float32, torch.float64):
        mesh, cams = bumpy_sphere(DT).to(dtype=dtype), orbit(1, 24, DT).to(dtype=dtype)
        lights = Lights(ambient=AmbientLight(torch.full((3,), 0.3, dtype=dtype)))
        out[dtype] = render(mesh, cams, lights, method="softras", settings=RenderSettings(softras=SOFT))
    for name in ("image", "alpha"):
        a, b = getattr(out[torch.float32], name), getattr(out[torch.float64], name)
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4)


def test_second_derivatives_raise_instead_of_vanishing() -> None:
    """The kernels' backward passes are not differentiable: asking them for a graph (second derivatives)
    raises, where torch's once_differentiable alone would let the kernel's part of a second derivative come
    out as zero whenever the incoming gradient is a constant (here the other term keeps the graph alive)."""
    mesh, cams = _patch(), orbit(1, 24, DT)
    _, geo, _ = _geometry(mesh, cams, SoftRasSettings(sigma=3e-3))
    tris = geo.tris.detach().clone().requires_grad_()
    loss = soft_log_transmit(replace(geo, tris=tris))[0].sum() + (tris**3).sum()
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(loss, tris, create_graph=True)
    torch.autograd.grad(loss, tris)  # first derivatives are fine
