"""Ray-box intersection, intervals along rays, importance sampling and camera rays."""

from __future__ import annotations

import pytest
import torch

from gradiance.core import look_at
from gradiance.core.rays import (
    camera_rays,
    importance_samples,
    intervals_around,
    ray_box_intersect,
    stratified_samples,
)

LO = torch.tensor([-0.5, -0.3, -0.8], dtype=torch.float64)
HI = torch.tensor([0.7, 0.4, 0.6], dtype=torch.float64)


def _inside(p: torch.Tensor) -> torch.Tensor:
    return ((p >= LO) & (p <= HI)).all(-1)


def test_matches_brute_force_marching() -> None:
    g = torch.Generator().manual_seed(0)
    o = torch.randn(200, 3, generator=g, dtype=torch.float64) * 2
    d = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=1)
    enter, exit_ = ray_box_intersect(o, d, LO, HI)
    ts = torch.linspace(-8, 8, 160001, dtype=torch.float64)
    for r in range(200):  # brute force: the parameters where the point is inside, on a fine grid
        ins = _inside(o[r] + ts[:, None] * d[r])
        if ins.any():
            assert enter[r] == pytest.approx(float(ts[ins].min()), abs=2e-4)
            assert exit_[r] == pytest.approx(float(ts[ins].max()), abs=2e-4)
        else:
            assert not bool(exit_[r] >= enter[r] + 2e-4)


def test_parallel_rays_are_finite() -> None:
    o = torch.tensor(
        [[0.0, 0.0, -3.0], [0.7, 0.0, -3.0], [0.9, 0.0, -3.0], [-0.5, -0.3, -3.0], [0.0, 2.0, 0.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    d = torch.tensor([[0.0, 0.0, 1.0]] * 4 + [[0.0, -1.0, 0.0]], dtype=torch.float64)
    enter, exit_ = ray_box_intersect(o, d, LO, HI)
    assert torch.allclose(enter[[0, 1, 3]], torch.tensor([2.2] * 3, dtype=torch.float64))
    assert torch.allclose(exit_[[0, 1, 3]], torch.tensor([3.6] * 3, dtype=torch.float64))
    assert enter[2] > exit_[2]  # on the far side of the x slab: misses
    assert float(enter[4].detach()) == pytest.approx(1.6) and float(exit_[4].detach()) == pytest.approx(2.3)
    (enter[[0, 1, 3, 4]] + exit_[[0, 1, 3, 4]]).sum().backward()
    assert o.grad is not None and torch.isfinite(o.grad).all()


def test_gradcheck_box() -> None:
    o = torch.tensor([[0.1, 0.2, -2.0], [1.5, 0.1, 0.05]], dtype=torch.float64, requires_grad=True)
    d = torch.nn.functional.normalize(
        torch.tensor([[0.1, -0.05, 1.0], [-1.0, 0.02, 0.1]], dtype=torch.float64)
    )
    d.requires_grad_()
    lo, hi = LO.clone().requires_grad_(), HI.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: ray_box_intersect(*a), (o, d, lo, hi))


def test_stratified_tiles_the_range() -> None:
    near = torch.tensor([0.5, 1.0, 2.0])
    far = torch.tensor([1.5, 1.0, 4.0])
    s = stratified_samples(near, far, 4)
    assert s.t.shape == (3, 4)
    assert torch.allclose(s.lengths.sum(1), far - near)
    assert torch.allclose(s.t, 0.5 * (s.t_start + s.t_end))
    assert torch.equal(s.t_end[:, :-1], s.t_start[:, 1:])
    r = stratified_samples(near, far, 4, randomized=True, generator=torch.Generator().manual_seed(1))
    assert ((r.t >= r.t_start) & (r.t <= r.t_end)).all() and not torch.allclose(r.t, s.t)


def test_exception() -> None:
    near = torch.zeros(2)
    with pytest.raises(ValueError, match="num_samples"):
        stratified_samples(near, near + 1, 0)
    with pytest.raises(ValueError, match="far must be >= near"):
        stratified_samples(near, near - 1, 3)
    with pytest.raises(ValueError, match="near and far"):
        stratified_samples(near, torch.ones(3), 3)
    s = stratified_samples(near, near + 1, 3)
    with pytest.raises(ValueError, match="weights"):
        importance_samples(s, torch.ones(2, 4), 5)
    with pytest.raises(ValueError, match="num_samples"):
        importance_samples(s, torch.ones(2, 3), 0)


def test_importance_samples_follow_the_weights() -> None:
    s = stratified_samples(torch.zeros(2, dtype=torch.float64), torch.full((2,), 4.0, dtype=torch.float64), 4)
    w = torch.tensor([[0.0, 3.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    t = importance_samples(s, w, 4000)
    assert (t[:, 1:] >= t[:, :-1]).all()
    share = torch.stack([((t >= k) & (t < k + 1)).double().mean(1) for k in range(4)], 1)
    assert torch.allclose(share[0], torch.tensor([0.0, 0.75, 0.25, 0.0], dtype=torch.float64), atol=2e-3)
    assert torch.allclose(
        share[1], torch.full((4,), 0.25, dtype=torch.float64), atol=2e-3
    )  # no weight: uniform
    # within an interval the density is uniform
    inside = t[0][(t[0] >= 1) & (t[0] < 2)]
    assert float(inside.mean()) == pytest.approx(1.5, abs=2e-3)
    rnd = importance_samples(s, w, 64, randomized=True, generator=torch.Generator().manual_seed(0))
    assert (rnd[:, 1:] >= rnd[:, :-1]).all() and ((rnd >= 0) & (rnd <= 4)).all()


def test_intervals_around_tile() -> None:
    t = torch.tensor([[0.2, 0.5, 0.6, 0.9]])
    s = intervals_around(t, torch.tensor([0.0]), torch.tensor([1.0]))
    assert torch.allclose(s.t_start, torch.tensor([[0.0, 0.35, 0.55, 0.75]]))
    assert torch.allclose(s.t_end, torch.tensor([[0.35, 0.55, 0.75, 1.0]]))


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
def test_camera_rays_depth(projection: str) -> None:
    cams = look_at(torch.tensor([[0.3, 0.2, -3.0], [2.0, 1.0, 1.0]]), image_size=(5, 7), fov=50.0, near=0.5)
    if projection == "orthographic":
        from dataclasses import replace

        cams = replace(cams, projection="orthographic", focal=torch.full((2, 2), 3.0))
    rays = camera_rays(cams)
    assert rays.origins.shape == (2, 35, 3) and rays.t_near.shape == (2, 35)
    t = torch.full((2, 35), 1.7)
    z = cams.world_to_camera(rays.origins + t[..., None] * rays.directions)[..., 2]
    assert torch.allclose(z, t * rays.z_per_t, atol=1e-5)
    near = cams.world_to_camera(rays.origins + rays.t_near[..., None] * rays.directions)[..., 2]
    assert torch.allclose(near, cams.near_t[:, None].expand(-1, 35), atol=1e-5)
