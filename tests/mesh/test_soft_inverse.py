"""Soft renderers on inverse problems: a translation from soft silhouettes, Spot's 6-DoF pose from one
silhouette 30 degrees away, and an icosphere deformed into Spot from eight silhouettes."""

from __future__ import annotations

import pytest
import torch

from gradiance.core import icosphere, look_at
from gradiance.mesh import RenderSettings, render
from gradiance.mesh.dibr import DIBRSettings
from gradiance.mesh.softras import SoftRasSettings
from tests.mesh.scenes import icosphere_to_spot_iou, spot_pose_error


@pytest.mark.parametrize("method", ["softras", "dibr"])
def test_spot_pose_from_one_silhouette_from_30_degrees(method: str) -> None:
    settings = RenderSettings(softras=SoftRasSettings(sigma=3e-4), dibr=DIBRSettings(delta=1e-3))
    rot_error, shift_error = spot_pose_error(method, settings)
    print(f"{method}: pose error {rot_error:.2f} degrees, {shift_error:.4f} units")
    assert rot_error < 1.0 and shift_error < 0.01


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


@pytest.mark.parametrize(("method", "radius"), [("softras", 0.75), ("dibr", 0.4)])
def test_icosphere_deformed_to_spot_from_eight_silhouettes(method: str, radius: float) -> None:
    """The targets are the method's own soft silhouettes of Spot (DIB-R's one-sided falloff biases a fit to
    hard masks inwards, and it has no gradient to shrink covered pixels, so its sphere starts inside);
    the score is the IoU of the hard silhouettes."""
    settings = RenderSettings(softras=SoftRasSettings(sigma=1e-4), dibr=DIBRSettings(delta=3e-4))
    start, final = icosphere_to_spot_iou(method, settings, radius, soft_target=True, steps=120)
    print(f"{method}: silhouette IoU {start:.3f} -> {final:.3f} over 8 views")
    assert start < 0.6 and final > 0.93
