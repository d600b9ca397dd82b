"""Gradient quality: finite-difference references, comparisons with a verdict, and gradient images.

Two references are offered for a renderer's autograd gradient:

- ``finite_difference_gradient`` / ``finite_difference_jvp``: central differences of the *same* forward
  function. This is the exact check for smooth renderers (SoftRas, DIB-R's soft silhouette, shading,
  textures), and for the smooth parts of a hard render.
- ``supersampled``: the render box-filtered from ``factor x factor`` samples per pixel, i.e. the pixel-area
  integral. Its finite differences approximate the true derivative of a pixel with respect to a moving
  edge, which the hard render does not have; visibility-gradient methods (antialias, NMR, OpenDR, SoftRas,
  DIB-R) are judged against it, with looser thresholds (``VISIBILITY``), since each approximates it in
  its own way.

``compare_gradients`` reports, over the elements whose reference magnitude exceeds a floor, the median and
maximum relative error ``|g - r| / max(|r|, floor)``, the cosine similarity of the whole vectors and the
fraction of agreeing signs, and a pass/fail verdict against documented thresholds.

``gradient_image`` gives the per-pixel derivative of an image with respect to one scalar, from autograd
(one backward pass per pixel, so keep images small) or from central differences, and
``diverging_colormap`` turns it into a picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor


def finite_difference_jvp(
    fn: Callable[[Tensor], Tensor], param: Tensor, direction: Tensor, eps: float
) -> Tensor:
    """``(fn(p + eps d) - fn(p - eps d)) / (2 eps)``: the derivative of ``fn``'s output along ``direction``
    (same shape as ``param``), by central differences; no autograd."""
    _check_step(eps)
    if direction.shape != param.shape:
        raise ValueError(
            f"direction must have the shape of param {tuple(param.shape)}, got {tuple(direction.shape)}"
        )
    with torch.no_grad():
        p = param.detach()
        return (fn(p + eps * direction) - fn(p - eps * direction)) / (2 * eps)


def finite_difference_gradient(
    loss: Callable[[Tensor], Tensor], param: Tensor, eps: float, elements: Tensor | None = None
) -> Tensor:
    """Central-difference gradient of a scalar ``loss(param)``: ``out[k] = (L(p + eps e_k) - L(p - eps e_k))
    / (2 eps)`` for every element ``k`` of ``param`` (flat index), or only for ``elements`` (a 1D int64
    tensor of flat indices; the others are NaN). Costs two forward passes per element."""
    _check_step(eps)
    p = param.detach()
    flat = p.reshape(-1)
    ks = torch.arange(flat.numel()) if elements is None else elements.reshape(-1).cpu()
    out = torch.full_like(flat, math.nan)
    with torch.no_grad():
        for k in ks.tolist():
            if not 0 <= k < flat.numel():
                raise ValueError(f"elements holds {k}, outside param's {flat.numel()} elements")
            step = torch.zeros_like(flat)
            step[k] = eps
            step = step.reshape(p.shape)
            out[k] = (_scalar(loss(p + step)) - _scalar(loss(p - step))) / (2 * eps)
    return out.reshape(p.shape)


def autograd_gradient(loss: Callable[[Tensor], Tensor], param: Tensor) -> Tensor:
    """The gradient of a scalar ``loss(param)`` by autograd, at a detached copy of ``param``."""
    p = param.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad(_scalar(loss(p)), p, allow_unused=True)
    return torch.zeros_like(p) if grad is None else grad


def supersampled(render_at: Callable[[int], Tensor], factor: int) -> Tensor:
    """The pixel-area average of a render: ``render_at(factor)`` must return the image at ``factor`` times
    the resolution, ``(B, H * factor, W * factor, C)`` (e.g. rendered with ``cameras.upscaled(factor)``);
    the result is ``(B, H, W, C)``, each pixel the mean of its ``factor x factor`` block."""
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"factor must be a positive int, got {factor!r}")
    fine = render_at(factor)
    if fine.dim() != 4 or fine.shape[1] % factor or fine.shape[2] % factor:
        raise ValueError(
            f"render_at({factor}) must return (B, H * {factor}, W * {factor}, C), got {tuple(fine.shape)}"
        )
    return torch.nn.functional.avg_pool2d(fine.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)


@dataclass(frozen=True)
class GradientThresholds:
    """When ``compare_gradients`` passes a gradient.

    Attributes:
        floor: relative floor of the denominator: elements with ``|r| <= floor * max|r|`` are left out of the
            relative errors and sign agreement (their relative error is meaningless), but count in the cosine.
        max_median_relative_error: the median relative error must not exceed this.
        min_cosine: the cosine similarity of the two gradients must reach this.
        min_sign_agreement: the fraction of (above-floor) elements with the same sign must reach this.
    """

    floor: float = 1e-3
    max_median_relative_error: float = 0.05
    min_cosine: float = 0.99
    min_sign_agreement: float = 0.95


EXACT = GradientThresholds()
"""For autograd against finite differences of the same smooth function (rounding and the FD step only)."""

VISIBILITY = GradientThresholds(
    floor=0.05, max_median_relative_error=1.0, min_cosine=0.6, min_sign_agreement=0.75
)
"""For a visibility-gradient approximation against the supersampled (pixel-area) reference: the direction
and signs must agree, the magnitude within a factor of two in the median."""


@dataclass(frozen=True)
class GradientComparison:
    """What ``compare_gradients`` measured; ``passed`` is the verdict against ``thresholds``."""

    count: int
    compared: int
    median_relative_error: float
    max_relative_error: float
    cosine: float
    sign_agreement: float
    passed: bool
    thresholds: GradientThresholds

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def compare_gradients(
    gradient: Tensor, reference: Tensor, thresholds: GradientThresholds = EXACT
) -> GradientComparison:
    """Compare a gradient with a reference of the same shape (see the module docstring).

    A reference that is zero everywhere passes only a gradient that is zero everywhere. NaN elements of the
    reference (elements ``finite_difference_gradient`` skipped) are left out.
    """
    if gradient.shape != reference.shape:
        raise ValueError(
            f"gradient {tuple(gradient.shape)} and reference {tuple(reference.shape)} must have one shape"
        )
    g, r = gradient.detach().reshape(-1).double().cpu(), reference.detach().reshape(-1).double().cpu()
    known = ~torch.isnan(r)
    g, r = g[known], r[known]
    if not bool(torch.isfinite(g).all()):
        return GradientComparison(int(g.numel()), 0, math.inf, math.inf, math.nan, 0.0, False, thresholds)
    scale = float(r.abs().max()) if r.numel() else 0.0
    if scale == 0.0:
        zero = bool((g == 0).all())
        return GradientComparison(
            int(g.numel()),
            0,
            0.0 if zero else math.inf,
            0.0 if zero else math.inf,
            1.0 if zero else 0.0,
            1.0 if zero else 0.0,
            zero,
            thresholds,
        )
    big = r.abs() > thresholds.floor * scale
    rel = (g - r).abs()[big] / r.abs()[big]
    cosine = float(torch.nn.functional.cosine_similarity(g, r, dim=0, eps=1e-300))
    signs = float((torch.sign(g[big]) == torch.sign(r[big])).double().mean())
    median, worst = float(rel.median()), float(rel.max())
    passed = (
        median <= thresholds.max_median_relative_error
        and cosine >= thresholds.min_cosine
        and signs >= thresholds.min_sign_agreement
    )
    return GradientComparison(
        int(g.numel()), int(big.sum()), median, worst, cosine, signs, passed, thresholds
    )


def check_gradients(
    loss: Callable[[Tensor], Tensor],
    param: Tensor,
    eps: float,
    thresholds: GradientThresholds = EXACT,
    elements: Tensor | None = None,
) -> GradientComparison:
    """Autograd's gradient of ``loss(param)`` against central differences of the same ``loss``."""
    reference = finite_difference_gradient(loss, param, eps, elements)
    return compare_gradients(autograd_gradient(loss, param), reference, thresholds)


