"""OpenDR's approximate derivatives of a rendered image (Loper and Black, ECCV 2014, Sec. 3).

The forward pass is the hard render, unchanged. In the backward pass the image is split into interior
pixels, whose derivative with respect to the projected vertices comes from the barycentric coordinates
(ordinary autograd through the hard render), and boundary pixels, where a face's edge meets something
else and the image is not differentiable. At a boundary pixel ``p`` the image is treated as moving rigidly
with the occluding face ``f``: moving ``f``'s projection by ``d`` shifts the local image by ``d``, so
``dI_p / dx_v = -(dI/du)_p b_v`` (and likewise along ``v``), with ``(dI/du, dI/dv)`` the image-space
derivatives from the central difference filter ``[-1/2, 0, 1/2]`` (one-sided at the image border) and
``b_v`` the barycentric coordinates of ``p``'s centre on ``f``, clipped to the triangle. This replaces the
barycentric term at boundary pixels.

A pixel is a boundary pixel when one of its four neighbours shows the background, or another face of a
discontinuous surface (a silhouette or an occlusion edge): one that shares no vertex with the pixel's face
and whose plane does not continue the pixel's surface (``boundary_occluders``). Neighbouring faces of one
continuous surface are interior, as in OpenDR, whose boundary pixels lie on silhouette and occlusion
edges only; otherwise every pixel of a finely tessellated mesh would count as a boundary and lose its
shading gradient. The occluder is the nearest of the faces shown by the pixel and by
its discontinuous neighbours (the background is farthest).
Pixels of faces with a corner behind the near plane keep only the barycentric term. Everything stays
finite: degenerate faces give zero barycentrics.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from ..core.cameras import Cameras
from ..core.meshes import Meshes
from ..core.packing import gather_rows
from .rasterize import Fragments
from .visibility import VisibilityScene, with_visibility_gradient


def opendr_visibility(
    image: Tensor,
    fragments: Fragments,
    meshes: Meshes,
    cameras: Cameras,
    *,
    prepared: tuple[Tensor, VisibilityScene] | None = None,
    geometry_stopped: bool = False,
    boundary: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """``image`` unchanged, with OpenDR's derivative at boundary pixels in the backward pass.

    Args:
        image: ``(B, H, W, C)`` rendered from ``fragments`` (colour, alpha, any feature).
        fragments: ``rasterize(meshes, cameras)`` output; the nearest layer is used.
        meshes, cameras: the scene rendered; gradients reach ``meshes.verts`` and the camera parameters
            through the projected corners.
        prepared: ``visibility_scene(fragments, meshes, cameras)``, when already built.
        geometry_stopped: False (for any image): the incoming gradient is zeroed at boundary pixels, so
            that the boundary term replaces the barycentric one, but appearance parameters (textures,
            lights, colours) lose their gradient there too. True: the caller has already stopped the
            gradient of the geometric per-pixel terms (barycentrics, surface points, normals) at the
            ``boundary_pixels`` when it shaded the image (``render(method="opendr")`` does), so the
            incoming gradient passes on unchanged and appearance parameters keep theirs, as in OpenDR.
        boundary: ``boundary_instances(scene, B)`` of the prepared scene, when already found.
    """
    rule = partial(opendr_rule, zero_boundary=not geometry_stopped, boundary=boundary)
    return with_visibility_gradient(image, fragments, meshes, cameras, rule, prepared)


def boundary_pixels(boundary: tuple[Tensor, Tensor], scene: VisibilityScene) -> Tensor:
    """``(N,)`` bool, True at the pixels of ``boundary = boundary_instances(scene, B)`` whose own face is
    covered: where ``render(method="opendr")`` stops the gradient of the geometric per-pixel terms."""
    pixel, _ = boundary
    out = torch.zeros_like(scene.face_id, dtype=torch.bool)
    out[pixel] = True
    return out & (scene.face_id >= 0)


def boundary_instances(scene: VisibilityScene, batch: int) -> tuple[Tensor, Tensor]:
    """``(pixel, inst)``: the boundary pixels whose occluder has an instance (all its corners in front of
    the camera; the others keep only the barycentric term) and that instance."""
    H, W = scene.image_size
    pixel, face = boundary_occluders(scene, batch)
    table, F = _instance_table(scene, batch)
    camera = torch.div(pixel, H * W, rounding_mode="floor")
    inst = gather_rows(table, camera * F + face)
    known = torch.nonzero(inst >= 0).flatten()
    return gather_rows(pixel, known), gather_rows(inst, known)


def image_derivatives(image: Tensor) -> tuple[Tensor, Tensor]:
    """``(dI/du, dI/dv)`` of ``(B, H, W, C)`` images per pixel: central differences inside, one-sided
    differences on the border rows and columns (zero for a one-pixel-wide image)."""

    def along(x: Tensor, dim: int) -> Tensor:
        n = x.shape[dim]
        if n < 2:
            return torch.zeros_like(x)
        nxt = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
        prv = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
        span = torch.full((n,), 2.0, dtype=x.dtype, device=x.device)
        span[0] = span[-1] = 1.0
        shape = [1] * x.dim()
        shape[dim] = n
        return (nxt - prv) / span.reshape(shape)

    return along(image, 2), along(image, 1)


CONTINUITY = 0.02
"""Relative depth tolerance under which two neighbouring pixels' faces count as one continuous surface."""


