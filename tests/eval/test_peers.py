"""The PyTorch3D adapter (runs only where PyTorch3D is importable; CI has none)."""

from __future__ import annotations

import pytest
import torch

from gradiance.apps.common import ring_cameras
from gradiance.eval.bench import _POSE_LIGHTS, spot
from gradiance.eval.methods import eval_methods
from gradiance.eval.metrics import silhouette_iou
from gradiance.eval.peers import pytorch3d_available, pytorch3d_softras
from gradiance.mesh import RenderSettings, render
from gradiance.mesh.softras import SoftRasSettings

pytestmark = pytest.mark.skipif(not pytorch3d_available(), reason="PyTorch3D is not installed")


def test_pytorch3d_soft_silhouette_matches_ours() -> None:
    assert "pytorch3d-softras" in eval_methods()
    mesh, cams = spot().geometry(), ring_cameras(2, 32)
    _, theirs = pytorch3d_softras(mesh, cams, None)
    ours = render(
        mesh, cams, method="softras", settings=RenderSettings(softras=SoftRasSettings(sigma=3e-4))
    ).alpha
    assert bool((silhouette_iou(theirs, ours) > 0.98).all())
    image, alpha = pytorch3d_softras(mesh, cams, _POSE_LIGHTS)
    assert image.shape == (2, 32, 32, 3) and float(image.max()) > 0 and alpha.shape == (2, 32, 32, 1)


def test_unmapped_lights_are_refused() -> None:
    from gradiance.core import Lights
    from gradiance.core.lights import SHLighting

    with pytest.raises(NotImplementedError, match="ambient and directional"):
        pytorch3d_softras(spot().geometry(), ring_cameras(1, 16), Lights(sh=SHLighting(torch.zeros(9, 3))))