def gradient_image(
    render: Callable[[Tensor], Tensor], theta: float, mode: str = "autograd", eps: float = 1e-3
) -> Tensor:
    """``(H, W)`` per-pixel derivative ``d mean_c(image[h, w, c]) / d theta`` of ``render(theta)``, a
    ``(H, W, C)`` image (or ``(1, H, W, C)``) of a 0-dim tensor ``theta``.

    ``mode="autograd"`` runs one backward pass per pixel: what the renderer's gradient says about each
    pixel (for NMR or OpenDR, whose backward is not the derivative of any forward function, this is the
    only meaningful picture). ``mode="finite_difference"`` differentiates the forward function centrally.
    """
    if mode not in ("autograd", "finite_difference"):
        raise ValueError(f"mode must be 'autograd' or 'finite_difference', got {mode!r}")
    if mode == "finite_difference":
        t = torch.tensor(float(theta), dtype=torch.float64)
        d = finite_difference_jvp(lambda x: _as_hwc(render(x)).mean(-1), t, torch.ones_like(t), eps)
        return d
    t = torch.tensor(float(theta), dtype=torch.float64, requires_grad=True)
    img = _as_hwc(render(t)).mean(-1)
    H, W = img.shape
    flat = img.reshape(-1)
    out = torch.zeros(H * W, dtype=img.dtype)
    for k in range(H * W):
        if not flat[k].requires_grad:
            break
        (g,) = torch.autograd.grad(flat[k], t, retain_graph=k + 1 < H * W, allow_unused=True)
        out[k] = 0.0 if g is None else float(g)
    return out.reshape(H, W)


def diverging_colormap(values: Tensor, scale: float | None = None) -> Tensor:
    """``(*, 3)`` uint8 colours of ``values``: blue for negative, white for zero, red for positive, saturated
    at ``+-scale`` (default ``max |values|``; pass one scale to compare several images)."""
    v = values.detach().double().cpu()
    s = float(v.abs().max()) if scale is None else float(scale)
    if not s > 0:
        s = 1.0
    x = (v / s).clamp(-1, 1)[..., None]
    white = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    red = torch.tensor([0.70, 0.09, 0.17], dtype=torch.float64)
    blue = torch.tensor([0.13, 0.40, 0.67], dtype=torch.float64)
    rgb = torch.where(x >= 0, white + x * (red - white), white - x * (blue - white))
    return (rgb * 255).round().to(torch.uint8)


def _as_hwc(img: Tensor) -> Tensor:
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dim() != 3:
        raise ValueError(f"render must return an (H, W, C) or (1, H, W, C) image, got {tuple(img.shape)}")
    return img


def _scalar(x: Tensor) -> Tensor:
    if x.numel() != 1:
        raise ValueError(f"loss must return a scalar, got shape {tuple(x.shape)}")
    return x.reshape(())


def _check_step(eps: float) -> None:
    if not (isinstance(eps, float | int) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite float, got {eps!r}")
