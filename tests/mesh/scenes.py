"""Tiny scenes shared by the mesh renderer tests."""

from __future__ import annotations

import math

import torch

from gradiance.core import Cameras, Meshes, icosphere, look_at, normalize_to_unit_sphere
from gradiance.core.transforms import axis_angle_to_matrix
from gradiance.io import load_asset
from gradiance.mesh import RenderSettings, edge_length_loss, laplacian_smoothing, render

DT = torch.float64


def triangle_soup(
    seed: int = 0, n_faces: int = 4, near: float = 0.01, far: float = 100.0
) -> tuple[Meshes, Cameras]:
    """``n_faces`` random, unconnected, vertex-coloured triangles near the origin and two cameras at 8x10."""
    g = torch.Generator().manual_seed(seed)
    verts = (torch.rand(n_faces * 3, 3, generator=g, dtype=DT) - 0.5) * torch.tensor(
        [1.6, 1.6, 1.0], dtype=DT
    )
    faces = torch.arange(n_faces * 3).reshape(n_faces, 3)
    colors = torch.rand(n_faces * 3, 3, generator=g, dtype=DT)
    eyes = torch.tensor([[0.2, 0.1, -3.0], [-1.0, 0.5, -2.5]], dtype=DT)
    cams = look_at(eyes, image_size=(8, 10), fov=35.0, near=near, far=far)
    return Meshes.single(verts, faces, vert_colors=colors), cams


def edge_scene(shift: float, quad: bool) -> tuple[Meshes, Cameras]:
    """A red triangle whose vertical right edge lies at pixel column ``8 + shift`` of a 16x16 orthographic
    view (1 world unit = 1 pixel), optionally in front of a blue quad filling the view: a silhouette edge,
    or an occlusion edge against the quad."""
    near = torch.tensor([[shift, -6.0, 1.0], [shift, 6.0, 1.0], [shift - 6.0, 0.0, 1.0]], dtype=DT)
    far = torch.tensor([[-9.0, -9.0, 5.0], [9.0, -9.0, 5.0], [9.0, 9.0, 5.0], [-9.0, 9.0, 5.0]], dtype=DT)
    verts = torch.cat([near, far]) if quad else near
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [3, 5, 6]])[: 3 if quad else 1]
    colors = torch.tensor([[1.0, 0.2, 0.2]] * 3 + [[0.1, 0.3, 0.9]] * (verts.shape[0] - 3), dtype=DT)
    cams = Cameras(
        torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 1.0, (8.0, 8.0), (16, 16), 0.0, 10.0, "orthographic"
    )
    return Meshes.single(verts, faces, vert_colors=colors), cams


def gradient_on_hard_cases(method: str) -> torch.Tensor:
    """The vertex gradient of ``method`` on a scene with edges along a row and a column, a zero-area face
    (a repeated corner) and a face with one corner behind the camera."""
    verts = torch.tensor(
        [
            [-0.5, -0.5, 0.0],
            [0.5, -0.5, 0.0],
            [0.5, 0.5, 0.0],  # edges along a row and a column
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.3, 0.3, 0.0],  # zero area: a repeated corner
            [-0.4, 0.2, 0.5],
            [0.4, 0.3, 0.5],
            [0.0, 0.4, -4.0],  # one corner behind the camera
        ],
        dtype=DT,
    )
    mesh = Meshes.single(verts, torch.arange(9).reshape(3, 3))
    cams = look_at(torch.tensor([[0.0, 0.0, -3.0]], dtype=DT), image_size=(12, 12), fov=50.0, near=0.1)
    v = verts.clone().requires_grad_()
    out = render(mesh.with_verts(v), cams, method=method)
    ((torch.cat([out.image, out.alpha], -1) - 0.5) ** 2).sum().backward()
    assert v.grad is not None
    return v.grad


