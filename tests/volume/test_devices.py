"""The volume and implicit renderers follow their inputs onto the GPU and agree with the CPU (skipped
without CUDA; CI has none, a lent GPU machine runs them)."""

from __future__ import annotations

import pytest
import torch

from gradiance.core import look_at
from gradiance.core.volumes import Volumes
from gradiance.implicit import ImplicitRenderSettings, Sphere, render_implicit
from gradiance.volume import (
    FieldRenderSettings,
    OccupancyGrid,
    VolumeRenderSettings,
    render_field,
    render_volume,
)
from tests.devices import CUDA


def _cams(device: str):  # type: ignore[no-untyped-def]
    return look_at(
        torch.tensor([[0.3, 0.2, -2.5], [2.0, 1.0, 1.5]], device=device), image_size=(12, 12), fov=45.0
    )


@CUDA
@pytest.mark.parametrize("sampler", ["stratified", "traversal"])
def test_render_volume_on_cuda_matches_cpu(sampler: str) -> None:
    g = torch.Generator().manual_seed(0)
    dens, feats = torch.rand(1, 5, 6, 7, generator=g), torch.rand(1, 5, 6, 7, 3, generator=g)
    settings = VolumeRenderSettings(sampler=sampler, samples_per_ray=16)
    cpu = render_volume(Volumes(dens, feats), _cams("cpu"), settings)
    d = dens.cuda().requires_grad_()
    gpu = render_volume(Volumes(d, feats.cuda()), _cams("cuda"), settings)
    assert gpu.image.is_cuda and torch.allclose(gpu.image.cpu(), cpu.image, atol=1e-5)
    gpu.image.sum().backward()
    assert d.grad is not None and d.grad.is_cuda


@CUDA
def test_fields_and_occupancy_with_a_cuda_generator() -> None:
    class Ball(torch.nn.Module):
        def forward(self, p: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return 3.0 * (p.norm(dim=-1) < 0.5).to(p.dtype), torch.sigmoid(p)

    grid = OccupancyGrid(16).cuda()
    gen = torch.Generator("cuda").manual_seed(0)
    grid.update(Ball(), generator=gen)
    settings = FieldRenderSettings(samples_per_ray=16, randomized=True, box=((-1.0,) * 3, (1.0,) * 3))
    out = render_field(Ball(), _cams("cuda"), settings, occupancy=grid, generator=gen)
    assert out.image.is_cuda and (out.alpha > 0).any()


@CUDA
def test_render_implicit_on_cuda_matches_cpu() -> None:
    settings = ImplicitRenderSettings(box=((-1.0,) * 3, (1.0,) * 3))
    cpu = render_implicit(Sphere(radius=0.5), _cams("cpu"), settings=settings)
    sphere = Sphere(radius=0.5).cuda()
    gpu = render_implicit(sphere, _cams("cuda"), settings=settings)
    assert torch.equal(gpu.alpha.cpu(), cpu.alpha)
    assert torch.allclose(gpu.depth.cpu(), cpu.depth, atol=1e-4)
    gpu.depth.sum().backward()
    assert sphere.radius.grad is not None and sphere.radius.grad.is_cuda
