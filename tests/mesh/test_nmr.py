"""The Neural 3D Mesh Renderer's gradient: a per-edge, per-line, per-pixel loop, finite differences of a
supersampled render, degenerate input and inverse problems."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core import Cameras, Meshes, icosphere, look_at, normalize_to_unit_sphere
from gradiance.core.transforms import axis_angle_to_matrix
from gradiance.io import load_asset
from gradiance.mesh import RenderSettings, edge_length_loss, laplacian_smoothing, render
from gradiance.mesh.instances import FaceInstances
from gradiance.mesh.nmr import MIN_DISTANCE, NMRSettings, nmr_visibility
from tests.mesh.scenes import triangle_soup

DT = torch.float64


def _brute_force_screen_gradient(
    image: torch.Tensor,
    grad: torch.Tensor,
    face_id: torch.Tensor,
    depth: torch.Tensor,
    inst: FaceInstances,
    R: int,
) -> torch.Tensor:
    """dL/d(projected corner) by the rule in ``gradiance.mesh.nmr``'s docstring, one scalar at a time."""
    _, H, W, _ = image.shape
    hom = inst.hom.detach()
    screen = (hom[:, :2] / hom[:, 2:]).tolist()
    zs = inst.cam_verts[:, 2].detach().tolist()
    out = [[0.0, 0.0] for _ in screen]
    for i in range(inst.face.numel()):
        b, f = int(inst.camera[i]), int(inst.face[i])
        rows = [int(r) for r in inst.corners[i]]
        if any(hom[r, 2] <= 0 for r in rows):
            continue

        def plane_depth(u: float, v: float, rows: list[int] = rows) -> float:
            h = [hom[r].tolist() for r in rows]
            e = []
            for k in range(3):
                p, q = h[(k + 1) % 3], h[(k + 2) % 3]
                n = [p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]]
                e.append(n[0] * u + n[1] * v + n[2])
            s = sum(e)
            return math.inf if s == 0 else sum(ek * zs[r] for ek, r in zip(e, rows, strict=True)) / s

        for axis in (0, 1):
            s_len, t_len = (W, H) if axis == 0 else (H, W)

            def at(line: int, pos: int, axis: int = axis) -> tuple[int, int]:
                return (pos, line) if axis == 0 else (line, pos)  # (row, col)

            for k in range(3):
                ra, rb, ro = rows[k], rows[(k + 1) % 3], rows[(k + 2) % 3]
                a_s, a_t = screen[ra][axis], screen[ra][1 - axis]
                b_s, b_t = screen[rb][axis], screen[rb][1 - axis]
                o_s, o_t = screen[ro][axis], screen[ro][1 - axis]
                if a_s == b_s:
                    continue
                for line in range(s_len):
                    c = line + 0.5
                    if not min(a_s, b_s) <= c < max(a_s, b_s):
                        continue
                    w_b = (c - a_s) / (b_s - a_s)
                    w_a = 1 - w_b
                    t = a_t + w_b * (b_t - a_t)
                    p_s, p_t = (a_s, a_t) if (c - o_s) * (c - a_s) <= 0 else (b_s, b_t)
                    t_opp = o_t + ((c - o_s) / (p_s - o_s) if p_s != o_s else 0.5) * (p_t - o_t)
                    if t_opp == t:
                        continue
                    inward = 1 if t_opp > t else -1
                    p_in = math.ceil(t - 0.5) if inward > 0 else math.floor(t - 0.5)
                    p_out = p_in - inward
                    if not (0 <= p_in < t_len and 0 <= p_out < t_len):
                        continue
                    pin, pout = at(line, p_in), at(line, p_out)
                    moves = []  # (pixel position, colour it would take)
                    if int(face_id[b, pin[0], pin[1]]) == f:
                        for step in range(R):
                            pos = p_out - step * inward
                            if 0 <= pos < t_len:
                                r, cc = at(line, pos)
                                u, v = (cc + 0.5, r + 0.5)
                                z = plane_depth(u, v)
                                shown = float(depth[b, r, cc]) if int(face_id[b, r, cc]) >= 0 else math.inf
                                if 0 < z < shown:
                                    moves.append((pos, image[b, pin[0], pin[1]]))
                    for step in range(R):
                        pos = p_in + step * inward
                        if (pos + 0.5 - t) * inward > abs(t_opp - t) or not 0 <= pos < t_len:
                            break
                        r, cc = at(line, pos)
                        if int(face_id[b, r, cc]) == f:
                            moves.append((pos, image[b, pout[0], pout[1]]))
                    for pos, new in moves:
                        r, cc = at(line, pos)
                        diff = float(((image[b, r, cc] - new) * grad[b, r, cc]).sum())
                        if diff <= 0:
                            continue
                        dist = pos + 0.5 - t
                        dist = math.copysign(max(abs(dist), MIN_DISTANCE), dist)
                        out[ra][1 - axis] -= diff * w_a / dist
                        out[rb][1 - axis] -= diff * w_b / dist
    return torch.tensor(out, dtype=DT)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force_loop(seed: int) -> None:
    mesh, cams = triangle_soup(seed, n_faces=4)
    verts = mesh.verts.clone().requires_grad_()
    settings = RenderSettings(nmr=NMRSettings(max_distance=5))
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(len(cams), *cams.image_size, 4, generator=g, dtype=DT)

    def loss(method: str) -> tuple[torch.Tensor, torch.Tensor]:
        out = render(mesh.with_verts(verts), cams, method=method, settings=settings)
        rgba = torch.cat([out.image, out.alpha], -1)
        (grad,) = torch.autograd.grad((rgba * weights).sum(), verts)
        return grad, rgba.detach()

    nmr_grad, rgba = loss("nmr")
    hard_grad, hard_rgba = loss("hard")
    assert torch.equal(rgba, hard_rgba)  # the forward pass is the hard render
    fr = render(mesh, cams).fragments
    inst = FaceInstances.build(mesh.with_verts(verts), cams)
    screen_grad = _brute_force_screen_gradient(rgba, weights, fr.face_id[..., 0], fr.depth[..., 0], inst, R=5)
    assert float(screen_grad.abs().sum()) > 0
    screen = inst.hom[:, :2] / inst.hom[:, 2:]
    (want,) = torch.autograd.grad(screen, verts, screen_grad)
    torch.testing.assert_close(nmr_grad - hard_grad, want)


