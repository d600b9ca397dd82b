"""The compiled vertex normals against ``Meshes.compute_vert_normals``: outputs and VJPs."""

from __future__ import annotations

import pytest
import torch

from gradiance.backends.numba import numba_available
from gradiance.core.meshes import Meshes
from gradiance.core.primitives import icosphere

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")
if numba_available():
    from gradiance.backends.numba.normals import CompiledVertexNormals


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(dtype: torch.dtype) -> None:
    mesh = icosphere(3, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    verts = (mesh.verts + 0.05 * torch.randn(mesh.verts.shape, generator=g, dtype=dtype)).requires_grad_()
    # a degenerate face and an unused vertex: zero normals with zero (finite) gradients
    verts = torch.cat([verts, torch.ones(1, 3, dtype=dtype)]).detach().requires_grad_()
    faces = torch.cat([mesh.faces, torch.tensor([[0, 0, 1]])])
    cot = torch.randn(verts.shape, generator=g, dtype=dtype)
    ref = Meshes.single(verts, faces).compute_vert_normals()
    fast = CompiledVertexNormals.apply(verts, faces)
    (v_ref,) = torch.autograd.grad(ref, verts, cot)
    (v_fast,) = torch.autograd.grad(fast, verts, cot)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(fast, ref, atol=tol, rtol=tol)
    torch.testing.assert_close(v_fast, v_ref, atol=tol * float(v_ref.abs().max()), rtol=tol)
    assert float(fast.detach()[-1].abs().sum()) == 0 and bool(torch.isfinite(v_fast).all())


def test_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    verts = torch.randn(10, 3, generator=g, dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [3, 4, 5], [5, 6, 7], [7, 8, 9], [1, 8, 4]])
    assert torch.autograd.gradcheck(lambda v: CompiledVertexNormals.apply(v, faces), (verts,))
