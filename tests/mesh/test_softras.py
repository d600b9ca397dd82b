"""Soft Rasterizer: a brute-force per-pixel loop over all faces, limits, gradients, an inverse problem."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from gradiance.backends.numba import numba_available
from gradiance.core import Cameras, Meshes, look_at
from gradiance.mesh import RenderSettings, render
from gradiance.mesh.dibr import DIBRSettings
from gradiance.mesh.softras import SoftRasSettings
from tests.mesh.scenes import triangle_soup

DT = torch.float64
# the torch reference everywhere; on numba, SoftRas runs its per-pixel kernels (softras_compiled)
BACKENDS = ["torch", "numba"] if numba_available() else ["torch"]


def _scene(seed: int = 0, n_faces: int = 4) -> tuple[Meshes, Cameras]:
    return triangle_soup(seed, n_faces, near=0.5, far=6.0)


def _soft(mesh: Meshes, cams: Cameras, **kw: object) -> RenderSettings:
    return RenderSettings(softras=SoftRasSettings(**kw), background=(0.2, 0.3, 0.4))  # type: ignore[arg-type]


def _point_triangle_d2(p: torch.Tensor, t: torch.Tensor) -> float:
    best = math.inf
    for k in range(3):
        a, b = t[k], t[(k + 1) % 3]
        e = b - a
        s = float(((p - a) @ e) / (e @ e))
        s = min(max(s, 0.0), 1.0)
        best = min(best, float(((p - a - s * e) ** 2).sum()))
    return best


def brute_force(
    mesh: Meshes, cams: Cameras, s: SoftRasSettings, bg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per camera and pixel, loop over every face in front of the camera: eq. 1, 4, 6 and 7 of the paper."""
    B, (H, W) = len(cams), cams.image_size
    scale = min(H, W) / 2
    image, alpha = torch.zeros(B, H, W, 3, dtype=DT), torch.zeros(B, H, W, 1, dtype=DT)
    for b in range(B):
        cam = cams[b]
        pix, depth = cam.project(mesh.verts)
        pix, depth = pix[0], depth[0]
        n, f = float(cam.near_t[0]), float(cam.far_t[0])
        for i in range(H):
            for j in range(W):
                p = torch.tensor([j + 0.5, i + 0.5], dtype=DT)
                terms = []
                for a, bb, c in mesh.faces.tolist():
                    t = pix[[a, bb, c]]
                    area = float((t[1] - t[0])[0] * (t[2] - t[0])[1] - (t[1] - t[0])[1] * (t[2] - t[0])[0])
                    if area == 0:
                        continue
                    lam = [
                        float(
                            (
                                (t[(k + 2) % 3] - t[(k + 1) % 3])[0] * (p - t[(k + 1) % 3])[1]
                                - (t[(k + 2) % 3] - t[(k + 1) % 3])[1] * (p - t[(k + 1) % 3])[0]
                            )
                            / area
                        )
                        for k in range(3)
                    ]
                    inside = min(lam) >= 0
                    d2 = _point_triangle_d2(p, t) / scale**2
                    prob = 0.5 * (1 + math.tanh((d2 if inside else -d2) / s.sigma / 2))  # sigmoid
                    if not inside and prob <= s.cutoff:
                        continue
                    # perspective-correct barycentrics from screen ones, clipped to the face
                    zc = depth[[a, bb, c]]
                    w = torch.tensor(lam, dtype=DT) / zc
                    w = (w / w.sum()).clamp_min(0)
                    w = w / w.sum()
                    z = float((w * zc).sum())
                    color = (w[:, None] * mesh.vert_colors[[a, bb, c]]).sum(0)  # type: ignore[index]
                    terms.append((prob, (f - z) / (f - n), color))
                alpha[b, i, j, 0] = 1 - math.prod(1 - D for D, _, _ in terms)
                logits = [zn / s.gamma for _, zn, _ in terms] + [s.epsilon / s.gamma]
                top = max(logits)
                weights = [D * math.exp(lg - top) for (D, _, _), lg in zip(terms, logits[:-1], strict=True)]
                wb = math.exp(logits[-1] - top)
                acc = sum(
                    (wt * c for wt, (_, _, c) in zip(weights, terms, strict=True)), torch.zeros(3, dtype=DT)
                )
                image[b, i, j] = (acc + wb * bg) / (sum(weights) + wb)
    return image, alpha


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_brute_force(seed: int, backend: str) -> None:
    mesh, cams = _scene(seed)
    s = SoftRasSettings(sigma=3e-3, gamma=0.05, epsilon=1e-3, cutoff=1e-10)  # colour pruning below 1e-10
    settings = RenderSettings(softras=s, background=(0.2, 0.3, 0.4), backend=backend)
    out = render(mesh, cams, method="softras", settings=settings)
    image, alpha = brute_force(mesh, cams, s, torch.tensor([0.2, 0.3, 0.4], dtype=DT))
    torch.testing.assert_close(out.alpha, alpha, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.image, image, atol=1e-6, rtol=1e-6)
    assert float(alpha.min()) < 0.01 and float(alpha.max()) > 0.9  # the scene has both inside and outside


