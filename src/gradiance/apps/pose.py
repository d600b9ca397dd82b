"""Object (or, equivalently, camera) pose from images: ``fit_pose``.

The object's vertices are moved by ``x -> R(r) x + t`` with ``r`` an axis-angle vector and ``t`` a
translation, both optimised with Adam (cosine learning-rate schedule) so that the render matches the
target silhouette (and colours, when given). Random restarts start from rotations drawn uniformly within
``restart_degrees`` of the initial guess; the restart with the lowest final loss wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from ..core import Cameras, Lights, Meshes
from ..core.transforms import axis_angle_to_matrix, matrix_to_axis_angle
from ..eval.methods import EvalRender
from .common import History, SnapshotFn, check_steps, check_targets, resolve_method


@dataclass(frozen=True)
class PoseConfig:
    """Settings of ``fit_pose``.

    Attributes:
        steps: Adam steps per restart. lr: learning rate.
        restarts: how many starts; the first is the initial guess itself.
        restart_degrees: rotation spread of the other starts around the initial guess.
        rgb_weight: weight of the colour term when a target image is given (the silhouette term weighs 1).
        seed: seeds the restarts. progress: show a progress bar.
        snapshot_every: call ``snapshot`` every this many steps (0: never).
    """

    steps: int = 150
    lr: float = 0.02
    restarts: int = 1
    restart_degrees: float = 30.0
    rgb_weight: float = 1.0
    seed: int = 0
    progress: bool = False
    snapshot_every: int = 0

    def __post_init__(self) -> None:
        check_steps(self.steps, self.lr)
        if not isinstance(self.restarts, int) or self.restarts < 1:
            raise ValueError(f"restarts must be a positive int, got {self.restarts!r}")


@dataclass(frozen=True)
class PoseFit:
    """The pose found: ``rotation`` (axis-angle, ``(3,)``) and ``translation`` ``(3,)`` applied to the
    object, the final loss, which restart won and every restart's history."""

    rotation: Tensor
    translation: Tensor
    loss: float
    restart: int
    histories: list[History] = field(default_factory=list)

    def apply(self, mesh: Meshes) -> Meshes:
        return posed(mesh, self.rotation, self.translation)


def posed(mesh: Meshes, rotation: Tensor, translation: Tensor) -> Meshes:
    """``mesh`` with its vertices rotated by the axis-angle ``rotation`` about the origin, then translated."""
    return mesh.with_verts(mesh.verts @ axis_angle_to_matrix(rotation).T + translation)


def fit_pose(
    mesh: Meshes,
    cameras: Cameras,
    target_alpha: Tensor,
    *,
    target_rgb: Tensor | None = None,
    lights: Lights | None = None,
    method: str | EvalRender = "softras",
    config: PoseConfig | None = None,
    init_rotation: Tensor | None = None,
    init_translation: Tensor | None = None,
    snapshot: SnapshotFn | None = None,
    track: Callable[[Tensor, Tensor], dict[str, float]] | None = None,
) -> PoseFit:
    """Fit the pose of ``mesh`` to ``target_alpha`` ``(B, H, W, 1)`` (and ``target_rgb`` ``(B, H, W, 3)``
    rendered with ``lights``) seen by ``cameras``; see the module docstring. ``track(rotation,
    translation) -> dict`` may add metrics (e.g. errors against a known truth) to the history each step."""
    cfg = config or PoseConfig()
    fn = resolve_method(method)
    check_targets(cameras, target_alpha, target_rgb)
    dt, dev = mesh.verts.dtype, mesh.verts.device
    r0 = torch.zeros(3, dtype=dt, device=dev) if init_rotation is None else init_rotation.detach().to(dt)
    t0 = (
        torch.zeros(3, dtype=dt, device=dev) if init_translation is None else init_translation.detach().to(dt)
    )
    g = torch.Generator().manual_seed(cfg.seed)
    best: PoseFit | None = None
    histories = []
    for restart in range(cfg.restarts):
        start = r0.clone()
        if restart > 0:
            axis = torch.nn.functional.normalize(torch.randn(3, generator=g, dtype=dt), dim=0).to(dev)
            angle = math.radians(cfg.restart_degrees) * float(torch.rand((), generator=g))
            start = (axis_angle_to_matrix(axis * angle) @ axis_angle_to_matrix(r0)).detach()
            start = matrix_to_axis_angle(start)
        rot = start.clone().requires_grad_()
        shift = t0.clone().requires_grad_()
        opt = torch.optim.Adam([rot, shift], lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.steps, 1))
        history = History()
        loss = torch.zeros(())
        bar = tqdm(range(cfg.steps), desc=f"pose {restart + 1}/{cfg.restarts}", disable=not cfg.progress)
        for step in bar:
            image, alpha = fn(posed(mesh, rot, shift), cameras, lights)
            loss = ((alpha - target_alpha) ** 2).mean()
            if target_rgb is not None:
                loss = loss + cfg.rgb_weight * ((image - target_rgb) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            extra = track(rot.detach(), shift.detach()) if track is not None else {}
            history.add(loss=float(loss.detach()), **extra)
            if snapshot is not None and cfg.snapshot_every and step % cfg.snapshot_every == 0:
                snapshot(step, image.detach(), alpha.detach())
        histories.append(history)
        with torch.no_grad():
            image, alpha = fn(posed(mesh, rot, shift), cameras, lights)
            final = ((alpha - target_alpha) ** 2).mean()
            if target_rgb is not None:
                final = final + cfg.rgb_weight * ((image - target_rgb) ** 2).mean()
        if best is None or float(final) < best.loss:
            best = PoseFit(rot.detach(), shift.detach(), float(final), restart)
    assert best is not None
    return PoseFit(best.rotation, best.translation, best.loss, best.restart, histories)


def rotation_error_degrees(rotation: Tensor, truth: Tensor) -> float:
    """Degrees of the rotation between two axis-angle vectors (the angle of ``R(a) R(b)^T``)."""
    rel = axis_angle_to_matrix(rotation) @ axis_angle_to_matrix(truth).T
    return math.degrees(float(torch.acos(((rel.diagonal().sum() - 1) / 2).clamp(-1, 1))))
