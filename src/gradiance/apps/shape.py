"""Multi-view mesh reconstruction: ``fit_shape`` deforms a template (an icosphere by default) so that its
renders match target silhouettes (and colours) from known cameras.

The loss is ``|alpha - target|^2`` (plus ``rgb_weight |image - target_rgb|^2``) averaged over pixels, plus
``laplacian`` times the cotangent-free uniform Laplacian, ``edge`` times the edge-length loss and
``normal`` times the normal-consistency loss (``gradiance.mesh`` regularisers), optimised over per-vertex
offsets with Adam. Coarse to fine: at each step in ``subdivide_at`` the current mesh is split 1-to-4
(``gradiance.core.subdivide``) and optimisation continues on the finer mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from ..core import Cameras, Lights, Meshes, icosphere, subdivide
from ..eval.methods import EvalRender
from ..eval.metrics import silhouette_iou
from ..mesh import edge_length_loss, laplacian_smoothing, normal_consistency
from .common import History, SnapshotFn, check_steps, check_targets, resolve_method


@dataclass(frozen=True)
class ShapeConfig:
    """Settings of ``fit_shape`` (weights of the loss terms in the module docstring).

    Attributes:
        steps: Adam steps in all. lr: learning rate of the vertex offsets.
        level, radius: the icosphere template when none is given.
        laplacian, edge, normal, rgb_weight: loss weights.
        subdivide_at: steps at which the mesh is subdivided (coarse to fine; the subdivided mesh keeps
            its geometry only, so a colour term then sees white).
        progress: show a progress bar. snapshot_every: call ``snapshot`` every this many steps (0: never).
    """

    steps: int = 150
    lr: float = 0.01
    level: int = 3
    radius: float = 0.75
    laplacian: float = 0.01
    edge: float = 0.1
    normal: float = 0.0
    rgb_weight: float = 1.0
    subdivide_at: tuple[int, ...] = ()
    progress: bool = False
    snapshot_every: int = 0

    def __post_init__(self) -> None:
        check_steps(self.steps, self.lr)
        for name in ("laplacian", "edge", "normal", "rgb_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)!r}")
        if any(not 0 < s < self.steps for s in self.subdivide_at):
            raise ValueError(
                f"subdivide_at must hold steps in (0, steps={self.steps}), got {self.subdivide_at}"
            )


@dataclass(frozen=True)
class ShapeFit:
    """The deformed mesh and the history (loss and mean silhouette IoU per step)."""

    mesh: Meshes
    history: History = field(default_factory=History)


def fit_shape(
    cameras: Cameras,
    target_alpha: Tensor,
    *,
    target_rgb: Tensor | None = None,
    lights: Lights | None = None,
    template: Meshes | None = None,
    method: str | EvalRender = "softras",
    config: ShapeConfig | None = None,
    snapshot: SnapshotFn | None = None,
) -> ShapeFit:
    """Reconstruct a mesh from ``target_alpha`` ``(B, H, W, 1)`` (and ``target_rgb``, rendered with
    ``lights`` and the template's colours) seen by ``cameras``; see the module docstring."""
    cfg = config or ShapeConfig()
    fn = resolve_method(method)
    check_targets(cameras, target_alpha, target_rgb)
    mesh = template if template is not None else icosphere(cfg.level, radius=cfg.radius)
    mesh = mesh.to(target_alpha.device)
    offsets = torch.zeros_like(mesh.verts, requires_grad=True)
    opt = torch.optim.Adam([offsets], lr=cfg.lr)
    history = History()
    for step in tqdm(range(cfg.steps), desc="shape", disable=not cfg.progress):
        if step in cfg.subdivide_at:
            mesh = subdivide(mesh.offset_verts(offsets.detach()))
            offsets = torch.zeros_like(mesh.verts, requires_grad=True)
            opt = torch.optim.Adam([offsets], lr=cfg.lr)
        current = mesh.offset_verts(offsets)
        image, alpha = fn(current, cameras, lights)
        loss = (alpha - target_alpha).pow(2).mean()
        if target_rgb is not None:
            loss = loss + cfg.rgb_weight * (image - target_rgb).pow(2).mean()
        if cfg.laplacian:
            loss = loss + cfg.laplacian * laplacian_smoothing(current)
        if cfg.edge:
            loss = loss + cfg.edge * edge_length_loss(current)
        if cfg.normal:
            loss = loss + cfg.normal * normal_consistency(current)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.add(loss=float(loss.detach()), iou=float(silhouette_iou(alpha.detach(), target_alpha).mean()))
        if snapshot is not None and cfg.snapshot_every and step % cfg.snapshot_every == 0:
            snapshot(step, image.detach(), alpha.detach())
    return ShapeFit(mesh.offset_verts(offsets.detach()), history)
