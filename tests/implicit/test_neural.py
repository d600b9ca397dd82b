"""The neural SDF's initialisation, occupancy from distances, mesh extraction and NeuS rendering."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core.mesh_ops import signed_volume
from gradiance.core.rays import resample, stratified_samples
from gradiance.implicit import Sphere
from gradiance.implicit.extract import extract_mesh
from gradiance.implicit.neural import NeuralSDF, RenderingNetwork, occupancy_from_sdf
from gradiance.implicit.neus import eikonal_loss, march_neus, neus_alpha


def test_geometric_initialisation_is_a_sphere() -> None:
    torch.manual_seed(0)
    net = NeuralSDF(frequencies=4, width=128, depth=4, skip=2, features=8, radius=0.5)
    pts = torch.rand(2000, 3) * 1.6 - 0.8
    f, feats = net.with_features(pts)
    assert feats.shape == (2000, 8)
    want = pts.norm(dim=1) - 0.5  # approximately (SAL's initialisation is exact only for infinite width)
    assert float((f - want).abs().mean().detach()) < 0.15  # 0.11 when written
    clear = want.abs() > 0.15
    assert float(((f > 0) == (want > 0))[clear].float().mean()) > 0.98  # 0.994 when written
    with pytest.raises(ValueError, match="skip must lie in"):
        NeuralSDF(depth=4, skip=4)


def test_extract_mesh_of_a_sphere() -> None:
    mesh = extract_mesh(Sphere(radius=0.6), resolution=48)
    r = mesh.verts.norm(dim=1)
    assert torch.allclose(r, torch.full_like(r, 0.6), atol=2 * 2 / 47)
    assert float(signed_volume(mesh)[0]) == pytest.approx(4 / 3 * math.pi * 0.6**3, rel=0.03)  # outward faces
    occ = extract_mesh(occupancy_from_sdf(Sphere(radius=0.6), 30.0), 48, level=0.5, inside="above")
    assert float(signed_volume(occ)[0]) == pytest.approx(4 / 3 * math.pi * 0.6**3, rel=0.03)
    with pytest.raises(ValueError, match="does not cross level"):
        extract_mesh(Sphere(radius=0.1), 8, lo=0.5, hi=1.0)
    with pytest.raises(ValueError, match="resolution must be"):
        extract_mesh(Sphere(), 1)


@pytest.mark.parametrize("layout", ["midpoints", "randomized", "resampled"])
def test_neus_transmittance_through_a_plane(layout: str) -> None:
    """Through the plane f = 1 - x, head-on, the opacities telescope: the transmittance over [0, 2] is
    Phi_s(f(2)) / Phi_s(f(0)) wherever the samples sit in their intervals (NeuS, section 3.2)."""
    near, far = torch.zeros(50, dtype=torch.float64), torch.full((50,), 2.0, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    samples = stratified_samples(near, far, 16, randomized=layout != "midpoints", generator=g)
    if layout == "resampled":
        weights = torch.rand(samples.t.shape, generator=g, dtype=torch.float64)
        samples = resample(samples, weights, 16, near, far, randomized=True, generator=g)
    f = 1.0 - samples.t
    s = torch.tensor(8.0, dtype=torch.float64)
    cos = -torch.ones_like(f)
    alpha = neus_alpha(f, cos, samples.t - samples.t_start, samples.t_end - samples.t, s)
    want = torch.sigmoid(s * (1.0 - 2.0)) / torch.sigmoid(s * 1.0)
    assert torch.allclose(torch.prod(1 - alpha, 1), want.expand(50), rtol=1e-12)
    leaving = neus_alpha(f, -cos, samples.t - samples.t_start, samples.t_end - samples.t, s)
    assert torch.equal(leaving, torch.zeros_like(leaving))  # leaving a surface is not opaque


def test_march_neus_on_a_sphere() -> None:
    sphere = Sphere(radius=0.5).double()

    def sdf(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return sphere(x), x.new_zeros(x.shape[0], 0)

    def colour(p: torch.Tensor, n: torch.Tensor, d: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return 0.5 + 0.5 * n

    o = torch.tensor([[-3.0, 0.0, 0.0], [-3.0, 0.9, 0.0]], dtype=torch.float64)
    d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    near, far = torch.full((2,), 1.0, dtype=torch.float64), torch.full((2,), 5.0, dtype=torch.float64)
    out = march_neus(
        sdf, colour, o, d, near, far, torch.tensor(200.0, dtype=torch.float64), num_samples=64, importance=64
    )
    alpha = out.rays.alpha.detach()
    assert float(alpha[0]) > 0.99 and float(alpha[1]) < 1e-6
    assert float(out.rays.depth[0].detach()) == pytest.approx(2.5, abs=0.01)  # the surface at x = -0.5
    assert torch.allclose(out.rays.features[0], torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64), atol=0.02)
    assert float(eikonal_loss(out.gradients).detach()) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="inv_s must be a positive scalar"):
        march_neus(sdf, colour, o, d, near, far, torch.tensor(0.0))


def test_rendering_network_and_gradients() -> None:
    torch.manual_seed(0)
    net = NeuralSDF(frequencies=2, width=32, depth=3, skip=1, features=4)
    app = RenderingNetwork(features=4, width=16, depth=2, direction_frequencies=1)
    o = torch.tensor([[-2.0, 0.1, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0]])
    out = march_neus(
        net.with_features,
        app,
        o,
        d,
        torch.tensor([0.5]),
        torch.tensor([3.5]),
        torch.tensor(20.0),
        num_samples=16,
    )
    (out.rays.features.sum() + eikonal_loss(out.gradients)).backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in [*net.parameters(), *app.parameters()]
    )