def _instance_table(scene: VisibilityScene, batch: int) -> tuple[Tensor, int]:
    """``(table, F)``: ``table[camera * F + face]`` is the instance of that face in that camera, -1 where it
    has none (a corner behind the camera)."""
    F = int(scene.faces.shape[0])
    table = torch.full((batch * F,), -1, dtype=torch.int64, device=scene.face.device)
    table[scene.camera * F + scene.face] = torch.arange(scene.face.numel(), device=scene.face.device)
    return table, F


def _depth_on_face(scene: VisibilityScene, inst: Tensor, pixel: Tensor) -> Tensor:
    """Depth of the planes of instances ``inst`` (extended beyond the triangles) at the centres of the flat
    pixels ``pixel``; inf where the instance is missing or the plane is undefined there."""
    H, W = scene.image_size
    col = (pixel % W).to(scene.planes.dtype) + 0.5
    row = (torch.div(pixel, W, rounding_mode="floor") % H).to(scene.planes.dtype) + 0.5
    bary, ok = scene.barycentrics(inst.clamp_min(0), col, row)
    z = (bary * gather_rows(scene.corner_depth, inst.clamp_min(0))).sum(-1)
    return torch.where(ok & (inst >= 0), z, torch.full_like(z, torch.inf))


def boundary_occluders(scene: VisibilityScene, batch: int) -> tuple[Tensor, Tensor]:
    """``(pixel, face)``: the boundary pixels (flat indices) and the packed face of their occluder.

    Two neighbouring pixels showing different faces lie on one continuous surface when the faces share a
    vertex, or when each face's plane, extended to the other pixel's centre, has that pixel's depth there
    within ``CONTINUITY`` (relative); otherwise, or next to the background, both are boundary pixels."""
    H, W = scene.image_size
    face = scene.face_id.reshape(batch, H, W)
    flat_face = scene.face_id
    table, F = _instance_table(scene, batch)
    camera = torch.div(torch.arange(flat_face.numel(), device=face.device), H * W, rounding_mode="floor")
    inst = torch.where(flat_face >= 0, gather_rows(table, camera * F + flat_face.clamp_min(0)), -1)
    # the corner vertices of each pixel's face; -1, -2, -3 for the background (shared with no face)
    no_face = -torch.arange(1, 4, device=face.device)
    verts = torch.where(
        (face >= 0)[..., None], gather_rows(scene.faces, face.clamp_min(0)), no_face.expand(*face.shape, 3)
    )
    depth = scene.depth.reshape(batch, H, W)
    index = torch.arange(flat_face.numel(), device=face.device).reshape(batch, H, W)
    best_face, best_depth = face.clone(), depth.clone()
    boundary = torch.zeros_like(face, dtype=torch.bool)
    for dim, shift in ((1, 1), (1, -1), (2, 1), (2, -1)):
        n_face = torch.roll(face, shift, dim)
        n_depth = torch.roll(depth, shift, dim)
        n_verts = torch.roll(verts, shift, dim)
        shared = (
            (verts[..., :, None] == n_verts[..., None, :]).flatten(-2).any(-1) & (face >= 0) & (n_face >= 0)
        )
        valid = torch.ones_like(boundary)  # roll wraps around: the wrapped row or column has no neighbour
        edge = 0 if shift == 1 else (H if dim == 1 else W) - 1
        valid.narrow(dim, edge, 1).fill_(False)
        differs = valid & (n_face != face) & ~shared
        # covered on both sides: continuous when each face's plane meets the other pixel's depth
        both = torch.nonzero((differs & (face >= 0) & (n_face >= 0)).reshape(-1)).flatten()
        here, there = both, gather_rows(torch.roll(index, shift, dim).reshape(-1), both)
        z_here, z_there = gather_rows(scene.depth, here), gather_rows(scene.depth, there)
        z_there_at_here = _depth_on_face(scene, gather_rows(inst, there), here)
        z_here_at_there = _depth_on_face(scene, gather_rows(inst, here), there)
        continuous = ((z_there_at_here - z_here).abs() <= CONTINUITY * z_here) & (
            (z_here_at_there - z_there).abs() <= CONTINUITY * z_there
        )
        differs.reshape(-1)[gather_rows(both, torch.nonzero(continuous).flatten())] = False
        boundary |= differs
        nearer = differs & (n_depth < best_depth)
        best_face = torch.where(nearer, n_face, best_face)
        best_depth = torch.where(nearer, n_depth, best_depth)
    pixel = torch.nonzero((boundary & (best_face >= 0)).reshape(-1)).flatten()
    return pixel, gather_rows(best_face.reshape(-1), pixel)


