"""The viewing protocol of the NMR/SoftRas ShapeNet renderings (Kato et al. 2018; Liu et al. 2019), in
gradiance's conventions.

Each object, normalised to a bounding-box diagonal of 1 (so inside ``[-0.5, 0.5]^3``), is seen from 24
views: view ``v`` at azimuth ``-15 v`` degrees, elevation 30 degrees, distance 2.732, looking at the origin
with +y up, through a 30-degree field of view (SoftRas's ``viewing_angle=15`` is the half angle), in
64 x 64 RGBA. Evaluation voxelises at 32^3 over ``[-0.5, 0.5]^3``.

NMR's look-at camera takes ``x = up x z`` as its image's right, which is the mirror image of a right-handed
camera. Rendering NMR's object ``S`` from NMR's eye ``e`` gives exactly the picture that gradiance's
right-handed camera at ``M e`` sees of ``M S``, with ``M`` the mirror ``z -> -z``; so ``view_cameras`` puts
the cameras at ``M e``, and the frame the network predicts in is NMR's mirrored through ``z = 0``. Voxel
grids are compared in that frame (``dataset`` converts stored grids to it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...core.cameras import Cameras, look_at
from ...core.lights import AmbientLight, DirectionalLights, Lights

VIEWS = 24
AZIMUTH_STEP = 15.0  # degrees; view v is at azimuth -15 v
ELEVATION = 30.0  # degrees
DISTANCE = 2.732
FOV = 30.0  # degrees, full vertical field of view
IMAGE_SIZE = 64
VOXEL_RESOLUTION = 32
BOUNDS = (-0.5, 0.5)
RENDER_LIGHTS = Lights(
    ambient=AmbientLight(torch.full((3,), 0.45)),
    directional=DirectionalLights(torch.tensor([[-0.4, 0.8, 0.45]]), torch.full((1, 3), 0.6)),
)
"""The lights of the procedural renderings (and of the evaluation's pictures)."""


def view_eyes(view_ids: Tensor) -> Tensor:
    """``(B, 3)`` camera positions of views ``view_ids`` ``(B,)`` (NMR's ``get_points_from_angles`` of
    ``(2.732, 30, -15 v)``, mirrored through ``z = 0``; see the module docstring)."""
    az = torch.deg2rad(-AZIMUTH_STEP * view_ids.double())
    el = math.radians(ELEVATION)
    return torch.stack(
        [
            DISTANCE * math.cos(el) * az.sin(),
            torch.full_like(az, DISTANCE * math.sin(el)),
            DISTANCE * math.cos(el) * az.cos(),
        ],
        -1,
    ).float()


def view_cameras(view_ids: Tensor, image_size: int = IMAGE_SIZE) -> Cameras:
    """``B`` cameras for views ``view_ids`` ``(B,)`` (integers in ``[0, 24)``) at ``image_size`` pixels."""
    if view_ids.dim() != 1:
        raise ValueError(f"view_ids must be (B,), got {tuple(view_ids.shape)}")
    if bool(((view_ids < 0) | (view_ids >= VIEWS)).any()):
        raise ValueError(f"view_ids must lie in [0, {VIEWS}), got {view_ids.tolist()}")
    eyes = view_eyes(view_ids.cpu()).to(view_ids.device)
    return look_at(eyes, image_size=(image_size, image_size), fov=FOV)