def supersampled_rgba(mesh: Meshes, cams: Cameras, factor: int = 16) -> torch.Tensor:
    """``(B, H, W, 4)`` pixel-area averages of the hard render (``factor``^2 samples per pixel) of an
    orthographic view."""
    fine = cams.upscaled(factor)
    out = render(mesh, fine)
    rgba = torch.cat([out.image, out.alpha], -1).permute(0, 3, 1, 2)
    return torch.nn.functional.avg_pool2d(rgba, factor).permute(0, 2, 3, 1)


def sideways_derivatives(
    method: str, settings: RenderSettings, edge: float, quad: bool
) -> tuple[float, float]:
    """``(ours, reference)``: d(loss)/d(shift) of ``edge_scene``'s triangle for the loss ``|rgba - T|^2`` with
    ``T`` the supersampled render 0.6 pixel to the right, from ``method``'s gradient and from a central
    difference of the supersampled render."""
    target = supersampled_rgba(*edge_scene(edge + 0.6, quad))

    def supersampled_loss(x: float) -> float:
        return float(((supersampled_rgba(*edge_scene(x, quad)) - target) ** 2).sum())

    h = 0.05
    reference = (supersampled_loss(edge + h) - supersampled_loss(edge - h)) / (2 * h)
    mesh, cams = edge_scene(edge, quad)
    shift = torch.zeros(1, dtype=DT, requires_grad=True)
    moves = (torch.arange(mesh.verts.shape[0]) < 3).to(DT)[:, None] * torch.tensor([1.0, 0.0, 0.0], dtype=DT)
    out = render(mesh.with_verts(mesh.verts + shift * moves), cams, method=method, settings=settings)
    loss = ((torch.cat([out.image, out.alpha], -1) - target) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, shift)
    return float(grad), reference


def spot_pose_error(method: str, settings: RenderSettings, steps: int = 150) -> tuple[float, float]:
    """Spot's pose recovered from one 64x64 silhouette 30 degrees (and a small shift) away with Adam:
    the final rotation error in degrees and translation error in units."""
    spot = normalize_to_unit_sphere(load_asset("spot")).geometry()
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4]]), image_size=(64, 64), fov=45.0)

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
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        loss = ((silhouette(rotvec, shift) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    rot_error = math.degrees(float((rotvec.detach() - true_rot).norm()))
    return rot_error, float((shift.detach() - true_shift).norm())


def icosphere_to_spot_iou(
    method: str, settings: RenderSettings, radius: float, soft_target: bool, steps: int
) -> tuple[float, float]:
    """An icosphere (level 3) deformed into Spot from eight 64x64 silhouettes with Laplacian and edge
    regularisers: the hard-silhouette IoU before and after. The targets are hard masks, or the method's own
    renders of Spot with ``soft_target``."""
    spot = normalize_to_unit_sphere(load_asset("spot")).geometry()
    az = torch.arange(8) * (2 * math.pi / 8)
    el = torch.tensor([0.5, -0.3] * 4)
    eyes = 2.7 * torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], -1)
    cams = look_at(eyes, image_size=(64, 64), fov=45.0)
    hard_target = render(spot, cams).alpha
    target = render(spot, cams, method=method, settings=settings).alpha if soft_target else hard_target
    sphere = icosphere(3, radius=radius)
    offsets = torch.zeros_like(sphere.verts, requires_grad=True)
    opt = torch.optim.Adam([offsets], lr=0.01)

    def iou(alpha: torch.Tensor) -> float:
        a, b = alpha > 0.5, hard_target > 0.5
        return float((a & b).sum() / (a | b).sum())

    start = iou(render(sphere, cams).alpha)
    for _ in range(steps):
        mesh = sphere.offset_verts(offsets)
        alpha = render(mesh, cams, method=method, settings=settings).alpha
        loss = (
            (alpha - target).pow(2).mean() + 0.01 * laplacian_smoothing(mesh) + 0.1 * edge_length_loss(mesh)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return start, iou(render(sphere.offset_verts(offsets.detach()), cams).alpha)
