"""eval.gradients: finite differences, the supersampled reference, comparisons and gradient images."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core import Cameras, Meshes
from gradiance.eval.gradients import (
    EXACT,
    VISIBILITY,
    autograd_gradient,
    check_gradients,
    compare_gradients,
    diverging_colormap,
    finite_difference_gradient,
    finite_difference_jvp,
    gradient_image,
    supersampled,
)
from gradiance.mesh import RenderSettings, render
from gradiance.mesh.softras import SoftRasSettings
from tests.mesh.scenes import edge_scene, triangle_soup

DT = torch.float64


def test_finite_differences_of_an_analytic_function() -> None:
    x = torch.tensor([0.3, -1.2, 2.0], dtype=DT)

    def loss(p: torch.Tensor) -> torch.Tensor:
        return (torch.sin(p) * p**2).sum()

    want = torch.cos(x) * x**2 + 2 * x * torch.sin(x)
    torch.testing.assert_close(finite_difference_gradient(loss, x, 1e-5), want, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(autograd_gradient(loss, x), want)
    jvp = finite_difference_jvp(lambda p: torch.sin(p) * p**2, x, torch.ones_like(x), 1e-5)
    torch.testing.assert_close(jvp, want, rtol=1e-7, atol=1e-8)
    some = finite_difference_gradient(loss, x, 1e-5, elements=torch.tensor([1]))
    assert math.isnan(float(some[0])) and math.isnan(float(some[2]))
    assert float(some[1]) == pytest.approx(float(want[1]), rel=1e-7)


def test_comparison_verdicts() -> None:
    r = torch.tensor([1.0, -2.0, 0.5, 1e-9, 3.0], dtype=DT)
    same = compare_gradients(r.clone(), r)
    assert same.passed and same.median_relative_error == 0 and same.cosine == pytest.approx(1.0)
    assert same.compared == 4  # the element under the floor is left out of the relative errors
    doubled = compare_gradients(2 * r, r)
    assert not doubled.passed and doubled.median_relative_error == pytest.approx(1.0)
    assert doubled.cosine == pytest.approx(1.0) and doubled.sign_agreement == 1.0
    assert compare_gradients(2 * r, r, VISIBILITY).passed  # a factor two is a pass for visibility gradients
    flipped = compare_gradients(-r, r, VISIBILITY)
    assert not flipped.passed and flipped.sign_agreement == 0 and flipped.cosine == pytest.approx(-1.0)
    assert not compare_gradients(torch.full_like(r, math.nan), r).passed
    zero = torch.zeros(3, dtype=DT)
    assert compare_gradients(zero, zero).passed and not compare_gradients(zero + 1, zero).passed
    assert set(same.as_dict()) >= {"median_relative_error", "cosine", "sign_agreement", "passed"}


class _WrongBackward(torch.autograd.Function):
    """The identity with a backward that drops the gradient of the first element and flips the second."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, g: torch.Tensor) -> torch.Tensor:
        out = g.clone()
        out[0] = 0
        out[1] = -out[1]
        return out


def _soft_loss(wrong: bool):  # type: ignore[no-untyped-def]
    """A SoftRas render of a triangle soup as a function of its vertex coordinates."""
    mesh, cams = triangle_soup(seed=3, n_faces=2)
    settings = RenderSettings(softras=SoftRasSettings(sigma=2e-3, gamma=0.05))
    w = torch.rand(2, 8, 10, 4, generator=torch.Generator().manual_seed(0), dtype=DT)

    def loss(v: torch.Tensor) -> torch.Tensor:
        flat = v.reshape(-1)
        flat = _WrongBackward.apply(flat) if wrong else flat
        out = render(mesh.with_verts(flat.reshape(-1, 3)), cams, method="softras", settings=settings)
        return (torch.cat([out.image, out.alpha], -1) * w).sum()

    return loss, mesh.verts


def test_softras_passes_and_a_wrong_backward_is_flagged() -> None:
    loss, verts = _soft_loss(wrong=False)
    good = check_gradients(loss, verts, 1e-6)
    assert good.passed, good
    loss, verts = _soft_loss(wrong=True)
    bad = check_gradients(loss, verts, 1e-6)
    assert not bad.passed, bad


def _edge_render(x: torch.Tensor, cams: Cameras, quad: bool, method: str) -> torch.Tensor:
    mesh, _ = edge_scene(0.0, quad)
    moves = (torch.arange(mesh.verts.shape[0]) < 3).to(DT)[:, None] * torch.tensor([1.0, 0.0, 0.0], dtype=DT)
    out = render(
        Meshes.single(mesh.verts + x * moves, mesh.faces, vert_colors=mesh.vert_colors), cams, method=method
    )
    return torch.cat([out.image, out.alpha], -1)


