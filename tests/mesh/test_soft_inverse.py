"""Soft renderers on inverse problems: a translation from soft silhouettes, Spot's 6-DoF pose from one
silhouette 30 degrees away, and an icosphere deformed into Spot from eight silhouettes."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core import icosphere, look_at, normalize_to_unit_sphere
from gradiance.core.transforms import axis_angle_to_matrix
from gradiance.io import load_asset
from gradiance.mesh import RenderSettings, edge_length_loss, laplacian_smoothing, render
from gradiance.mesh.dibr import DIBRSettings
from gradiance.mesh.softras import SoftRasSettings


@pytest.mark.parametrize("method", ["softras", "dibr"])
def test_spot_pose_from_one_silhouette_from_30_degrees(method: str) -> None:
    spot = normalize_to_unit_sphere(load_asset("spot")).geometry()
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4]]), image_size=(64, 64), fov=45.0)
    settings = RenderSettings(softras=SoftRasSettings(sigma=3e-4), dibr=DIBRSettings(delta=1e-3))

    def silhouette(rotvec: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        posed = spot.with_verts(spot.verts @ axis_angle_to_matrix(rotvec).T + shift)
        return render(posed, cams, method=method, settings=settings).alpha

    axis = torch.tensor([0.3, 1.0, 0.2])
    true_rot = axis / axis.norm() * math.radians(30)
    true_shift = torch.tensor([0.05, -0.03, 0.04])
    target = silhouette(true_rot, true_shift).detach()
    rotvec = torch.zeros(3, requires_grad=True)
    shift = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([rotvec, shift], lr=0.02)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 150)
    for _ in range(150):
        loss = ((silhouette(rotvec, shift) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    assert math.degrees(float((rotvec.detach() - true_rot).norm())) < 1.0
    assert float((shift.detach() - true_shift).norm()) < 0.01


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("softras", RenderSettings(softras=SoftRasSettings(sigma=1e-4))),
        ("dibr", RenderSettings(dibr=DIBRSettings(delta=1e-3))),
    ],
)
def test_translation_from_soft_silhouettes(method: str, settings: RenderSettings) -> None:
    mesh = icosphere(2, radius=0.6, dtype=torch.float64)
    eyes = torch.tensor([[0.0, 0.0, -3.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    cams = look_at(eyes, image_size=(24, 24), fov=40.0)
    truth = torch.tensor([0.15, -0.1, 0.12], dtype=torch.float64)
    target = render(
        mesh.offset_verts(truth.expand_as(mesh.verts)), cams, method=method, settings=settings
    ).alpha
    shift = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([shift], lr=0.02)
    for _ in range(100):
        alpha = render(
            mesh.offset_verts(shift.expand_as(mesh.verts)), cams, method=method, settings=settings
        ).alpha
        loss = ((alpha - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((shift.detach() - truth).norm()) < 0.02


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a > 0.5) & (b > 0.5)).sum() / ((a > 0.5) | (b > 0.5)).sum())


@pytest.mark.parametrize(("method", "radius"), [("softras", 0.75), ("dibr", 0.4)])
def test_icosphere_deformed_to_spot_from_eight_silhouettes(method: str, radius: float) -> None:
    """The targets are the method's own soft silhouettes of Spot (DIB-R's one-sided falloff biases a fit to
    hard masks inwards, and it has no gradient to shrink covered pixels, so its sphere starts inside);
    the score is the IoU of the hard silhouettes."""
    spot = normalize_to_unit_sphere(load_asset("spot")).geometry()
    az = torch.arange(8) * (2 * math.pi / 8)
    el = torch.tensor([0.5, -0.3] * 4)
    eyes = 2.7 * torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], -1)
    cams = look_at(eyes, image_size=(64, 64), fov=45.0)
    settings = RenderSettings(softras=SoftRasSettings(sigma=1e-4), dibr=DIBRSettings(delta=3e-4))
    target = render(spot, cams, method=method, settings=settings).alpha
    hard_target = render(spot, cams).alpha
    sphere = icosphere(3, radius=radius)
    offsets = torch.zeros_like(sphere.verts, requires_grad=True)
    opt = torch.optim.Adam([offsets], lr=0.01)
    start = _iou(render(sphere, cams).alpha, hard_target)
    for _ in range(120):
        mesh = sphere.offset_verts(offsets)
        alpha = render(mesh, cams, method=method, settings=settings).alpha
        loss = (
            (alpha - target).pow(2).mean() + 0.01 * laplacian_smoothing(mesh) + 0.1 * edge_length_loss(mesh)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = _iou(render(sphere.offset_verts(offsets.detach()), cams).alpha, hard_target)
    print(f"{method}: silhouette IoU {start:.3f} -> {final:.3f} over 8 views")
    assert start < 0.6 and final > 0.93