def _triangle_scene(shift: float) -> tuple[Meshes, Cameras]:
    """A vertical edge at x = shift in front of a far quad: the silhouette edge of the near triangle and,
    behind it, an occlusion edge against the quad. Orthographic, 1 world unit = 1 pixel."""
    near = torch.tensor([[shift, -6.0, 1.0], [shift, 6.0, 1.0], [shift - 6.0, 0.0, 1.0]], dtype=DT)
    far = torch.tensor([[-9.0, -9.0, 5.0], [9.0, -9.0, 5.0], [9.0, 9.0, 5.0], [-9.0, 9.0, 5.0]], dtype=DT)
    verts = torch.cat([near, far])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [3, 5, 6]])
    cams = Cameras(
        torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 1.0, (8.0, 8.0), (16, 16), 0.0, 10.0, "orthographic"
    )
    return Meshes.single(verts, faces), cams


@pytest.mark.parametrize("edge", [0.0, 0.3, 0.8])
@pytest.mark.parametrize("background", ["empty", "occluded quad"])
def test_sign_and_magnitude_against_a_supersampled_render(background: str, edge: float) -> None:
    """Target: the triangle 0.6 pixel to the right. NMR's derivative of the loss for a sideways move of
    the triangle has the sign of a central difference of the supersampled (pixel-area) render, and a
    magnitude within a factor of 20 of it: NMR divides a pixel's whole colour change by the distance to
    its centre (0.1 to 1 pixel here), where the area integral changes with the covered fraction, so it
    overshoots by up to 1 / distance (3x to 18x on these positions)."""

    def scene(shift: float) -> tuple[Meshes, Cameras]:
        mesh, cams = _triangle_scene(shift)
        if background == "empty":
            mesh = Meshes.single(mesh.verts[:3], mesh.faces[:1])
        colors = torch.tensor([[1.0, 0.2, 0.2]] * 3 + [[0.1, 0.3, 0.9]] * (mesh.verts.shape[0] - 3), dtype=DT)
        return Meshes.single(mesh.verts, mesh.faces, vert_colors=colors), cams

    def supersampled(shift: float, factor: int = 16) -> torch.Tensor:
        mesh, cams = scene(shift)
        fine = Cameras(
            cams.R,
            cams.t,
            float(factor),
            (8.0 * factor, 8.0 * factor),
            (16 * factor,) * 2,
            0.0,
            10.0,
            "orthographic",
        )
        out = render(mesh, fine)
        rgba = torch.cat([out.image, out.alpha], -1)
        return torch.nn.functional.avg_pool2d(rgba.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)

    start = edge  # the edge at pixel coordinate 8 + edge
    target = supersampled(start + 0.6)
    h = 0.05
    fd = float(
        ((supersampled(start + h) - target) ** 2).sum() - ((supersampled(start - h) - target) ** 2).sum()
    ) / (2 * h)
    mesh, cams = scene(start)
    shift = torch.zeros(1, dtype=DT, requires_grad=True)
    moved = (
        mesh.verts
        + torch.cat([shift, torch.zeros(2, dtype=DT)]) * (torch.arange(mesh.verts.shape[0]) < 3)[:, None]
    )
    out = render(
        mesh.with_verts(moved), cams, method="nmr", settings=RenderSettings(nmr=NMRSettings(max_distance=1))
    )
    loss = ((torch.cat([out.image, out.alpha], -1) - target) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, shift)
    ratio = float(grad) / fd
    assert fd < 0 and 1 / 20 < ratio < 20, (float(grad), fd)


