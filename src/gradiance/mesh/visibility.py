"""Shared pieces of the methods that keep the hard render and replace its visibility gradient in the
backward pass (``nmr``, ``opendr``): the scene they read and the autograd function they plug in with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..backends.torch.rasterize import barycentric_planes
from ..core.cameras import Cameras
from ..core.checks import check_tensor
from ..core.meshes import Meshes
from ..core.packing import gather_rows
from .instances import FaceInstances
from .rasterize import Fragments


@dataclass(frozen=True)
class VisibilityScene:
    """What a visibility gradient reads besides the image, without autograd.

    Attributes:
        face_id: ``(N,)`` packed face shown by each pixel ``b * H * W + i * W + j``, -1 for background.
        depth: ``(N,)`` depth shown, inf for background.
        corners: ``(I, 3)`` rows of the projected corners (``screen``) of each face instance in front of
            the camera (faces with a corner behind it cannot be projected and are left out).
        face: ``(I,)`` packed face of each instance; camera: ``(I,)`` its camera.
        planes: ``(I, 3, 3)`` barycentric planes ``n_k`` (``e_k = n_k . (u, v, 1)``, perspective-correct
            barycentrics ``e / sum(e)``, valid beyond the triangle too).
        corner_depth: ``(I, 3)`` camera-space depth of the corners.
        image_size: ``(H, W)``.
        faces: ``(F, 3)`` packed vertex indices of every face (``meshes.faces``), for connectivity.
    """

    face_id: Tensor
    depth: Tensor
    corners: Tensor
    face: Tensor
    camera: Tensor
    planes: Tensor
    corner_depth: Tensor
    image_size: tuple[int, int]
    faces: Tensor

    def barycentrics(self, inst: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """``(bary, ok)``: barycentrics ``(P, 3)`` of points ``(u, v)`` (pixels) on the planes of instances
        ``inst``, and where they are defined (``sum(e) != 0``)."""
        p = torch.stack([u, v, torch.ones_like(u)], -1).to(self.planes.dtype)
        e = (gather_rows(self.planes, inst) * p[:, None]).sum(-1)
        s = e.sum(-1, keepdim=True)
        ok = s[:, 0] != 0
        return e / torch.where(ok[:, None], s, torch.ones_like(s)), ok

    def pixel(self, inst: Tensor, row: Tensor, col: Tensor) -> Tensor:
        """Flat index of pixel ``(row, col)`` in instance ``inst``'s camera."""
        H, W = self.image_size
        return (gather_rows(self.camera, inst) * H + row) * W + col


def visibility_scene(
    fragments: Fragments, meshes: Meshes, cameras: Cameras
) -> tuple[Tensor, VisibilityScene]:
    """``(screen, scene)``: the projected vertex positions ``(V', 2)`` in pixels, with autograd to the
    vertices and cameras, and the ``VisibilityScene`` of the nearest layer of ``fragments``."""
    H, W = cameras.image_size
    inst = FaceInstances.build(meshes, cameras)
    w = inst.hom[:, 2:]
    in_front = w > 0
    screen = inst.hom[:, :2] / torch.where(in_front, w, torch.ones_like(w))
    corner_ok = gather_rows(in_front[:, 0], inst.corners.reshape(-1)).reshape(-1, 3).all(1)
    keep = torch.nonzero(corner_ok).flatten()
    with torch.no_grad():
        corners = gather_rows(inst.corners, keep)
        hom = gather_rows(inst.hom.detach(), corners.reshape(-1)).reshape(-1, 3, 3)
        face_id = fragments.face_id[..., 0].reshape(-1)
        depth = fragments.depth[..., 0].reshape(-1).detach()
        scene = VisibilityScene(
            face_id=face_id,
            depth=torch.where(face_id >= 0, depth, torch.full_like(depth, torch.inf)),
            corners=corners,
            face=gather_rows(inst.face, keep),
            camera=gather_rows(inst.camera, keep),
            planes=barycentric_planes(hom),
            corner_depth=gather_rows(inst.cam_verts[:, 2].detach(), corners.reshape(-1)).reshape(-1, 3),
            image_size=(H, W),
            faces=meshes.faces,
        )
    return screen, scene


# (image, incoming gradient, screen, scene) -> (gradient passed on to the image, gradient for screen)
VisibilityRule = Callable[[Tensor, Tensor, Tensor, VisibilityScene], tuple[Tensor, Tensor]]


class _ReplaceVisibilityGradient(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        image: Tensor,
        screen: Tensor,
        scene: VisibilityScene,
        rule: VisibilityRule,
    ) -> Tensor:
        ctx.scene, ctx.rule = scene, rule  # type: ignore[attr-defined]
        ctx.save_for_backward(image.detach(), screen.detach())
        return image.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        image, screen = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_image, grad_screen = ctx.rule(image, grad, screen, ctx.scene)  # type: ignore[attr-defined]
        return grad_image, grad_screen, None, None


def with_visibility_gradient(
    image: Tensor,
    fragments: Fragments,
    meshes: Meshes,
    cameras: Cameras,
    rule: VisibilityRule,
    prepared: tuple[Tensor, VisibilityScene] | None = None,
) -> Tensor:
    """``image`` unchanged; in the backward pass ``rule`` decides what gradient reaches the image (and,
    through it, ordinary autograd) and what reaches the projected vertex positions. ``prepared`` is
    ``visibility_scene(fragments, meshes, cameras)`` when the caller has built it already."""
    B, (H, W) = len(cameras), cameras.image_size
    check_tensor(image, "image", (B, H, W, None))
    screen, scene = prepared if prepared is not None else visibility_scene(fragments, meshes, cameras)
    out: Tensor = _ReplaceVisibilityGradient.apply(image, screen, scene, rule)
    return out
