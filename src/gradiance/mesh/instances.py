"""Face instances: every face of a mesh batch seen by its camera(s), in camera and homogeneous pixel space.

Shared by the mesh renderers (hard rasterisation, SoftRas, DIB-R): instance ``i`` is packed face
``face[i]`` seen by camera ``camera[i]``. One mesh broadcast over ``B`` cameras gives ``B * F`` instances;
``B`` meshes paired with ``B`` cameras give ``F`` instances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..backends.numba import use_numba
from ..backends.torch import rasterize as raster_torch
from ..backends.torch.soft import NearPairs, pairs_near
from ..core.cameras import Cameras
from ..core.checks import check_choice
from ..core.meshes import Meshes
from ..core.packing import gather_rows


@dataclass(frozen=True)
class FaceInstances:
    """Faces per camera, with autograd through vertices and cameras.

    Attributes:
        face: ``(I,)`` packed face id of each instance.
        camera: ``(I,)`` camera index of each instance.
        cam_verts: ``(V', 3)`` camera-space vertices (``V' = V`` when meshes pair with cameras, ``B * V``
            when one mesh is broadcast).
        hom: ``(V', 3)`` homogeneous pixel coordinates ``(u w, v w, w)`` of ``cam_verts``; ``w`` is the
            depth for perspective cameras and 1 for orthographic ones.
        corners: ``(I, 3)`` rows of ``cam_verts``/``hom`` of each instance's corners.
    """

    face: Tensor
    camera: Tensor
    cam_verts: Tensor
    hom: Tensor
    corners: Tensor

    @staticmethod
    def build(meshes: Meshes, cameras: Cameras) -> FaceInstances:
        B, V, F = len(cameras), meshes.verts.shape[0], meshes.faces.shape[0]
        if len(meshes) == 1:  # one mesh seen by every camera: one matrix product per camera
            cam_verts = (meshes.verts[None] @ cameras.R.transpose(1, 2) + cameras.t[:, None]).reshape(
                B * V, 3
            )
            inst_cam = torch.arange(B, device=meshes.device).repeat_interleave(F)
            face = torch.arange(F, device=meshes.device).repeat(B)
            corners = meshes.faces if B == 1 else gather_rows(meshes.faces, face) + (inst_cam * V)[:, None]
            vert_cam = torch.arange(B, device=meshes.device).repeat_interleave(V)
        else:
            vert_cam = meshes.vert_to_mesh
            rot = gather_rows(cameras.R, vert_cam)
            cam_verts = (rot @ meshes.verts[..., None])[..., 0] + gather_rows(cameras.t, vert_cam)
            face, inst_cam, corners = torch.arange(F, device=meshes.device), meshes.face_to_mesh, meshes.faces
        f, c = cameras.focal_t, cameras.principal_t  # (1, 2) broadcasts over the vertices of one camera
        if B > 1:
            f, c = gather_rows(f, vert_cam), gather_rows(c, vert_cam)
        xy, z = cam_verts[:, :2], cam_verts[:, 2:]
        if cameras.projection == "perspective":
            hom = torch.cat([f * xy + c * z, z], -1)
        else:
            hom = torch.cat([f * xy + c, torch.ones_like(z)], -1)
        return FaceInstances(face=face, camera=inst_cam, cam_verts=cam_verts, hom=hom, corners=corners)

    def corner_hom(self) -> Tensor:
        """``(I, 3, 3)`` homogeneous pixel coordinates of each instance's corners."""
        return gather_rows(self.hom, self.corners)

    def corner_depth(self) -> Tensor:
        """``(I, 3)`` camera-space depth of each instance's corners."""
        return gather_rows(self.cam_verts[:, 2], self.corners)


def check_scene(meshes: Meshes, cameras: Cameras, backend: str) -> None:
    """The checks every mesh renderer makes on its scene, with errors naming the argument."""
    if not isinstance(meshes, Meshes):
        raise TypeError(f"meshes must be a gradiance Meshes, got {type(meshes).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be a gradiance Cameras, got {type(cameras).__name__}")
    check_choice(backend, "backend", ("auto", "torch", "numba"))
    if meshes.device != cameras.device:
        raise ValueError(
            f"meshes are on {meshes.device} but cameras are on {cameras.device}; move one of them"
        )
    if len(meshes) not in (1, len(cameras)):
        raise ValueError(f"meshes must hold 1 mesh or one per camera ({len(cameras)}), got {len(meshes)}")
    if not bool(torch.isfinite(meshes.verts).all()):
        raise ValueError("meshes.verts contains NaN or infinite values")
    if cameras.distortion is not None:
        raise ValueError(
            "cameras have lens distortion, which the mesh renderers do not model; pass undistorted cameras"
        )
    count = meshes.faces.shape[0] * (len(cameras) if len(meshes) == 1 else 1)
    if count >= raster_torch.MAX_INSTANCES:
        raise ValueError(
            f"{count} face-camera pairs exceed the {raster_torch.MAX_INSTANCES} one call supports"
        )


def pairs_near_by(backend: str, device: torch.device) -> Callable[..., NearPairs]:
    """``pairs_near`` of the torch reference, or its compiled twin where ``backend`` picks numba for
    ``device``."""
    if use_numba(backend, device):
        from ..backends.numba.soft import pairs_near as compiled

        return compiled
    return pairs_near
