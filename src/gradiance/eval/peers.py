"""Peers in the benchmark: other libraries' renderers behind the method interface of
``gradiance.eval.methods``, registered there when importable (nothing of theirs is imported otherwise).

- ``pytorch3d-softras``: PyTorch3D's ``SoftSilhouetteShader`` (no lights) or ``SoftPhongShader`` (ambient
  and directional lights, vertex colours or white) with 50 faces per pixel, ``sigma = 3e-4`` and the blur
  radius ``log(1 / 1e-4 - 1) * sigma`` that keeps every face whose probability exceeds 1e-4 (PyTorch3D's
  recipe), on the same cameras (``Cameras.to_pytorch3d``). Point and SH lights and textures are not
  mapped: tasks that need them raise ``NotImplementedError``, which the suite records as unsupported.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..core.lights import Lights
from ..core.meshes import Meshes

PYTORCH3D_SIGMA = 3e-4


def pytorch3d_available() -> bool:
    try:
        import pytorch3d.renderer  # noqa: F401
    except ImportError:
        return False
    return True


def pytorch3d_softras(meshes: Meshes, cameras: Cameras, lights: Lights | None) -> tuple[Tensor, Tensor]:
    """``(image (B, H, W, 3), alpha (B, H, W, 1))`` from PyTorch3D's soft shaders (module docstring)."""
    from pytorch3d import renderer as p3r
    from pytorch3d.structures import Meshes as P3Meshes

    if cameras.projection != "perspective":
        raise NotImplementedError("the PyTorch3D adapter maps perspective cameras only")
    B, (H, W), dev = len(cameras), cameras.image_size, meshes.device
    p3_cams = p3r.PerspectiveCameras(device=dev, in_ndc=True, **cameras.to_pytorch3d())
    blend = p3r.BlendParams(sigma=PYTORCH3D_SIGMA, gamma=1e-4, background_color=(0.0, 0.0, 0.0))
    raster = p3r.RasterizationSettings(
        image_size=(H, W),
        faces_per_pixel=50,
        blur_radius=math.log(1.0 / 1e-4 - 1.0) * PYTORCH3D_SIGMA,
        bin_size=0,
    )
    verts = [m.verts for m in meshes.split()]
    faces = [m.faces - m.vert_offsets[0] for m in meshes.split()]
    mesh = P3Meshes(verts, faces)
    if len(meshes) == 1 and B > 1:
        mesh = mesh.extend(B)
    if lights is None:
        shader = p3r.SoftSilhouetteShader(blend_params=blend)
    else:
        if lights.point is not None or lights.sh is not None:
            raise NotImplementedError("the PyTorch3D adapter maps ambient and directional lights only")
        ambient = lights.ambient.color if lights.ambient is not None else torch.zeros(1, 3, device=dev)
        if lights.directional is not None and lights.directional.directions.shape[1] != 1:
            raise NotImplementedError("the PyTorch3D adapter maps one directional light")
        d = lights.directional
        p3_lights = p3r.DirectionalLights(
            device=dev,
            ambient_color=ambient,
            diffuse_color=d.colors[:, 0] if d is not None else torch.zeros(1, 3, device=dev),
            specular_color=torch.zeros(1, 3, device=dev),
            direction=d.directions[:, 0] if d is not None else torch.tensor([[0.0, 0.0, 1.0]], device=dev),
        )
        colors = (
            meshes.vert_colors[:, :3] if meshes.vert_colors is not None else torch.ones_like(meshes.verts)
        )
        rows = [
            colors[int(a) : int(b)]
            for a, b in zip(meshes.vert_offsets[:-1], meshes.vert_offsets[1:], strict=True)
        ]
        mesh.textures = p3r.TexturesVertex(rows if len(rows) == len(mesh) else rows * B)
        material = p3r.Materials(device=dev, specular_color=((0.0, 0.0, 0.0),), shininess=1.0)
        shader = p3r.SoftPhongShader(
            device=dev, cameras=p3_cams, lights=p3_lights, materials=material, blend_params=blend
        )
    renderer = p3r.MeshRenderer(p3r.MeshRasterizer(cameras=p3_cams, raster_settings=raster), shader)
    rgba = renderer(mesh)
    return rgba[..., :3], rgba[..., 3:]
