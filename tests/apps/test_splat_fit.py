"""Fitting Gaussians to a picture reaches a stated PSNR; bad configuration raises."""

from __future__ import annotations

import pytest
import torch

from gradiance.apps.splat_fit import SplatFitConfig, fit_image, image_camera
from gradiance.gaussians import GaussianSettings
from gradiance.io import load_asset


def _spot_texture(size: int) -> torch.Tensor:
    texture = load_asset("spot").materials[0][0].diffuse_map
    assert texture is not None
    return torch.nn.functional.interpolate(texture.permute(2, 0, 1)[None], size=(size, size), mode="area")[
        0
    ].permute(1, 2, 0)


def test_inverse_image_fit_reaches_psnr() -> None:
    target = _spot_texture(16)
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