def opendr_rule(
    image: Tensor,
    grad: Tensor,
    screen: Tensor,
    scene: VisibilityScene,
    zero_boundary: bool = True,
    boundary: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """The backward rule: the incoming gradient with boundary pixels zeroed (for the barycentric term;
    unchanged with ``zero_boundary=False``), and the boundary pixels' gradient for the projected corners
    ``screen``. ``boundary`` is ``boundary_instances(scene, B)`` when already found."""
    B, H, W, C = image.shape
    out = torch.zeros_like(screen)
    pixel, inst = boundary if boundary is not None else boundary_instances(scene, B)
    flat_grad = grad.reshape(-1, C)
    passed = flat_grad.clone()
    if zero_boundary:
        passed[pixel] = 0  # the boundary term replaces the barycentric one there
    if pixel.numel() == 0:
        return passed.reshape(grad.shape), out
    du, dv = (d.reshape(-1, C) for d in image_derivatives(image))
    g = gather_rows(flat_grad, pixel)
    gu, gv = (g * gather_rows(du, pixel)).sum(-1), (g * gather_rows(dv, pixel)).sum(-1)
    col = (pixel % W).to(image.dtype) + 0.5
    row = (torch.div(pixel, W, rounding_mode="floor") % H).to(image.dtype) + 0.5
    bary, ok = scene.barycentrics(inst, col, row)
    bary = bary.clamp_min(0)
    total = bary.sum(-1, keepdim=True)
    bary = torch.where(ok[:, None] & (total > 0), bary / total.clamp_min(1e-12), torch.zeros_like(bary))
    rows = gather_rows(scene.corners, inst)
    for k in range(3):
        out.index_add_(0, rows[:, k], -torch.stack([gu, gv], -1) * bary[:, k : k + 1])
    return passed.reshape(grad.shape), out
