"""OpenDR's derivatives: a per-pixel loop, finite differences of a supersampled render, degenerate input
and inverse problems."""

from __future__ import annotations

import pytest
import torch

from gradiance.core import Meshes, icosphere, look_at
from gradiance.mesh import RenderSettings, render
from gradiance.mesh.instances import FaceInstances
from gradiance.mesh.opendr import CONTINUITY
from tests.mesh.scenes import (
    gradient_on_hard_cases,
    icosphere_to_spot_iou,
    sideways_derivatives,
    spot_pose_error,
    triangle_soup,
)

DT = torch.float64


def _brute_force(
    rgba: torch.Tensor,
    weights: torch.Tensor,
    face_id: torch.Tensor,
    depth: torch.Tensor,
    inst: FaceInstances,
    faces: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(boundary mask (B, H, W), dL/d(projected corner))`` by the rule in ``gradiance.mesh.opendr``'s
    docstring, pixel by pixel."""
    B, H, W, _ = rgba.shape
    hom = inst.hom.detach()
    zc = inst.cam_verts[:, 2].detach()

    def plane_depth(b: int, f: int, i: int, j: int) -> float:
        """Depth of face ``f``'s plane (camera ``b``) at the centre of pixel ``(i, j)``."""
        k = instance.get((b, f))
        if k is None:
            return float("inf")
        rows = [int(r) for r in inst.corners[k]]
        h = [hom[r] for r in rows]
        p = torch.tensor([j + 0.5, i + 0.5, 1.0], dtype=DT)
        e = torch.stack([torch.dot(torch.linalg.cross(h[(c + 1) % 3], h[(c + 2) % 3]), p) for c in range(3)])
        return float((e / e.sum() * zc[rows]).sum()) if float(e.sum()) != 0 else float("inf")

    out = torch.zeros(hom.shape[0], 2, dtype=DT)
    mask = torch.zeros(B, H, W, dtype=torch.bool)
    instance = {(int(c), int(f)): i for i, (c, f) in enumerate(zip(inst.camera, inst.face, strict=True))}
    for b in range(B):
        for i in range(H):
            for j in range(W):
                here = int(face_id[b, i, j])
                best, best_depth = here, float(depth[b, i, j].detach()) if here >= 0 else float("inf")
                for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    ni, nj = i + di, j + dj
                    if not (0 <= ni < H and 0 <= nj < W) or int(face_id[b, ni, nj]) == here:
                        continue
                    other = int(face_id[b, ni, nj])
                    if here >= 0 and other >= 0 and set(faces[here].tolist()) & set(faces[other].tolist()):
                        continue  # one connected surface: interior
                    if here >= 0 and other >= 0:
                        zh, zo = float(depth[b, i, j].detach()), float(depth[b, ni, nj].detach())
                        if (
                            abs(plane_depth(b, other, i, j) - zh) <= CONTINUITY * zh
                            and abs(plane_depth(b, here, ni, nj) - zo) <= CONTINUITY * zo
                        ):
                            continue  # the two planes continue each other: one surface
                    mask[b, i, j] = True
                    d = float(depth[b, ni, nj].detach()) if other >= 0 else float("inf")
                    if d < best_depth:
                        best, best_depth = other, d
                if not mask[b, i, j] or best < 0:
                    continue
                k = instance[(b, best)]
                rows = [int(r) for r in inst.corners[k]]
                if any(hom[r, 2] <= 0 for r in rows):
                    mask[b, i, j] = False
                    continue

                def diff(ii: int, jj: int, di: int, dj: int, b: int = b) -> torch.Tensor:
                    lo_i, lo_j = max(ii - di, 0), max(jj - dj, 0)
                    hi_i, hi_j = min(ii + di, H - 1), min(jj + dj, W - 1)
                    span = (hi_i - lo_i) + (hi_j - lo_j)
                    return (rgba[b, hi_i, hi_j] - rgba[b, lo_i, lo_j]) / span

                gu = float((weights[b, i, j] * diff(i, j, 0, 1)).sum())
                gv = float((weights[b, i, j] * diff(i, j, 1, 0)).sum())
                # barycentrics of the pixel centre on the occluder, clipped to the triangle
                u, v = j + 0.5, i + 0.5
                h = [hom[r] for r in rows]
                e = torch.stack(
                    [
                        torch.dot(
                            torch.linalg.cross(h[(c + 1) % 3], h[(c + 2) % 3]),
                            torch.tensor([u, v, 1.0], dtype=DT),
                        )
                        for c in range(3)
                    ]
                )
                bary = (e / e.sum()).clamp_min(0)
                bary = bary / bary.sum()
                for c in range(3):
                    out[rows[c], 0] -= gu * float(bary[c])
                    out[rows[c], 1] -= gv * float(bary[c])
    return mask, out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_loop(seed: int) -> None:
    mesh, cams = triangle_soup(seed, n_faces=4)
    if seed == 2:  # a connected surface in front of a loose triangle: interior and boundary face changes
        ball = icosphere(1, radius=0.5, dtype=DT)
        verts = torch.cat([ball.verts + torch.tensor([0.2, 0.0, -0.6], dtype=DT), mesh.verts[:3]])
        faces = torch.cat([ball.faces, torch.arange(3)[None] + ball.verts.shape[0]])
        colors = torch.rand(verts.shape[0], 3, generator=torch.Generator().manual_seed(2), dtype=DT)
        mesh = Meshes.single(verts, faces, vert_colors=colors)
    verts = mesh.verts.clone().requires_grad_()
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(len(cams), *cams.image_size, 4, generator=g, dtype=DT)
    out = render(mesh.with_verts(verts), cams, method="opendr")
    rgba = torch.cat([out.image, out.alpha], -1)
    (grad,) = torch.autograd.grad((rgba * weights).sum(), verts)
    hard = render(mesh.with_verts(verts), cams)
    hard_rgba = torch.cat([hard.image, hard.alpha], -1)
    assert torch.equal(rgba.detach(), hard_rgba.detach())  # the forward pass is the hard render
    fr = hard.fragments
    inst = FaceInstances.build(mesh.with_verts(verts), cams)
    mask, screen_grad = _brute_force(
        rgba.detach(), weights, fr.face_id[..., 0], fr.depth[..., 0], inst, mesh.faces
    )
    assert bool(mask.any()) and float(screen_grad.abs().sum()) > 0
    # the barycentric term everywhere but on boundary pixels, plus the boundary term
    (interior,) = torch.autograd.grad((hard_rgba * weights * (~mask)[..., None]).sum(), verts)
    screen = inst.hom[:, :2] / inst.hom[:, 2:]
    (boundary,) = torch.autograd.grad(screen, verts, screen_grad)
    torch.testing.assert_close(grad, interior + boundary)


@pytest.mark.parametrize("edge", [0.0, 0.3, 0.8])
@pytest.mark.parametrize("quad", [False, True], ids=["silhouette", "occlusion"])
def test_sign_and_magnitude_against_a_supersampled_render(quad: bool, edge: float) -> None:
    """OpenDR's derivative of the loss for a sideways move of the triangle has the sign of a central
    difference of the supersampled (pixel-area) render and is within a factor of 4 of it (the filter spreads
    an edge's one-pixel step over the two pixels beside it, while the hard image's error and the area
    integral's differ)."""
    ours, reference = sideways_derivatives("opendr", RenderSettings(), edge, quad)
    assert reference < 0 and 1 / 4 < ours / reference < 4, (ours, reference)


def test_spot_pose_from_one_silhouette_from_30_degrees() -> None:
    rot_error, shift_error = spot_pose_error("opendr", RenderSettings())
    print(f"opendr: pose error {rot_error:.2f} degrees, {shift_error:.4f} units")
    assert rot_error < 1.0 and shift_error < 0.01


def test_icosphere_deformed_to_spot_from_eight_silhouettes() -> None:
    start, final = icosphere_to_spot_iou("opendr", RenderSettings(), 0.75, soft_target=False, steps=150)
    print(f"opendr: silhouette IoU {start:.3f} -> {final:.3f} over 8 views")
    assert start < 0.6 and final > 0.94


def test_degenerate_parallel_and_behind_the_camera_give_finite_gradients() -> None:
    grad = gradient_on_hard_cases("opendr")
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_faces_of_one_surface_keep_their_shading_gradient() -> None:
    """On a finely tessellated sphere most pixels see a different face than their neighbours; only the
    silhouette is a boundary, so the interior keeps the ordinary (barycentric) gradient of the colours."""
    ball = icosphere(3, radius=0.8, dtype=DT)
    cams = look_at(torch.tensor([[0.0, 0.0, 3.0]], dtype=DT), image_size=(24, 24), fov=40.0)
    colors = torch.full_like(ball.verts, 0.5, requires_grad=True)
    out = render(Meshes.single(ball.verts, ball.faces, vert_colors=colors), cams, method="opendr")
    (grad,) = torch.autograd.grad(out.image.sum(), colors)
    hard = render(Meshes.single(ball.verts, ball.faces, vert_colors=colors), cams)
    (hard_grad,) = torch.autograd.grad(hard.image.sum(), colors)
    # the colour gradient is lost only at the silhouette pixels: most of it remains
    assert float(grad.sum()) > 0.7 * float(hard_grad.sum())


def test_appearance_gradients_equal_the_hard_render() -> None:
    """Boundary pixels replace only the geometric terms: vertex colours and lights keep the hard render's
    gradient everywhere, silhouettes included."""
    from gradiance.core import Lights
    from gradiance.core.lights import AmbientLight, DirectionalLights

    mesh, cams = triangle_soup(0, n_faces=4)
    colors = mesh.vert_colors.clone().requires_grad_()  # type: ignore[union-attr]
    direction = torch.tensor([[0.3, 0.5, -1.0]], dtype=DT, requires_grad=True)
    weights = torch.randn(
        len(cams), *cams.image_size, 3, generator=torch.Generator().manual_seed(5), dtype=DT
    )

    def grads(method: str) -> tuple[torch.Tensor, ...]:
        lights = Lights(
            ambient=AmbientLight(torch.full((3,), 0.2, dtype=DT)),
            directional=DirectionalLights(direction, torch.full((1, 3), 0.8, dtype=DT)),
        )
        m = Meshes.single(mesh.verts, mesh.faces, vert_colors=colors)
        out = render(m, cams, lights, method=method)
        return torch.autograd.grad((out.image * weights).sum(), (colors, direction))

    for ours, hard in zip(grads("opendr"), grads("hard"), strict=True):
        torch.testing.assert_close(ours, hard)
