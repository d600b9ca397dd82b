"""Aggregation of samples along rays, against per-ray loops written from the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core.raymarch import AGGREGATIONS, aggregate_rays, ray_consistency_loss


def _samples(
    seed: int = 0, R: int = 5, S: int = 7, C: int = 2, occupancy: bool = False
) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sigma = torch.rand(R, S, generator=g, dtype=torch.float64) * (1.0 if occupancy else 3.0)
    lengths = torch.rand(R, S, generator=g, dtype=torch.float64) * 0.5
    lengths[1, 3:] = 0  # padding
    feats = torch.rand(R, S, C, generator=g, dtype=torch.float64)
    depth = torch.cumsum(lengths, 1) + 1.0
    return [sigma, lengths, feats, depth]


def _loop(sigma, lengths, feats, depth, mode):  # type: ignore[no-untyped-def]
    """Per-ray, per-sample loops of the formulas in the module docstring."""
    R, S = sigma.shape
    out_f, out_a, out_z = [], [], []
    for r in range(R):
        f = torch.zeros(feats.shape[2], dtype=sigma.dtype)
        wz = wsum = 0.0
        T, tau_sum, best, best_s = 1.0, 0.0, 0.0, -1
        for s in range(S):
            if lengths[r, s] == 0:
                continue
            x = float(sigma[r, s])
            if mode == "emission_absorption":
                w = T * (1 - math.exp(-x * float(lengths[r, s])))
                T *= math.exp(-x * float(lengths[r, s]))
            elif mode == "absorption":
                w = x * float(lengths[r, s])
                tau_sum += w
            elif mode == "ray_termination":
                w = T * x
                T *= 1 - x
            else:
                w = 0.0
                if x > best:
                    best, best_s = x, s
            f = f + w * feats[r, s]
            wz += w * float(depth[r, s])
            wsum += w
        if mode == "maximum":
            alpha = best
            if best_s >= 0:  # the first sample reaching the maximum, weighted by it
                f, wz, wsum = best * feats[r, best_s], best * float(depth[r, best_s]), best
        elif mode == "absorption":
            alpha = 1 - math.exp(-tau_sum)
        else:
            alpha = 1 - T
        out_f.append(f)
        out_a.append(alpha)
        out_z.append(wz / wsum if wsum > 0 else 0.0)
    return torch.stack(out_f), torch.tensor(out_a, dtype=sigma.dtype), torch.tensor(out_z, dtype=sigma.dtype)


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_matches_loop(mode: str) -> None:
    args = _samples(occupancy=mode in ("maximum", "ray_termination"))
    bg = torch.tensor([0.3, 1.0], dtype=torch.float64)
    out = aggregate_rays(*args, mode=mode, background=bg)
    f, a, z = _loop(*args, mode)
    f = f + (1 - a)[:, None] * bg
    assert torch.allclose(out.features, f) and torch.allclose(out.alpha, a) and torch.allclose(out.depth, z)
    assert out.weights.shape == args[0].shape
    if mode != "absorption":  # the weights are how much of each sample shows: they add up to alpha
        assert torch.allclose(out.weights.sum(1), out.alpha)
        assert (out.features <= 1).all()  # features and background in [0, 1] stay there


def test_background_and_closed_form() -> None:
    # a homogeneous medium of density 2 over length 0.8: alpha = 1 - exp(-1.6), whatever the split
    lengths = torch.tensor([[0.1, 0.3, 0.4], [0.8, 0.0, 0.0]], dtype=torch.float64)
    sigma = torch.full((2, 3), 2.0, dtype=torch.float64)
    feats = torch.tensor([0.2, 0.4], dtype=torch.float64).expand(2, 3, 2)
    bg = torch.tensor([1.0, 0.5], dtype=torch.float64)
    out = aggregate_rays(sigma, lengths, feats, torch.ones_like(sigma), background=bg)
    alpha = 1 - math.exp(-1.6)
    assert torch.allclose(out.alpha, torch.full((2,), alpha, dtype=torch.float64))
    assert torch.allclose(out.features, alpha * feats[0, 0] + (1 - alpha) * bg)
    absorbed = aggregate_rays(
        sigma, lengths, torch.ones(2, 3, 1, dtype=torch.float64), sigma, mode="absorption"
    )
    assert torch.allclose(
        absorbed.features[:, 0], torch.full((2,), 1.6, dtype=torch.float64)
    )  # optical depth


@pytest.mark.parametrize("mode", ["emission_absorption", "absorption", "ray_termination"])
def test_gradcheck(mode: str) -> None:
    sigma, lengths, feats, depth = _samples(1, R=3, S=4, occupancy=mode == "ray_termination")
    sigma = (sigma * 0.9 + 0.05).requires_grad_()
    lengths = (lengths + 0.05).requires_grad_()
    feats.requires_grad_()
    depth.requires_grad_()

    def fn(*a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        o = aggregate_rays(*a, mode=mode)
        return o.features, o.alpha, o.depth, o.weights

    assert torch.autograd.gradcheck(fn, (sigma, lengths, feats, depth))


def test_maximum_gradient_reaches_the_maximum_only() -> None:
    sigma = torch.tensor([[0.2, 0.7, 0.7, 0.1], [0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    lengths = torch.ones(2, 4)
    out = aggregate_rays(sigma, lengths, torch.zeros(2, 4, 0), torch.arange(4.0).expand(2, 4), mode="maximum")
    out.alpha.sum().backward()
    assert sigma.grad is not None
    assert torch.equal(sigma.grad[0], torch.tensor([0.0, 1.0, 0.0, 0.0]))  # the first sample reaching it
    assert torch.equal(out.depth, torch.tensor([1.0, 0.0])) and out.alpha[1] == 0


def test_exception() -> None:
    sigma, lengths, feats, depth = _samples()
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        aggregate_rays(-sigma, lengths, feats, depth)
    with pytest.raises(ValueError, match="occupancy in \\[0, 1\\]"):
        aggregate_rays(sigma + 1, lengths, feats, depth, mode="ray_termination")
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        aggregate_rays(sigma, -lengths, feats, depth)
    with pytest.raises(ValueError, match="lengths and depth must have shape"):
        aggregate_rays(sigma, lengths[:, :3], feats, depth)
    with pytest.raises(ValueError, match="mode must be one of"):
        aggregate_rays(sigma, lengths, feats, depth, mode="sum")
    with pytest.raises(ValueError, match="background must have shape"):
        aggregate_rays(sigma, lengths, feats, depth, background=torch.zeros(3, dtype=torch.float64))


def test_ray_consistency_loss_matches_the_expectation() -> None:
    sigma, lengths, feats, depth = _samples(2, occupancy=True)
    rays = aggregate_rays(sigma, lengths, feats, depth, mode="ray_termination")
    mask = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.0], dtype=torch.float64)
    target = torch.tensor([1.5, 2.0, 1.2, 1.8, 3.0], dtype=torch.float64)
    loss = ray_consistency_loss(rays, mask=mask, depth=target, escape_depth=4.0)
    for r in range(5):  # the expectation over the events that end ray r (Tulsiani et al. 2017, eq. 5)
        T, want = 1.0, 0.0
        for s in range(sigma.shape[1]):
            if lengths[r, s] == 0:
                continue
            stop = T * float(sigma[r, s])
            want += stop * ((1 - float(mask[r])) + abs(float(depth[r, s]) - float(target[r])))
            T *= 1 - float(sigma[r, s])
        want += T * (float(mask[r]) + abs(4.0 - float(target[r])))
        assert float(loss[r]) == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="give mask, depth or both"):
        ray_consistency_loss(rays)
    with pytest.raises(ValueError, match="escape_depth is required"):
        ray_consistency_loss(rays, depth=target)
    with pytest.raises(ValueError, match="mask must have shape"):
        ray_consistency_loss(rays, mask=mask[:2])
