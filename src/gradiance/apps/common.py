"""What the fitting applications share: method resolution, the per-step history and the loop's progress."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..core import Cameras, Lights, Meshes, look_at
from ..eval.methods import EvalRender, get_method
from ..mesh.render import render

# Called with (step, image, alpha) every ``snapshot_every`` steps, e.g. to save frames of a GIF.
SnapshotFn = Callable[[int, Tensor, Tensor], None]


def resolve_method(method: str | EvalRender) -> EvalRender:
    """A registered method by name (``gradiance.eval.methods``), or the render function itself."""
    return get_method(method) if isinstance(method, str) else method


@dataclass
class History:
    """One row per optimisation step: the loss and the metrics the application tracks."""

    rows: list[dict[str, float]] = field(default_factory=list)

    def add(self, **values: float) -> None:
        self.rows.append({k: float(v) for k, v in values.items()})

    def column(self, name: str) -> list[float]:
        return [r[name] for r in self.rows if name in r]

    def __len__(self) -> int:
        return len(self.rows)


def check_targets(cameras: Cameras, alpha: Tensor | None, rgb: Tensor | None) -> None:
    """The target images must be ``(B, H, W, 1)`` (alpha) and ``(B, H, W, 3)`` (colour) for ``cameras``."""
    B, (H, W) = len(cameras), cameras.image_size
    for name, x, C in (("target_alpha", alpha, 1), ("target_rgb", rgb, 3)):
        if x is not None and x.shape != (B, H, W, C):
            raise ValueError(f"{name} must have shape {(B, H, W, C)}, got {tuple(x.shape)}")


def check_steps(steps: int, lr: float) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")


def ring_cameras(views: int, size: int, distance: float = 2.7) -> Cameras:
    """``views`` cameras looking at the origin from ``distance``, evenly spaced in azimuth, alternating 0.5
    and -0.3 radians of elevation (so that silhouettes see the top and the bottom)."""
    if not isinstance(views, int) or views < 1:
        raise ValueError(f"views must be a positive int, got {views!r}")
    az = torch.arange(views) * (2 * math.pi / views)
    el = torch.tensor([0.5, -0.3] * ((views + 1) // 2))[:views]
    eyes = distance * torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], -1)
    return look_at(eyes, image_size=(size, size), fov=45.0)


def render_rgba(mesh: Meshes, cameras: Cameras, lights: Lights | None, supersample: int = 2) -> Tensor:
    """``(B, H, W, 4)`` premultiplied RGBA of ``mesh`` seen by ``cameras``: hard-rendered at ``supersample``
    times the size and box-filtered (antialiased edges)."""
    out = render(mesh, cameras.upscaled(supersample), lights, method="hard")
    rgba = torch.cat([out.image * out.alpha, out.alpha], -1).permute(0, 3, 1, 2)
    rgba = torch.nn.functional.avg_pool2d(rgba, supersample)
    return rgba.permute(0, 2, 3, 1).clamp(0, 1)


def descend_on_random_rays(
    params: Sequence[Tensor],
    loss_fn: Callable[[int, Tensor, torch.Generator], Tensor],
    num_rays: int,
    steps: int,
    rays_per_step: int,
    lr: float,
    seed: int,
    decay: float = 1.0,
    before_step: Callable[[int, torch.Generator], None] | None = None,
) -> tuple[list[float], float]:
    """Adam on ``params`` for ``steps`` steps, each on ``rays_per_step`` rays drawn uniformly from
    ``num_rays`` (a seeded CPU generator, shared with ``loss_fn(step, rays, generator)`` and
    ``before_step(step, generator)``, which runs before each draw); the learning rate shrinks by ``decay``
    over the whole run. Returns the loss of every step and the seconds taken."""
    device = params[0].device
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, decay ** (1 / max(steps, 1)))
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        if before_step is not None:
            before_step(step, g)
        pick = torch.randint(0, num_rays, (rays_per_step,), generator=g).to(device)
        loss = loss_fn(step, pick, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses, time.perf_counter() - start
