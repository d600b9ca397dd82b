"""The compiled pair search of SoftRas and DIB-R against the torch reference: the same pairs."""

from __future__ import annotations

import pytest
import torch

from gradiance.backends.numba import numba_available
from gradiance.backends.torch import soft as torch_soft
from gradiance.backends.torch.rasterize import RasterBudgetError, clip_near
from gradiance.core.cameras import Cameras, look_at
from gradiance.core.packing import gather_rows
from gradiance.mesh.instances import FaceInstances
from gradiance.mesh.render import RenderSettings, render
from tests.backends.scenes import bumpy_sphere, orbit

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")
if numba_available():
    from gradiance.backends.numba import soft as numba_soft


def _screen(
    cams: Cameras, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inst = FaceInstances.build(bumpy_sphere(dtype), cams)
    near = gather_rows(cams.near_t, inst.camera)
    tris, _, owner = clip_near(inst.corner_hom().detach(), inst.corner_depth().detach(), near)
    return tris, owner, inst.camera


def _assert_same(a: torch_soft.NearPairs, b: torch_soft.NearPairs) -> None:
    assert a.pixel.numel() > 100
    for name, x, y in zip(a._fields, a, b, strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(dtype: torch.dtype) -> None:
    cams = orbit(2, 30, dtype)
    tris, owner, camera = _screen(cams, dtype)
    args = (tris, owner, camera, cams.image_size, 2.5)
    _assert_same(torch_soft.pairs_near(*args, 10**6), numba_soft.pairs_near(*args, 10**6))
    # a per-triangle radius, and a budget that splits the output into many parts
    radius = torch.linspace(0.0, 4.0, tris.shape[0], dtype=dtype)
    args = (tris, owner, camera, cams.image_size, radius)
    _assert_same(torch_soft.pairs_near(*args, 10**6), numba_soft.pairs_near(*args, 400))


def test_matches_reference_with_clipped_faces_and_skipped_pixels() -> None:
    # the camera inside the shell: faces split in two by the near plane keep one pair per pixel
    cams = look_at(torch.tensor([[0.0, 0.0, -0.9]]), image_size=(24, 20))
    cams = Cameras(cams.R, cams.t, cams.focal_t, cams.principal_t, cams.image_size, 0.3, 5.0)
    tris, owner, camera = _screen(cams)
    assert tris.shape[0] > owner.unique().numel()
    skip = torch.rand(24 * 20, generator=torch.Generator().manual_seed(0)) < 0.3
    for s in (None, skip):
        args = (tris, owner, camera, cams.image_size, 1.5, 10**6, s)
        _assert_same(torch_soft.pairs_near(*args), numba_soft.pairs_near(*args))


def test_exception() -> None:
    cams = orbit(1, 30, torch.float32)
    tris, owner, camera = _screen(cams)
    with pytest.raises(RasterBudgetError, match="max_pairs_per_chunk"):
        numba_soft.pairs_near(tris, owner, camera, cams.image_size, 40.0, 10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["softras", "dibr"])
def test_render_matches_reference(method: str, dtype: torch.dtype) -> None:
    """The whole render on either backend (softras on numba runs its per-pixel kernels, which sum in
    float64: against the float32 reference they differ by the reference's rounding)."""
    mesh = bumpy_sphere(dtype)
    cams = orbit(2, 32, dtype)
    cot = torch.randn(2, 32, 39, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)
    outs = []
    for backend in ("torch", "numba"):
        verts = mesh.verts.clone().requires_grad_()
        out = render(mesh.with_verts(verts), cams, method=method, settings=RenderSettings(backend=backend))
        (torch.cat([out.image, out.alpha], -1) * cot).sum().backward()
        outs.append((out, verts.grad))
    (ref, v_ref), (fast, v_fast) = outs
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(fast.alpha, ref.alpha, atol=tol, rtol=tol)
    torch.testing.assert_close(fast.image, ref.image, atol=10 * tol, rtol=10 * tol)
    torch.testing.assert_close(v_fast, v_ref, atol=100 * tol * float(v_ref.abs().max()), rtol=10 * tol)
