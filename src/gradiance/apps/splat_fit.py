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
from ..core.transforms import quaternion_to_matrix
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


def spot_texture(size: int) -> Tensor:
    """``(size, size, 3)`` Spot's texture box-filtered to ``size`` pixels: the picture the 2D fit's example,
    test and showcase use."""
    from ..io import load_asset

    texture = load_asset("spot").materials[0][0].diffuse_map
    if texture is None:
        raise ValueError("the bundled Spot has no texture")
    area = torch.nn.functional.interpolate(texture.permute(2, 0, 1)[None], size=(size, size), mode="area")
    return area[0].permute(1, 2, 0)


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
    camera = image_camera(H, W).to(target.device)
    g = torch.Generator().manual_seed(config.seed)
    n = config.num_gaussians
    xy = (torch.rand(n, 2, generator=g) * 2 - 1) * torch.tensor([1.0, H / W])
    means = torch.cat([xy, 0.01 * torch.randn(n, 1, generator=g)], 1)
    spacing = math.sqrt(4 * H / W / n)
    scales = torch.tensor([spacing, spacing, 0.2 * spacing]).expand(n, 3)
    params = GaussianParameters(means, scales, torch.full((n, 3), 0.5), 0.5, 0).to(target.device)
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


@dataclass(frozen=True)
class ViewsFit:
    """The result of ``fit_views``: the Gaussians, the per-step history (``loss``, ``psnr`` of the training
    views in the step's batch, ``count``) and the held-out scores (``psnr``, ``ssim``) when views were held
    out."""

    gaussians: Gaussians
    history: History
    held_out: dict[str, float]


def _nearest_spacing(points: Tensor, k: int = 3) -> Tensor:
    """``(N,)`` mean distance of each point to its ``k`` nearest neighbours (the paper's initial scale)."""
    d = torch.cdist(points, points)
    d.fill_diagonal_(float("inf"))
    return d.topk(min(k, max(points.shape[0] - 1, 1)), largest=False).values.mean(1).clamp_min(1e-4)


def init_parameters(n: int, extent: float, sh_degree: int, generator: torch.Generator) -> GaussianParameters:
    """``n`` Gaussians uniform in the cube ``[-extent, extent]^3`` (the paper's random initialisation),
    grey, opacity 0.1, isotropic scales from the nearest-neighbour spacing."""
    means = (torch.rand(n, 3, generator=generator) * 2 - 1) * extent
    scales = _nearest_spacing(means)[:, None].expand(n, 3)
    return GaussianParameters(means, scales, torch.full((n, 3), 0.5), 0.1, sh_degree)


def densify_and_prune(
    params: GaussianParameters, grad_norm: Tensor, extent: float, generator: torch.Generator, threshold: float
) -> GaussianParameters:
    """The adaptive density control of Kerbl et al. (section 5.2): Gaussians whose mean screen-space
    gradient ``grad_norm`` exceeds ``threshold`` (pixels) are cloned when small (largest scale at most 1% of
    ``extent``) or split in two, sampled from themselves with scales divided by 1.6, when large; then every
    Gaussian (clones and halves included) with opacity below 0.005 is removed."""
    with torch.no_grad():
        scales = params.log_scales.exp()
        big = scales.amax(1) > 0.01 * extent
        grow = grad_norm > threshold
        clone, split = grow & ~big, grow & big
        parts = [_rows(params, ~split), _rows(params, clone)]
        if bool(split.any()):
            for _ in range(2):
                rows = _rows(params, split)
                R = quaternion_to_matrix(rows["quats"])
                noise = torch.randn(rows["means"].shape, generator=generator).to(scales)
                offset = (R @ (noise * scales[split])[..., None])[..., 0]
                rows["means"] = rows["means"] + offset
                rows["log_scales"] = rows["log_scales"] - math.log(1.6)
                parts.append(rows)
        merged = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        alive = torch.sigmoid(merged["opacity_logits"]) >= 0.005
        merged = {k: v[alive] for k, v in merged.items()}
    out = GaussianParameters.__new__(GaussianParameters)
    nn.Module.__init__(out)
    for k, v in merged.items():
        setattr(out, k, nn.Parameter(v.clone()))
    return out


def _rows(params: GaussianParameters, mask: Tensor) -> dict[str, Tensor]:
    names = ("means", "log_scales", "quats", "opacity_logits", "sh")
    return {k: getattr(params, k).detach()[mask] for k in names}


def fit_views(
    cameras: Cameras,
    targets: Tensor,
    config: SplatFitConfig | None = None,
    held_out: tuple[Cameras, Tensor] | None = None,
    extent: float = 1.0,
    progress: bool = False,
    settings: GaussianSettings | None = None,
) -> ViewsFit:
    """Fit Gaussians to ``targets`` ``(B, H, W, 3)`` seen by ``cameras``, one random view per step, from
    ``config.num_gaussians`` random ones in ``[-extent, extent]^3``. With ``config.densify`` the adaptive
    density control runs every ``steps // 10`` steps between 10% and 60% of the steps (the paper's gradient
    threshold, 0.0002 in normalised device coordinates), and Adam restarts after each
    (the paper keeps the moments of surviving Gaussians). ``held_out`` ``(cameras, images)`` are scored by
    PSNR and SSIM at the end."""
    from tqdm import tqdm

    config = config or SplatFitConfig()
    B, (H, W) = len(cameras), cameras.image_size
    if targets.shape != (B, H, W, 3):
        raise ValueError(f"targets must have shape {(B, H, W, 3)}, got {tuple(targets.shape)}")
    g = torch.Generator().manual_seed(config.seed)
    params = init_parameters(config.num_gaussians, extent, config.sh_degree, g).to(cameras.device)
    optimizer = params.optimizer(config, extent)
    history, settings = History(), settings or GaussianSettings()
    every = max(1, config.steps // 10)
    grad_sum = torch.zeros(config.num_gaussians, device=cameras.device)
    seen = torch.zeros(config.num_gaussians, device=cameras.device)
    for step in tqdm(range(config.steps), desc="fit views", disable=not progress):
        view = int(torch.randint(B, (1,), generator=g))
        out = render_gaussians(params.gaussians(), cameras[view], settings)
        out.projected.means2d.retain_grad()
        loss = photometric_loss(out.image, targets[view : view + 1], config.ssim_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        grad = out.projected.means2d.grad
        if grad is not None:
            visible = out.projected.radii[0] > 0
            grad_sum += grad[0].norm(dim=-1) * visible
            seen += visible.float()
        image = out.image.detach().clamp(0, 1)
        history.add(
            step=step,
            loss=float(loss.detach()),
            psnr=float(psnr(image, targets[view : view + 1])[0]),
            count=float(len(params.means)),
        )
        in_window = 0.1 * config.steps <= step + 1 <= 0.6 * config.steps
        if config.densify and in_window and (step + 1) % every == 0:
            threshold = 0.0002 * 2 / W  # the paper's 0.0002 on gradients in NDC, as a gradient in pixels
            params = densify_and_prune(params, grad_sum / seen.clamp_min(1), extent, g, threshold)
            optimizer = params.optimizer(config, extent)
            grad_sum, seen = torch.zeros_like(params.means[:, 0]), torch.zeros_like(params.means[:, 0])
    scores: dict[str, float] = {}
    if held_out is not None:
        cams, images = held_out
        with torch.no_grad():
            rendered = render_gaussians(params.gaussians(), cams, settings).image.clamp(0, 1)
        scores = {"psnr": float(psnr(rendered, images).mean()), "ssim": float(ssim(rendered, images).mean())}
    return ViewsFit(params.gaussians(), history, scores)
