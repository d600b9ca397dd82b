"""The compiled interpolation and barycentrics against the torch reference: outputs and VJPs."""

from __future__ import annotations

import pytest
import torch

from gradiance.backends.numba import numba_available
from gradiance.backends.torch.rasterize import perspective_barycentrics
from gradiance.core.lights import AmbientLight, Lights, PointLights
from gradiance.core.meshes import Meshes
from gradiance.core.packing import gather_rows
from gradiance.mesh.pixel_shading import PixelSamples
from gradiance.mesh.render import RenderSettings, render
from tests.backends.scenes import bumpy_sphere, orbit

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")
if numba_available():
    from gradiance.backends.numba.interpolate import CompiledBarycentrics, CompiledInterpolate


def _samples(M: int, dtype: torch.dtype, backend: str, seed: int = 0) -> tuple[PixelSamples, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    faces = torch.randint(0, 40, (30, 3), generator=g)
    bary = torch.rand(M, 3, generator=g, dtype=dtype).requires_grad_()
    face = torch.randint(0, 30, (M,), generator=g)
    index = torch.arange(M)
    return PixelSamples(index, index * 0, face, bary, None, backend=backend), faces


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_interpolate_matches_reference(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    attrs = torch.randn(40, 5, generator=g, dtype=dtype).requires_grad_()
    cot = torch.randn(300, 5, generator=g, dtype=dtype)
    results = []
    for backend in ("torch", "numba"):
        px, faces = _samples(300, dtype, backend)
        out = px.interpolate(attrs, faces)
        results.append((out, *torch.autograd.grad(out, (attrs, px.bary), cot)))
    # a vertex sums ~20 products: float32 rounding in another order moves it by a few 1e-6
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-12}
    assert torch.equal(results[0][0], results[1][0])  # the same fused products, in the same order
    for ref, fast in zip(results[0][1:], results[1][1:], strict=True):
        torch.testing.assert_close(fast, ref, **tol)  # scatters add in another order


def test_gradcheck() -> None:
    g = torch.Generator().manual_seed(2)
    attrs = torch.randn(12, 2, generator=g, dtype=torch.float64).requires_grad_()
    rows = torch.randint(0, 12, (20, 3), generator=g)
    bary = torch.rand(20, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: CompiledInterpolate.apply(a, rows, b), (attrs, bary))
    hom = torch.randn(12, 3, generator=g, dtype=torch.float64)
    hom[:, 2] = hom[:, 2].abs() + 1.0
    corners = torch.stack([torch.randperm(12, generator=g)[:3] for _ in range(20)])
    u, v = torch.rand(20, generator=g, dtype=torch.float64), torch.rand(20, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda h: CompiledBarycentrics.apply(h, corners, u, v), (hom.requires_grad_(),)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_barycentrics_match_reference(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    hom = torch.randn(50, 3, generator=g, dtype=dtype) * 40
    hom[:, 2] = hom[:, 2].abs() + 1.0
    hom.requires_grad_()
    corners = torch.stack([torch.randperm(50, generator=g)[:3] for _ in range(400)])
    u, v = torch.rand(400, generator=g, dtype=dtype) * 60, torch.rand(400, generator=g, dtype=dtype) * 60
    cot = torch.randn(400, 3, generator=g, dtype=dtype)
    ref = perspective_barycentrics(gather_rows(hom, corners), u, v)
    fast = CompiledBarycentrics.apply(hom, corners, u, v)
    assert torch.equal(fast, ref)  # the same operations in the same order
    (v_ref,) = torch.autograd.grad(ref, hom, cot)
    (v_fast,) = torch.autograd.grad(fast, hom, cot)
    torch.testing.assert_close(v_fast, v_ref, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-6)


def test_render_matches_reference() -> None:
    # the whole hard render, Phong-lit, with the compiled stages against the torch ones
    mesh = bumpy_sphere(torch.float32)
    cams = orbit(2, 48, torch.float32)
    lights = Lights(
        AmbientLight(torch.full((3,), 0.3)),
        point=PointLights(torch.tensor([[0.0, 2.0, -3.0]]), torch.full((1, 3), 0.7)),
    )
    colors = torch.rand(mesh.verts.shape[0], 3, generator=torch.Generator().manual_seed(4))
    cot = torch.randn(2, 48, 55, 3, generator=torch.Generator().manual_seed(5))
    outs = []
    for backend in ("torch", "numba"):
        verts = mesh.verts.clone().requires_grad_()
        m = Meshes.single(verts, mesh.faces, vert_colors=colors)
        out = render(m, cams, lights, settings=RenderSettings(model="phong", backend=backend))
        (out.image * cot).sum().backward()
        outs.append((out, verts.grad))
    (ref, v_ref), (fast, v_fast) = outs
    assert torch.equal(fast.face_id, ref.face_id)
    torch.testing.assert_close(fast.image, ref.image, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(v_fast, v_ref, atol=1e-4, rtol=1e-4)
