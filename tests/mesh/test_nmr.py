"""The Neural 3D Mesh Renderer's gradient: a per-edge, per-line, per-pixel loop, finite differences of a
supersampled render, degenerate input and inverse problems."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.mesh import RenderSettings, render
from gradiance.mesh.instances import FaceInstances
from gradiance.mesh.nmr import MIN_DISTANCE, NMRSettings, nmr_visibility
from tests.mesh.scenes import (
    gradient_on_hard_cases,
    icosphere_to_spot_iou,
    sideways_derivatives,
    spot_pose_error,
    triangle_soup,
)

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


@pytest.mark.parametrize("edge", [0.0, 0.3, 0.8])
@pytest.mark.parametrize("quad", [False, True], ids=["silhouette", "occlusion"])
def test_sign_and_magnitude_against_a_supersampled_render(quad: bool, edge: float) -> None:
    """NMR's derivative of the loss for a sideways move of the triangle has the sign of a central
    difference of the supersampled (pixel-area) render, and a magnitude within a factor of 20 of it: NMR
    divides a pixel's whole colour change by the distance to its centre (0.1 to 1 pixel here), where the
    area integral changes with the covered fraction, so it overshoots by up to 1 / distance (3x to 18x on
    these positions)."""
    settings = RenderSettings(nmr=NMRSettings(max_distance=1))
    ours, reference = sideways_derivatives("nmr", settings, edge, quad)
    assert reference < 0 and 1 / 20 < ours / reference < 20, (ours, reference)


def test_spot_pose_from_one_silhouette_from_30_degrees() -> None:
    rot_error, shift_error = spot_pose_error("nmr", RenderSettings())
    print(f"nmr: pose error {rot_error:.2f} degrees, {shift_error:.4f} units")
    assert rot_error < 1.0 and shift_error < 0.01


def test_icosphere_deformed_to_spot_from_eight_silhouettes() -> None:
    start, final = icosphere_to_spot_iou("nmr", RenderSettings(), 0.75, soft_target=False, steps=100)
    print(f"nmr: silhouette IoU {start:.3f} -> {final:.3f} over 8 views")
    assert start < 0.6 and final > 0.95


def test_degenerate_parallel_and_behind_the_camera_give_finite_gradients() -> None:
    grad = gradient_on_hard_cases("nmr")
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_exception() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        NMRSettings(max_distance=0)
    with pytest.raises(ValueError, match="max_pairs_per_chunk"):
        NMRSettings(max_pairs_per_chunk=-1)
    mesh, cams = triangle_soup(0)
    fr = render(mesh, cams).fragments
    with pytest.raises(ValueError, match="image"):
        nmr_visibility(torch.zeros(1, 3, 3, 4, dtype=DT), fr, mesh, cams)
