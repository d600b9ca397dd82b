"""eval.metrics on analytic cases: identical inputs, known offsets, unit cubes."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core import Meshes, cube, icosphere, sample_surface
from gradiance.eval.metrics import (
    chamfer_distance,
    f_score,
    nearest_neighbors,
    normal_consistency,
    psnr,
    silhouette_iou,
    ssim,
    volume_iou,
    winding_number,
)

DT = torch.float64


def _cloud(n: int = 200, seed: int = 0) -> torch.Tensor:
    return torch.rand(2, n, 3, generator=torch.Generator().manual_seed(seed), dtype=DT)


def test_nearest_neighbours_match_a_loop() -> None:
    a, b = _cloud(30, 1), _cloud(40, 2)
    d2, idx = nearest_neighbors(a, b, max_pairs=7 * 2 * 40)
    for n in range(2):
        for p in range(30):
            dist = ((b[n] - a[n, p]) ** 2).sum(-1)
            assert int(idx[n, p]) == int(dist.argmin())
            assert float(d2[n, p]) == pytest.approx(float(dist.min()), rel=1e-12)


def test_chamfer_identical_and_offset() -> None:
    a = _cloud()
    assert chamfer_distance(a, a).abs().max() == 0
    # a single point against a shifted copy: known distances
    p = torch.zeros(1, 1, 3, dtype=DT)
    q = torch.tensor([[[0.0, 0.0, 0.3]]], dtype=DT)
    assert float(chamfer_distance(p, q)[0]) == pytest.approx(2 * 0.09)
    assert float(chamfer_distance(p, q, norm=1)[0]) == pytest.approx(2 * 0.3)
    # a far offset (larger than the cloud) moves every nearest neighbour by the offset
    shift = torch.tensor([5.0, 0.0, 0.0], dtype=DT)
    d = chamfer_distance(a, a + shift, norm=1)
    assert bool((d >= 2 * (5.0 - math.sqrt(3))).all())


def test_chamfer_gradient_flows_to_both_sets() -> None:
    a, b = _cloud(6, 3).requires_grad_(), _cloud(7, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: chamfer_distance(x, y), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: chamfer_distance(x, y, norm=1), (a, b))


def test_normal_consistency_and_f_score_on_spheres() -> None:
    g = torch.Generator().manual_seed(0)
    s = icosphere(3, dtype=DT)
    pts, nrm, _, _ = sample_surface(s, 500, generator=g)
    assert float(normal_consistency(pts, nrm, pts, -nrm)[0]) == pytest.approx(1.0)
    assert float(f_score(pts, pts, 1e-6)[0]) == 1.0
    big = pts * 1.1  # 0.1 away everywhere
    assert float(f_score(big, pts, 0.05)[0]) == 0.0
    assert float(f_score(big, pts, 0.2)[0]) == 1.0
    tilted = torch.nn.functional.normalize(nrm + torch.tensor([10.0, 0, 0], dtype=DT), dim=-1)
    assert float(normal_consistency(pts, nrm, pts, tilted)[0]) < 0.9


def test_winding_number_of_a_cube() -> None:
    c = cube(dtype=DT)  # [-1, 1]^3 in gradiance.core.primitives
    lo = float(c.verts.min())
    pts = torch.tensor(
        [[0.0, 0.0, 0.0], [0.5, -0.3, 0.2], [3.0, 0.0, 0.0], [0.0, 0.0, -5.0]], dtype=DT
    ) * abs(lo)
    w = winding_number(c, pts)
    torch.testing.assert_close(w, torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=DT), atol=1e-9, rtol=0)


def test_volume_iou_of_unit_cubes() -> None:
    g = torch.Generator().manual_seed(0)
    a = cube(dtype=DT)
    half = float(a.verts.max())
    shifted = a.with_verts(a.verts + torch.tensor([half, 0.0, 0.0], dtype=DT))  # overlap: half of each
    iou = volume_iou(Meshes.join([a, a]), Meshes.join([a, shifted]), 20_000, generator=g)
    assert float(iou[0]) == 1.0
    assert float(iou[1]) == pytest.approx(1 / 3, abs=0.02)  # |A n B| / |A u B| = 0.5 / 1.5


def test_image_metrics() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 16, 16, 3, generator=g, dtype=DT)
    assert bool(torch.isinf(psnr(img, img)).all())
    noisy = img + 0.1
    torch.testing.assert_close(psnr(img, noisy), torch.full((2,), 20.0, dtype=DT))
    torch.testing.assert_close(ssim(img, img), torch.ones(2, dtype=DT))
    assert bool((ssim(img, torch.rand(2, 16, 16, 3, generator=g, dtype=DT)) < 0.2).all())
    assert float(ssim(img, img * 0.5)[0]) < float(ssim(img, img * 0.9)[0]) < 1.0
    m = torch.zeros(2, 4, 4, 1, dtype=DT)
    m[0, :2] = 1
    m2 = torch.zeros_like(m)
    m2[0, :1] = 1
    torch.testing.assert_close(silhouette_iou(m, m2), torch.tensor([0.5, 1.0], dtype=DT))


def test_ssim_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 11, 12, 1, generator=g, dtype=DT).requires_grad_()
    b = torch.rand(1, 11, 12, 1, generator=g, dtype=DT)
    assert torch.autograd.gradcheck(lambda x: ssim(x, b), (a,), fast_mode=True)


def test_exception() -> None:
    a = _cloud()
    with pytest.raises(ValueError, match=r"a must be an \(N, P, 3\)"):
        chamfer_distance(a[..., :2], a)
    with pytest.raises(ValueError, match="batch size"):
        chamfer_distance(a, a[:1])
    with pytest.raises(ValueError, match="norm"):
        chamfer_distance(a, a, norm=3)
    with pytest.raises(ValueError, match="NaN"):
        chamfer_distance(a * math.nan, a)
    with pytest.raises(ValueError, match="threshold"):
        f_score(a, a, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 2, 1))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 8, 8, 1), torch.zeros(1, 8, 8, 1))
    with pytest.raises(ValueError, match="single mesh"):
        winding_number(Meshes.join([cube(), cube()]), torch.zeros(1, 3))


def test_chamfer_and_f_score_equal_the_separate_metrics() -> None:
    from gradiance.eval.metrics import chamfer_and_f_score, chamfer_distance, f_score

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 50, 3, generator=g), torch.rand(3, 70, 3, generator=g)
    c, f = chamfer_and_f_score(a, b, 0.1)
    torch.testing.assert_close(c, chamfer_distance(a, b))
    torch.testing.assert_close(f, f_score(a, b, 0.1))
