"""Point splatting on CUDA gives the CPU's images, ids and gradients (skipped without CUDA)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
import torch
from torch import Tensor

from gradiance.core import PointClouds, look_at
from gradiance.points import KERNELS, PointRasterSettings, render_points
from tests.devices import CUDA, assert_same_on_cuda

DT = torch.float64


@CUDA
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("compositing", ["alpha", "weighted_sum", "normalized_weighted_sum"])
def test_points_render_the_same_on_cuda(kernel: str, compositing: str) -> None:
    """300 points with world radii, 8 per pixel, two cameras: image, alpha, depth, point ids and the
    gradients with respect to positions, colours, radii and the camera translation."""
    g = torch.Generator().manual_seed(2)
    n = 300
    leaves = [
        (torch.rand(n, 3, generator=g, dtype=DT) - 0.5) * 1.4,
        torch.rand(n, 3, generator=g, dtype=DT),
        0.03 + 0.05 * torch.rand(n, generator=g, dtype=DT),
    ]
    eyes = torch.tensor([[0.0, 0.0, 3.0], [0.7, 0.4, 2.8]], dtype=DT)
    t = look_at(eyes, image_size=(30, 32), fov=40.0).t
    settings = PointRasterSettings(kernel=kernel, points_per_pixel=8)

    def run(xs: Sequence[Tensor], device: str) -> dict[str, Tensor]:
        pts, colors, radii, cam_t = xs
        cams = replace(look_at(eyes.to(device), image_size=(30, 32), fov=40.0), t=cam_t)
        cloud = PointClouds.from_list([pts], colors=[colors], radii=[radii])
        out = render_points(cloud, cams, settings, compositing=compositing, background=(0.2, 0.3, 0.4))
        return {"image": out.image, "alpha": out.alpha, "depth": out.depth, "point_id": out.point_id}

    assert_same_on_cuda(run, [*leaves, t])
