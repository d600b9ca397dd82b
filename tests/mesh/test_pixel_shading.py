"""``PixelSamples.interpolate``: the written-out backward against autograd and finite differences."""

from __future__ import annotations

import torch

from gradiance.mesh.pixel_shading import PixelSamples

DT = torch.float64


def _samples(M: int, F: int, B: int, seed: int) -> PixelSamples:
    g = torch.Generator().manual_seed(seed)
    bary = torch.rand(M, 3, generator=g, dtype=DT)
    return PixelSamples(
        index=torch.arange(M),
        camera=torch.randint(0, B, (M,), generator=g),
        face=torch.randint(0, F, (M,), generator=g),
        bary=(bary / bary.sum(1, keepdim=True)).requires_grad_(),
        bary_derivs=None,
    )


def test_matches_a_loop_and_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    faces = torch.randint(0, 6, (4, 3), generator=g)
    for attrs in (torch.rand(6, 5, generator=g, dtype=DT), torch.rand(2, 6, 5, generator=g, dtype=DT)):
        px = _samples(7, 4, 2, 1)
        out = px.interpolate(attrs, faces)
        for m in range(7):
            table = attrs if attrs.dim() == 2 else attrs[int(px.camera[m])]
            want = sum(px.bary[m, k] * table[faces[int(px.face[m]), k]] for k in range(3))
            torch.testing.assert_close(out[m], want)
        a = attrs.clone().requires_grad_()
        assert torch.autograd.gradcheck(
            lambda x, b, p=px: PixelSamples(p.index, p.camera, p.face, b, None).interpolate(x, faces),
            (a, px.bary.detach().clone().requires_grad_()),
        )


def test_gradient_of_attributes_alone() -> None:
    px = _samples(5, 3, 1, 2)
    px = PixelSamples(px.index, px.camera, px.face, px.bary.detach(), None)
    attrs = torch.rand(4, 3, dtype=DT, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [1, 2, 3], [3, 0, 1]])
    (grad,) = torch.autograd.grad(px.interpolate(attrs, faces).sum(), attrs)
    want = torch.zeros(4, dtype=DT).index_add(0, faces[px.face].reshape(-1), px.bary.reshape(-1))
    torch.testing.assert_close(grad, want[:, None].expand(4, 3))