def test_small_sigma_gives_the_hard_silhouette() -> None:
    mesh, cams = _scene(2, n_faces=6)
    soft = render(mesh, cams, method="softras", settings=_soft(mesh, cams, sigma=1e-9))
    hard = render(mesh, cams)
    assert float((soft.alpha - hard.alpha).abs().max()) < 1e-3


def test_k_nearest_mode() -> None:
    mesh, cams = _scene(3, n_faces=6)
    full = render(mesh, cams, method="softras", settings=_soft(mesh, cams, sigma=1e-3))
    many = render(mesh, cams, method="softras", settings=_soft(mesh, cams, sigma=1e-3, faces_per_pixel=50))
    one = render(mesh, cams, method="softras", settings=_soft(mesh, cams, sigma=1e-3, faces_per_pixel=1))
    torch.testing.assert_close(many.image, full.image)
    assert float((one.alpha - full.alpha).abs().max()) > 1e-3
    assert bool((one.alpha <= full.alpha + 1e-12).all())


def test_aggregation_variants_and_barycentric_distance() -> None:
    mesh, cams = _scene(4)
    for kw in (
        {"aggregate_alpha": "sum"},
        {"aggregate_alpha": "max"},
        {"aggregate_rgb": "hard"},
        {"distance": "barycentric", "sigma": 1e-3},
    ):
        out = render(mesh, cams, method="softras", settings=_soft(mesh, cams, **kw))
        assert bool(torch.isfinite(out.image).all()) and float(out.alpha.max()) <= 1
        assert float(out.alpha.min()) >= 0
    prod = render(mesh, cams, method="softras", settings=_soft(mesh, cams)).alpha
    mx = render(mesh, cams, method="softras", settings=_soft(mesh, cams, aggregate_alpha="max")).alpha
    assert bool((mx <= prod + 1e-12).all())  # max_j D <= 1 - prod_j (1 - D)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(backend: str) -> None:
    mesh, cams = _scene(5, n_faces=2)
    cams = cams[0]
    s = replace(_soft(mesh, cams, sigma=2e-2, gamma=0.1), backend=backend)
    verts = mesh.verts.clone().requires_grad_()
    colors = mesh.vert_colors.clone().requires_grad_()  # type: ignore[union-attr]

    def f(v: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = render(Meshes.single(v, mesh.faces, vert_colors=c), cams, method="softras", settings=s)
        return out.image, out.alpha

    assert torch.autograd.gradcheck(f, (verts, colors), eps=1e-6, atol=1e-5)


def test_exception() -> None:
    with pytest.raises(ValueError, match="sigma"):
        SoftRasSettings(sigma=0.0)
    with pytest.raises(ValueError, match="distance"):
        SoftRasSettings(distance="manhattan")
    with pytest.raises(ValueError, match="aggregate_alpha"):
        SoftRasSettings(aggregate_alpha="mean")
    with pytest.raises(ValueError, match="cutoff"):
        SoftRasSettings(cutoff=0.7)
    with pytest.raises(ValueError, match="faces_per_pixel"):
        SoftRasSettings(faces_per_pixel=0)
    mesh, cams = _scene()
    with pytest.raises(ValueError, match="trilinear"):
        render(mesh, cams, method="softras", settings=RenderSettings(texture_filter="trilinear"))


def test_colour_pruning_changes_the_image_by_less_than_the_cutoff() -> None:
    from gradiance.mesh.instances import FaceInstances
    from gradiance.mesh.softras import aggregate_rgb, colour_pairs, select_pairs, soft_pairs

    mesh, cams = _scene(6, n_faces=8)
    s = SoftRasSettings(sigma=1e-3, gamma=1e-2, cutoff=1e-4)
    pairs = soft_pairs(FaceInstances.build(mesh, cams), cams, s)
    face_colors = torch.rand(8, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    n, bg = 2 * 8 * 10, torch.zeros(3, dtype=DT)
    full = aggregate_rgb(pairs, face_colors[pairs.face], bg, n, cams.near_t, cams.far_t, s)
    kept = select_pairs(pairs, colour_pairs(pairs, n, cams.near_t, cams.far_t, s))
    pruned = aggregate_rgb(kept, face_colors[kept.face], bg, n, cams.near_t, cams.far_t, s)
    assert kept.pixel.shape[0] < pairs.pixel.shape[0]  # something was pruned
    assert float((full - pruned).abs().max()) < 8 * s.cutoff


@pytest.mark.parametrize("method", ["softras", "dibr"])
def test_degenerate_faces_faces_behind_the_camera_and_extreme_parameters_stay_finite(method: str) -> None:
    verts = torch.tensor(
        [
            [0.0, 0.0, 2.0],
            [0.5, 0.5, 2.0],
            [1.0, 1.0, 2.0],  # zero-area face
            [-0.5, -0.4, 1.0],
            [0.6, -0.3, -2.0],
            [0.0, 0.7, 1.5],  # crosses the near plane, one corner behind
            [-0.3, -0.3, -1.0],
            [0.3, -0.3, -1.0],
            [0.0, 0.3, -1.0],  # wholly behind the camera
            [-0.4, -0.2, 3.0],
            [0.5, -0.1, 3.0],
            [0.0, 0.6, 3.0],
        ],
        dtype=DT,
        requires_grad=True,
    )
    mesh = Meshes.single(verts, torch.arange(12).reshape(4, 3), vert_colors=torch.rand(12, 3, dtype=DT))
    cams = Cameras(torch.eye(3, dtype=DT), torch.zeros(3, dtype=DT), 8.0, None, (10, 10), near=0.1, far=10.0)
    for sigma, gamma in ((1e-12, 1e-12), (1e-4, 1e-4), (10.0, 10.0)):
        s = RenderSettings(softras=SoftRasSettings(sigma=sigma, gamma=gamma), dibr=DIBRSettings(delta=sigma))
        out = render(mesh, cams, method=method, settings=s)
        assert bool(torch.isfinite(out.image).all()) and bool(torch.isfinite(out.alpha).all())
        (out.image.sum() + out.alpha.sum()).backward()
        assert verts.grad is not None and bool(torch.isfinite(verts.grad).all())
        verts.grad = None


@pytest.mark.parametrize("gamma", [1e-4, 1e-2])
def test_colour_pairs_from_depth_bounds_equal_the_exact_selection(gamma: float) -> None:
    """Pairs without depths are chosen from their faces' depth ranges, then checked exactly: the same
    pairs as from every pair's depth (Spot from two views, so that faces behind others are left out)."""
    from gradiance.io import load_asset
    from gradiance.mesh.instances import FaceInstances
    from gradiance.mesh.softras import colour_pairs, soft_pairs

    spot = load_asset("spot").geometry()
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4], [-2.0, 0.5, -1.0]]), image_size=(40, 40), fov=45.0)
    inst, s = FaceInstances.build(spot, cams), SoftRasSettings(gamma=gamma)
    full = soft_pairs(inst, cams, s, surface="values")
    bare = soft_pairs(inst, cams, s, surface="none")
    assert bare.depth is None and torch.equal(bare.pixel, full.pixel)
    exact = colour_pairs(full, 2 * 40 * 40, cams.near_t, cams.far_t, s)
    bounded = colour_pairs(bare, 2 * 40 * 40, cams.near_t, cams.far_t, s, (inst, (40, 40)))
    assert exact.numel() < full.pixel.numel()
    assert torch.equal(exact, bounded)
    with pytest.raises(ValueError, match="surface"):
        colour_pairs(bare, 2 * 40 * 40, cams.near_t, cams.far_t, s)
