"""Appearance from images of a known shape: ``fit_appearance`` recovers a texture map together with
spherical-harmonics lighting (9 coefficients per channel) or an ambient and a directional light.

The texture starts grey, the lighting as a constant white environment (or overhead white light); Adam
minimises the mean squared error of the rendered colours (plus, optionally, ``smoothness`` times the mean
squared difference of neighbouring texels). The product albedo x light leaves a per-channel scale
undetermined, so comparisons with a known texture should align that scale first (``gradiance.eval.bench``
does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor
from tqdm import tqdm

from ..core import Cameras, Lights, Meshes
from ..core.checks import check_choice
from ..core.lights import AmbientLight, DirectionalLights, SHLighting
from ..core.meshes import SurfaceMaterial
from ..eval.methods import EvalRender
from .common import History, SnapshotFn, check_steps, check_targets, resolve_method


@dataclass(frozen=True)
class AppearanceConfig:
    """Settings of ``fit_appearance``.

    Attributes:
        steps: Adam steps. lr: learning rate (texture and lighting).
        texture_size: side of the square texture recovered.
        smoothness: weight of the texture's squared differences between neighbouring texels (a
            regulariser for texels that few pixels constrain; 0 disables it).
        lighting: "sh" fits 9 SH coefficients per channel (from a constant environment), "directional"
            an ambient colour and one directional light (direction and colour, from overhead white),
            "fixed" keeps the ``lights`` given and fits the texture only.
        progress: show a progress bar. snapshot_every: call ``snapshot`` every this many steps (0: never).
    """

    steps: int = 200
    lr: float = 0.03
    texture_size: int = 64
    smoothness: float = 0.0
    lighting: str = "sh"
    progress: bool = False
    snapshot_every: int = 0

    def __post_init__(self) -> None:
        check_steps(self.steps, self.lr)
        if not isinstance(self.texture_size, int) or self.texture_size < 1:
            raise ValueError(f"texture_size must be a positive int, got {self.texture_size!r}")
        check_choice(self.lighting, "lighting", ("sh", "directional", "fixed"))
        if self.smoothness < 0:
            raise ValueError(f"smoothness must be non-negative, got {self.smoothness!r}")


@dataclass(frozen=True)
class AppearanceFit:
    """The texture ``(S, S, 3)``, the lights (fitted, or those given), a mask ``(S, S)`` of the texels the
    views observe (those the image term gives a gradient) and the history (loss per step)."""

    texture: Tensor
    lights: Lights
    observed: Tensor
    history: History = field(default_factory=History)


def with_texture(mesh: Meshes, texture: Tensor) -> Meshes:
    """``mesh`` with ``texture`` as the diffuse map of every material (the mesh needs UVs)."""
    if mesh.uvs is None or mesh.face_uvs is None:
        raise ValueError("the mesh needs uvs and face_uvs to carry a texture")
    materials = tuple(
        tuple(SurfaceMaterial(m.name, diffuse_map=texture) for m in ms)
        or (SurfaceMaterial(diffuse_map=texture),)
        for ms in mesh.materials
    )
    face_materials = mesh.face_materials
    if face_materials is None:
        face_materials = torch.zeros(mesh.faces.shape[0], dtype=torch.int64, device=mesh.device)
    return replace(mesh, materials=materials, face_materials=face_materials)


def fit_appearance(
    mesh: Meshes,
    cameras: Cameras,
    target_rgb: Tensor,
    *,
    lights: Lights | None = None,
    method: str | EvalRender = "softras",
    config: AppearanceConfig | None = None,
    snapshot: SnapshotFn | None = None,
) -> AppearanceFit:
    """Recover a texture (and SH lighting) of ``mesh`` from ``target_rgb`` ``(B, H, W, 3)`` seen by
    ``cameras``; ``lights`` is used as is with ``config.lighting == "fixed"``."""
    cfg = config or AppearanceConfig()
    fn = resolve_method(method)
    check_targets(cameras, None, target_rgb)
    if cfg.lighting == "fixed" and lights is None:
        raise ValueError("lighting='fixed' needs the lights to render with")
    S, dt, dev = cfg.texture_size, target_rgb.dtype, target_rgb.device
    texture = torch.full((S, S, 3), 0.5, dtype=dt, device=dev, requires_grad=True)
    light_params = _initial_lighting(cfg.lighting, dt, dev)
    opt = torch.optim.Adam([texture, *light_params], lr=cfg.lr)
    observed = torch.zeros(S, S, dtype=torch.bool, device=dev)
    history = History()
    for step in tqdm(range(cfg.steps), desc="appearance", disable=not cfg.progress):
        used = _lights(cfg.lighting, light_params, lights)
        image, alpha = fn(with_texture(mesh, texture), cameras, used)
        loss = (image - target_rgb).pow(2).mean()
        if step == 0:  # the texels the views see: those the data term reaches (the same every step)
            (g,) = torch.autograd.grad(loss, texture, retain_graph=True, allow_unused=True)
            if g is not None:
                observed = g.abs().sum(-1) > 0
        if cfg.smoothness:
            dx, dy = texture[:, 1:] - texture[:, :-1], texture[1:] - texture[:-1]
            loss = loss + cfg.smoothness * (dx.pow(2).mean() + dy.pow(2).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.add(loss=float(loss.detach()))
        if snapshot is not None and cfg.snapshot_every and step % cfg.snapshot_every == 0:
            snapshot(step, image.detach(), alpha.detach())
    final = _lights(cfg.lighting, [p.detach() for p in light_params], lights)
    return AppearanceFit(texture.detach(), final, observed, history)


def _initial_lighting(kind: str, dt: torch.dtype, dev: torch.device) -> list[Tensor]:
    """The lighting parameters to fit, at their starting values."""
    if kind == "sh":
        sh = torch.zeros(9, 3, dtype=dt, device=dev)
        sh[0] = 2 * math.sqrt(math.pi) * 0.5  # a constant environment of radiance 0.5
        return [sh.requires_grad_()]
    if kind == "directional":
        ambient = torch.full((3,), 0.3, dtype=dt, device=dev)
        direction = torch.tensor([[0.0, 1.0, 0.0]], dtype=dt, device=dev)
        color = torch.full((1, 3), 0.7, dtype=dt, device=dev)
        return [ambient.requires_grad_(), direction.requires_grad_(), color.requires_grad_()]
    return []


def _lights(kind: str, params: list[Tensor], given: Lights | None) -> Lights:
    if kind == "sh":
        return Lights(sh=SHLighting(params[0]))
    if kind == "directional":
        ambient, direction, color = params
        return Lights(ambient=AmbientLight(ambient), directional=DirectionalLights(direction, color))
    assert given is not None
    return given