def test_spot_pose_from_one_silhouette_from_30_degrees() -> None:
    spot = normalize_to_unit_sphere(load_asset("spot")).geometry()
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4]]), image_size=(64, 64), fov=45.0)

    def silhouette(rotvec: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        posed = spot.with_verts(spot.verts @ axis_angle_to_matrix(rotvec).T + shift)
        return render(posed, cams, method="nmr").alpha

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
    error = math.degrees(float((rotvec.detach() - true_rot).norm()))
    print(f"nmr: pose error {error:.2f} degrees, {float((shift.detach() - true_shift).norm()):.4f} units")
    assert error < 1.0 and float((shift.detach() - true_shift).norm()) < 0.01


def test_icosphere_deformed_to_spot_from_eight_silhouettes() -> None:
    spot = normalize_to_unit_sphere(load_asset("spot")).geometry()
    az = torch.arange(8) * (2 * math.pi / 8)
    el = torch.tensor([0.5, -0.3] * 4)
    eyes = 2.7 * torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], -1)
    cams = look_at(eyes, image_size=(64, 64), fov=45.0)
    target = render(spot, cams).alpha  # hard masks: NMR's forward pass is the hard render
    sphere = icosphere(3, radius=0.75)
    offsets = torch.zeros_like(sphere.verts, requires_grad=True)
    opt = torch.optim.Adam([offsets], lr=0.01)

    def iou(a: torch.Tensor) -> float:
        return float(((a > 0.5) & (target > 0.5)).sum() / ((a > 0.5) | (target > 0.5)).sum())

    start = iou(render(sphere, cams).alpha)
    for _ in range(100):
        mesh = sphere.offset_verts(offsets)
        alpha = render(mesh, cams, method="nmr").alpha
        loss = (
            (alpha - target).pow(2).mean() + 0.01 * laplacian_smoothing(mesh) + 0.1 * edge_length_loss(mesh)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = iou(render(sphere.offset_verts(offsets.detach()), cams).alpha)
    print(f"nmr: silhouette IoU {start:.3f} -> {final:.3f} over 8 views")
    assert start < 0.6 and final > 0.95


def test_degenerate_parallel_and_behind_the_camera_give_finite_gradients() -> None:
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
    out = render(mesh.with_verts(v), cams, method="nmr")
    ((torch.cat([out.image, out.alpha], -1) - 0.5) ** 2).sum().backward()
    assert v.grad is not None and bool(torch.isfinite(v.grad).all()) and float(v.grad.abs().sum()) > 0


def test_exception() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        NMRSettings(max_distance=0)
    with pytest.raises(ValueError, match="max_pairs_per_chunk"):
        NMRSettings(max_pairs_per_chunk=-1)
    mesh, cams = triangle_soup(0)
    fr = render(mesh, cams).fragments
    with pytest.raises(ValueError, match="image"):
        nmr_visibility(torch.zeros(1, 3, 3, 4, dtype=DT), fr, mesh, cams)
