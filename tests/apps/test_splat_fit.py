"""Fitting Gaussians to a picture reaches a stated PSNR; bad configuration raises."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.apps.common import ring_cameras
from gradiance.apps.splat_fit import (
    SplatFitConfig,
    densify_and_prune,
    fit_image,
    fit_views,
    image_camera,
    init_parameters,
    spot_texture,
)
from gradiance.core import Cameras, normalize_to_unit_sphere
from gradiance.eval.metrics import psnr
from gradiance.gaussians import GaussianSettings
from gradiance.io import load_asset
from gradiance.mesh import render


def test_inverse_image_fit_reaches_psnr() -> None:
    target = spot_texture(16)
    config = SplatFitConfig(num_gaussians=100, steps=60)
    fit = fit_image(target, config, settings=GaussianSettings(tile_size=None))
    first, last = fit.history.rows[0]["psnr"], fit.history.rows[-1]["psnr"]
    assert first < 10 and last > 18  # measured: 7.2 dB -> 20.2 dB
    assert fit.image.shape == (16, 16, 3) and len(fit.gaussians) == 100


def test_image_camera_frames_the_plane() -> None:
    cam = image_camera(10, 20)
    uv, depth = cam.project(torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.5, 0.0]]))
    torch.testing.assert_close(uv[0], torch.tensor([[0.0, 5.0], [20.0, 10.0]]))
    torch.testing.assert_close(depth[0], torch.tensor([2.0, 2.0]))


def test_exception() -> None:
    with pytest.raises(ValueError, match="num_gaussians"):
        SplatFitConfig(num_gaussians=0)
    with pytest.raises(ValueError, match="sh_degree"):
        SplatFitConfig(sh_degree=4)
    with pytest.raises(ValueError, match="target"):
        fit_image(torch.zeros(4, 4), SplatFitConfig(steps=1))


def _spot_views(size: int) -> tuple[Cameras, torch.Tensor]:
    mesh = normalize_to_unit_sphere(load_asset("spot"))
    cams = ring_cameras(24, size, distance=2.6)
    with torch.no_grad():
        return cams, render(mesh, cams, method="hard").image


def test_multi_view_fit_with_densification_scores_held_out_views() -> None:
    cams, images = _spot_views(16)
    train, test = [i for i in range(24) if i % 6 != 3], [i for i in range(24) if i % 6 == 3]
    config = SplatFitConfig(num_gaussians=100, steps=30, densify=True)
    fit = fit_views(cams[train], images[train], config, held_out=(cams[test], images[test]))
    counts = fit.history.column("count")
    assert counts[0] == 100 and counts[-1] != 100  # densify-and-prune changed the set
    early = sum(fit.history.column("loss")[:5]) / 5
    late = sum(fit.history.column("loss")[-5:]) / 5
    assert late < 0.9 * early  # measured: 0.46 -> 0.37
    background = float(psnr(torch.zeros_like(images[test]), images[test]).mean())  # predicting nothing
    assert set(fit.held_out) == {"psnr", "ssim"} and fit.held_out["psnr"] > background + 1


def test_densify_and_prune_rules() -> None:
    g = torch.Generator().manual_seed(0)
    params = init_parameters(4, 1.0, 0, g)
    with torch.no_grad():
        params.log_scales[:] = torch.tensor([0.001, 0.001, 0.5, 0.5]).log()[:, None]  # small, small, big, big
        params.opacity_logits[:] = torch.tensor([2.0, -8.0, 2.0, 2.0])  # the second is nearly transparent
    grad = torch.tensor([1.0, 0.0, 1.0, 0.0])  # the first (small) and third (big) grow
    out = densify_and_prune(params, grad, 1.0, g, threshold=0.5)
    # kept: 0 (cloned too), 3; removed: 1 (transparent), 2 (split into two smaller copies)
    assert out.means.shape[0] == 2 + 1 + 2
    torch.testing.assert_close(out.means[2], params.means[0].detach())  # the clone
    torch.testing.assert_close(
        out.log_scales[3:], params.log_scales[2:3].detach().expand(2, 3) - math.log(1.6)
    )
