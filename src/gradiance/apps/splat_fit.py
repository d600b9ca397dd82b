"""Fitting 3D Gaussians (``gradiance.gaussians``) to images: one picture seen head-on (the 2D fit), or many
views of a scene (``fit_views``), with the densify-and-prune schedule of Kerbl et al. 2023 as an option.

Parameters are optimised through the paper's activations: ``exp`` of log-scales, ``sigmoid`` of opacity
logits, quaternions normalised when used, degree-0 (or higher) SH colours, with Adam and one learning rate
per group (``SplatFitConfig``) and an L1 + D-SSIM photometric loss (``(1 - l) L1 + l (1 - SSIM)``, eq. 7 of
the paper with ``l = 0.2``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..core.cameras import Cameras
from ..eval.metrics import psnr, ssim
from ..gaussians import Gaussians, GaussianSettings, render_gaussians, rgb_to_sh0
from .common import History, check_steps


@dataclass(frozen=True)
class SplatFitConfig:
    """Knobs of the Gaussian fits.

    Attributes:
        num_gaussians: Gaussians at the start.
        steps: optimisation steps.
        lr_means, lr_scales, lr_quats, lr_opacities, lr_colors: Adam learning rates per group (means in
            units of the scene extent per step).
        ssim_weight: ``l`` of the loss.
        sh_degree: degree of the colours' spherical harmonics (0 for a picture).
        densify: run the densify-and-prune schedule (``fit_views`` only).
        seed: initialisation seed.
    """

    num_gaussians: int = 2000
    steps: int = 300
    lr_means: float = 2e-3
    lr_scales: float = 1e-2
    lr_quats: float = 1e-2
    lr_opacities: float = 5e-2
    lr_colors: float = 2.5e-2
    ssim_weight: float = 0.2
    sh_degree: int = 0
    densify: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.num_gaussians, int) or self.num_gaussians < 1:
            raise ValueError(f"num_gaussians must be a positive int, got {self.num_gaussians!r}")
        check_steps(self.steps, self.lr_means)
        if not 0 <= self.ssim_weight <= 1:
            raise ValueError(f"ssim_weight must be in [0, 1], got {self.ssim_weight}")
        if self.sh_degree not in (0, 1, 2, 3):
            raise ValueError(f"sh_degree must be 0, 1, 2 or 3, got {self.sh_degree!r}")


class GaussianParameters(nn.Module):
    """Unconstrained parameters of ``N`` Gaussians; ``gaussians()`` applies the activations."""

    def __init__(self, means: Tensor, scales: Tensor, colors: Tensor, opacity: float, sh_degree: int) -> None:
        super().__init__()
        n = means.shape[0]
        self.means = nn.Parameter(means.clone())
        self.log_scales = nn.Parameter(scales.log().clone())
        quats = torch.zeros(n, 4, dtype=means.dtype)
        quats[:, 0] = 1
        self.quats = nn.Parameter(quats)
        self.opacity_logits = nn.Parameter(
            torch.full((n,), math.log(opacity / (1 - opacity)), dtype=means.dtype)
        )
        sh = torch.zeros(n, (sh_degree + 1) ** 2, colors.shape[-1], dtype=means.dtype)
        sh[:, 0] = rgb_to_sh0(colors)
        self.sh = nn.Parameter(sh)

    def gaussians(self) -> Gaussians:
        return Gaussians(
            self.means, self.quats, self.log_scales.exp(), torch.sigmoid(self.opacity_logits), self.sh
        )

    def optimizer(self, config: SplatFitConfig, extent: float) -> torch.optim.Adam:
        groups = [
            {"params": [self.means], "lr": config.lr_means * extent},
            {"params": [self.log_scales], "lr": config.lr_scales},
            {"params": [self.quats], "lr": config.lr_quats},
            {"params": [self.opacity_logits], "lr": config.lr_opacities},
            {"params": [self.sh], "lr": config.lr_colors},
        ]
        return torch.optim.Adam(groups, eps=1e-15)


def photometric_loss(image: Tensor, target: Tensor, ssim_weight: float) -> Tensor:
    """``(1 - l) |image - target|_1 + l (1 - SSIM)`` over ``(B, H, W, C)`` images."""
    l1 = (image - target).abs().mean()
    if ssim_weight == 0:
        return l1
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim(image, target).mean())


@dataclass(frozen=True)
class ImageFit:
    """The result of ``fit_image``: the Gaussians, the camera that sees the picture, the final render and the
    per-step history (``loss``, ``psnr``)."""

    gaussians: Gaussians
    camera: Cameras
    image: Tensor
    history: History


def image_camera(height: int, width: int) -> Cameras:
    """A camera at ``(0, 0, -2)`` looking down +z at the plane ``z = 0``, whose ``[-1, 1]`` in x fills the
    image width (square pixels)."""
    eye_t = torch.tensor([0.0, 0.0, 2.0])
    return Cameras(torch.eye(3), eye_t, float(width), None, (height, width), 0.1, 10.0)


def fit_image(
    target: Tensor,
    config: SplatFitConfig | None = None,
    progress: bool = False,
    on_step: Callable[[int, Tensor], None] | None = None,
    settings: GaussianSettings | None = None,
) -> ImageFit:
    """Fit ``config.num_gaussians`` flat Gaussians in the plane ``z = 0`` to ``target`` ``(H, W, 3)`` in
    [0, 1], seen by ``image_camera``, rendered with ``settings``. ``on_step(step, image)`` is called after
    every step."""
    from tqdm import tqdm

    config = config or SplatFitConfig()
    if target.dim() != 3 or target.shape[-1] != 3:
        raise ValueError(f"target must be an (H, W, 3) image, got {tuple(target.shape)}")
    H, W = target.shape[:2]
    camera = image_camera(H, W)
    g = torch.Generator().manual_seed(config.seed)
    n = config.num_gaussians
    xy = (torch.rand(n, 2, generator=g) * 2 - 1) * torch.tensor([1.0, H / W])
    means = torch.cat([xy, 0.01 * torch.randn(n, 1, generator=g)], 1)
    spacing = math.sqrt(4 * H / W / n)
    scales = torch.tensor([spacing, spacing, 0.2 * spacing]).expand(n, 3)
    params = GaussianParameters(means, scales, torch.full((n, 3), 0.5), 0.5, 0)
    optimizer = params.optimizer(config, extent=1.0)
    settings, history = settings or GaussianSettings(), History()
    image = target.new_zeros(H, W, 3)
    for step in tqdm(range(config.steps), desc="fit image", disable=not progress):
        out = render_gaussians(params.gaussians(), camera, settings)
        loss = photometric_loss(out.image, target[None], config.ssim_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        image = out.image[0].detach()
        history.add(
            step=step, loss=float(loss.detach()), psnr=float(psnr(image.clamp(0, 1)[None], target[None]))
        )
        if on_step is not None:
            on_step(step, image)
    return ImageFit(params.gaussians(), camera, image, history)
