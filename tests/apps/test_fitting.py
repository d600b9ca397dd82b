"""The fitting applications: each converges on a small case, and rejects bad configurations."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.apps.appearance import AppearanceConfig, fit_appearance, with_texture
from gradiance.apps.common import ring_cameras
from gradiance.apps.pose import PoseConfig, fit_pose, posed, rotation_error_degrees
from gradiance.apps.shape import ShapeConfig, fit_shape
from gradiance.core import Lights, icosphere, look_at, plane, subdivide
from gradiance.core.lights import AmbientLight
from gradiance.eval.bench import spot
from gradiance.eval.metrics import psnr, silhouette_iou
from gradiance.mesh import render


def test_pose_from_30_degrees_to_under_5() -> None:
    mesh = spot().geometry()
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4]]), image_size=(40, 40), fov=45.0)
    truth = torch.nn.functional.normalize(torch.tensor([0.3, 1.0, 0.2]), dim=0) * math.radians(30)
    shift = torch.tensor([0.03, -0.02, 0.02])
    target = render(posed(mesh, truth, shift), cams).alpha
    fit = fit_pose(mesh, cams, target, method="softras", config=PoseConfig(steps=100))
    assert rotation_error_degrees(fit.rotation, truth) < 5.0
    assert len(fit.histories) == 1 and len(fit.histories[0]) == 100
    assert fit.histories[0].column("loss")[-1] < fit.histories[0].column("loss")[0]


def test_pose_restarts_keep_the_best() -> None:
    mesh = spot().geometry()
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4]]), image_size=(16, 16), fov=45.0)
    target = render(mesh, cams).alpha
    frames: list[int] = []
    fit = fit_pose(
        mesh,
        cams,
        target,
        method="softras",
        config=PoseConfig(steps=2, restarts=3, snapshot_every=1),
        snapshot=lambda step, image, alpha: frames.append(step),
    )
    assert len(fit.histories) == 3 and frames == [0, 1] * 3
    assert fit.restart == 0  # the initial guess is the truth: no restart beats it
    assert fit.apply(mesh).verts.shape == mesh.verts.shape


def test_shape_from_silhouettes_and_coarse_to_fine() -> None:
    truth = spot().geometry()
    cams = ring_cameras(6, 32)
    target = render(truth, cams).alpha
    start = float(silhouette_iou(render(icosphere(2, radius=0.75), cams).alpha, target).mean())
    fit = fit_shape(
        cams,
        target,
        method="softras",
        config=ShapeConfig(steps=80, level=2, subdivide_at=(40,)),
    )
    assert fit.mesh.faces.shape[0] == 4 * icosphere(2).faces.shape[0]
    final = float(silhouette_iou(render(fit.mesh, cams).alpha, target).mean())
    assert start < 0.6 and final > 0.85, (start, final)
    assert fit.history.column("iou")[-1] > fit.history.column("iou")[0]


def test_texture_from_images() -> None:
    p = plane(2.0, 1)
    cams = look_at(
        torch.tensor([[0.0, 2.5, 0.01]]), up=torch.tensor([0.0, 0.0, -1.0]), image_size=(32, 32), fov=50.0
    )
    truth = torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(3))
    lights = Lights(ambient=AmbientLight(torch.ones(3)))
    target = render(with_texture(p, truth), cams, lights).image
    fit = fit_appearance(
        p,
        cams,
        target,
        lights=lights,
        method="hard",
        config=AppearanceConfig(steps=150, texture_size=8, lighting="fixed"),
    )
    assert bool(fit.observed.all())
    assert float(psnr(fit.texture[None], truth[None])[0]) > 30.0


def test_subdivide() -> None:
    m = icosphere(1)
    s = subdivide(m)
    assert s.faces.shape[0] == 4 * m.faces.shape[0]
    assert s.verts.shape[0] == m.verts.shape[0] + m.edges()[0].shape[0]
    torch.testing.assert_close(s.verts[: m.verts.shape[0]], m.verts)


def test_exception() -> None:
    with pytest.raises(ValueError, match="steps"):
        PoseConfig(steps=-1)
    with pytest.raises(ValueError, match="restarts"):
        PoseConfig(restarts=0)
    with pytest.raises(ValueError, match="subdivide_at"):
        ShapeConfig(steps=10, subdivide_at=(10,))
    with pytest.raises(ValueError, match="laplacian"):
        ShapeConfig(laplacian=-1.0)
    with pytest.raises(ValueError, match="texture_size"):
        AppearanceConfig(texture_size=0)
    cams = ring_cameras(2, 8)
    with pytest.raises(ValueError, match="target_alpha must have shape"):
        fit_shape(cams, torch.zeros(1, 8, 8, 1))
    with pytest.raises(ValueError, match="method must be one of"):
        fit_pose(icosphere(1), cams, torch.zeros(2, 8, 8, 1), method="nope")
    with pytest.raises(ValueError, match="uvs"):
        with_texture(icosphere(1), torch.zeros(2, 2, 3))
    with pytest.raises(ValueError, match="lights"):
        fit_appearance(plane(), cams, torch.zeros(2, 8, 8, 3), config=AppearanceConfig(lighting="fixed"))


def test_directional_lighting_and_texture_together() -> None:
    from gradiance.core.lights import DirectionalLights

    p = plane(2.0, 4)
    cams = look_at(
        torch.tensor([[0.6, 2.5, 0.4], [-0.5, 2.4, -0.3]]),
        up=torch.tensor([0.0, 0.0, -1.0]),
        image_size=(24, 24),
        fov=50.0,
    )
    truth = torch.rand(4, 4, 3, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.4
    lights = Lights(
        ambient=AmbientLight(torch.full((3,), 0.4)),
        directional=DirectionalLights(torch.tensor([[0.3, 1.0, 0.2]]), torch.full((1, 3), 0.6)),
    )
    target = render(with_texture(p, truth), cams, lights).image
    fit = fit_appearance(
        p,
        cams,
        target,
        method="hard",
        config=AppearanceConfig(steps=150, texture_size=4, lighting="directional"),
    )
    assert fit.lights.directional is not None and fit.lights.sh is None
    final = render(with_texture(p, fit.texture), cams, fit.lights).image
    assert float(psnr(final, target).mean()) > 30.0