def test_supersampled_reference_of_a_moving_edge() -> None:
    _, cams = edge_scene(0.0, False)
    x0 = 0.3  # the triangle's right edge at column 8.3: pixel 8 is 30 % covered
    ref = supersampled(
        lambda f: _edge_render(torch.tensor(x0, dtype=DT), cams.upscaled(f), False, "hard"), 16
    )
    assert ref.shape == (1, 16, 16, 4)
    assert float(ref[0, 8, 8, 3]) == pytest.approx(0.3125, abs=1e-12)  # 5 of 16 sample columns
    d = finite_difference_jvp(
        lambda x: supersampled(lambda f: _edge_render(x, cams.upscaled(f), False, "hard"), 32),
        torch.tensor(x0, dtype=DT),
        torch.tensor(1.0, dtype=DT),
        1 / 64,
    )
    # the vertical edge sweeps column 8: d alpha / dx = 1 on the rows it spans away from the corners; the
    # slanted edges uncover as much as it covers (a translated triangle keeps its area)
    torch.testing.assert_close(d[0, 5:11, 8, 3], torch.ones(6, dtype=DT))
    assert float(d[0, ..., 3].sum()) == pytest.approx(0.0, abs=0.05)
    assert float(d[0, :, :2, 3].abs().max()) == 0  # nothing moves left of the triangle


def test_antialias_gradient_against_the_supersampled_reference() -> None:
    _, cams = edge_scene(0.0, True)
    target = supersampled(
        lambda f: _edge_render(torch.tensor(0.9, dtype=DT), cams.upscaled(f), True, "hard"), 16
    )

    def loss_of(method: str, factor: int):  # type: ignore[no-untyped-def]
        def loss(x: torch.Tensor) -> torch.Tensor:
            img = (
                _edge_render(x[0], cams, True, method)
                if factor == 1
                else supersampled(lambda f: _edge_render(x[0], cams.upscaled(f), True, method), factor)
            )
            return ((img - target) ** 2).sum()

        return loss

    x = torch.tensor([0.3], dtype=DT)
    reference = finite_difference_gradient(loss_of("hard", 16), x, 0.05)
    assert compare_gradients(autograd_gradient(loss_of("antialias", 1), x), reference, VISIBILITY).passed
    hard = compare_gradients(autograd_gradient(loss_of("hard", 1), x), reference, VISIBILITY)
    assert not hard.passed  # the hard render has no visibility gradient: flagged


def test_gradient_image_autograd_matches_finite_differences_for_a_smooth_render() -> None:
    mesh, cams = triangle_soup(seed=1, n_faces=2)
    settings = RenderSettings(softras=SoftRasSettings(sigma=2e-3, gamma=0.05))
    cams = cams[0]

    def img(theta: torch.Tensor) -> torch.Tensor:
        shift = torch.stack([theta, 0.5 * theta, torch.zeros_like(theta)])
        out = render(mesh.with_verts(mesh.verts + shift), cams, method="softras", settings=settings)
        return torch.cat([out.image, out.alpha], -1)

    auto = gradient_image(img, 0.0)
    fd = gradient_image(img, 0.0, mode="finite_difference", eps=1e-6)
    assert auto.shape == (8, 10) and float(auto.abs().max()) > 0
    torch.testing.assert_close(auto, fd, rtol=1e-4, atol=1e-6)
    assert compare_gradients(auto, fd, EXACT).passed


def test_diverging_colormap() -> None:
    c = diverging_colormap(torch.tensor([-2.0, 0.0, 1.0, 2.0]))
    assert c.dtype == torch.uint8 and c.shape == (4, 3)
    assert c[1].tolist() == [255, 255, 255]
    assert c[3, 0] > c[3, 2] and c[0, 2] > c[0, 0]  # red for positive, blue for negative
    assert c[2].tolist() != c[3].tolist()
    assert diverging_colormap(torch.tensor([2.0]), scale=4.0)[0].tolist() == c[2].tolist()


def test_exception() -> None:
    x = torch.zeros(3, dtype=DT)
    with pytest.raises(ValueError, match="eps"):
        finite_difference_gradient(lambda p: p.sum(), x, 0.0)
    with pytest.raises(ValueError, match="direction"):
        finite_difference_jvp(lambda p: p, x, torch.zeros(2, dtype=DT), 1e-3)
    with pytest.raises(ValueError, match="scalar"):
        finite_difference_gradient(lambda p: p, x, 1e-3)
    with pytest.raises(ValueError, match="one shape"):
        compare_gradients(x, torch.zeros(4, dtype=DT))
    with pytest.raises(ValueError, match="mode"):
        gradient_image(lambda t: torch.zeros(2, 2, 1), 0.0, mode="forward")
    with pytest.raises(ValueError, match="factor"):
        supersampled(lambda f: torch.zeros(1, 2, 2, 1), 0)
    with pytest.raises(ValueError, match="render_at"):
        supersampled(lambda f: torch.zeros(1, 3, 3, 1), 2)
