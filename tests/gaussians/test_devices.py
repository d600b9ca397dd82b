"""3D Gaussian splatting on CUDA gives the CPU's images and gradients (skipped without CUDA)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
import torch
from torch import Tensor

from gradiance.core import look_at
from gradiance.gaussians import Gaussians, GaussianSettings, render_gaussians
from tests.devices import CUDA, assert_same_on_cuda

DT = torch.float64


@CUDA
@pytest.mark.parametrize("tile_size", [16, None])
def test_gaussians_render_the_same_on_cuda(tile_size: int | None) -> None:
    """200 Gaussians with degree-3 colours seen by two cameras: image, alpha, depth, contributor counts,
    and the gradients with respect to every parameter and the camera translation."""
    g = torch.Generator().manual_seed(1)
    n = 200
    leaves = [
        (torch.rand(n, 3, generator=g, dtype=DT) - 0.5) * 1.2,
        torch.randn(n, 4, generator=g, dtype=DT),
        (0.02 + 0.08 * torch.rand(n, 3, generator=g, dtype=DT)).log(),
        torch.randn(n, generator=g, dtype=DT),
        0.4 * torch.randn(n, 16, 3, generator=g, dtype=DT),
    ]
    eyes = torch.tensor([[0.3, -0.4, 2.2], [-2.0, 0.5, 1.0]], dtype=DT)
    t = look_at(eyes, image_size=(40, 36), fov=40.0).t
    settings = GaussianSettings(tile_size=tile_size)

    def run(xs: Sequence[Tensor], device: str) -> dict[str, Tensor]:
        means, quats, log_scales, logits, sh, cam_t = xs
        cams = replace(look_at(eyes.to(device), image_size=(40, 36), fov=40.0), t=cam_t)
        gs = Gaussians(means, quats, log_scales.exp(), torch.sigmoid(logits), sh)
        out = render_gaussians(gs, cams, settings, background=torch.tensor([0.1, 0.2, 0.3], dtype=DT))
        return {"image": out.image, "alpha": out.alpha, "depth": out.depth, "count": out.count}

    assert_same_on_cuda(run, [*leaves, t])
