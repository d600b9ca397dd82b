"""Fragment compositing against a per-pixel loop, gradients and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core.compositing import composite, sort_fragments

DT = torch.float64


def _fragments(P: int = 40, pixels: int = 7, seed: int = 0, tie: bool = True) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    pixel = torch.randint(pixels, (P,), generator=g)
    depth = torch.rand(P, generator=g, dtype=DT)
    if tie:  # a tie keeps input order (and, below, a transparent fragment)
        depth[5] = depth[6]
        pixel[5] = pixel[6]
    opacity = 0.9 * torch.rand(P, generator=g, dtype=DT)
    if tie:
        opacity[3] = 0.0  # a transparent fragment is not counted
    features = torch.rand(P, 2, generator=g, dtype=DT)
    return pixel, depth, opacity, features


def _loop(pixel, depth, opacity, features, n, mode, t_min, k):  # type: ignore[no-untyped-def]
    out_f, out_a, out_z, out_c, out_first = [], [], [], [], []
    for p in range(n):
        frags = sorted(
            [i for i in range(len(pixel)) if int(pixel[i]) == p], key=lambda i: (float(depth[i]), i)
        )
        frags = frags[:k] if k is not None else frags
        f, z, count, first = torch.zeros(2, dtype=DT), 0.0, 0, -1
        if mode == "alpha":
            T = 1.0
            for i in frags:
                a = float(opacity[i])
                if T * (1 - a) < t_min:
                    break
                f = f + a * T * features[i]
                z += a * T * float(depth[i])
                T *= 1 - a
                count += a > 0
                first = i if first < 0 and a > 0 else first
            alpha = 1 - T
        else:
            total = sum(float(opacity[i]) for i in frags)
            for i in frags:
                w = float(opacity[i]) if mode == "weighted_sum" else float(opacity[i]) / max(total, 1e-12)
                f = f + w * features[i]
                z += w * float(depth[i])
                count += float(opacity[i]) > 0
                first = i if first < 0 and float(opacity[i]) > 0 else first
            alpha = min(1.0, total)
        out_f.append(f)
        out_a.append(alpha)
        out_z.append(z)
        out_c.append(count)
        out_first.append(first)
    return torch.stack(out_f), torch.tensor(out_a, dtype=DT), torch.tensor(out_z, dtype=DT), out_c, out_first


@pytest.mark.parametrize("mode", ["alpha", "weighted_sum", "normalized_weighted_sum"])
@pytest.mark.parametrize("k", [None, 2])
@pytest.mark.parametrize("t_min", [0.0, 0.05])
def test_matches_per_pixel_loop(mode: str, k: int | None, t_min: float) -> None:
    if mode != "alpha" and t_min > 0:
        pytest.skip("early termination is for alpha compositing")
    pixel, depth, opacity, features = _fragments()
    out = composite(pixel, depth, opacity, features, 8, mode, min_transmittance=t_min, max_per_pixel=k)
    f, a, z, count, first = _loop(pixel, depth, opacity, features, 8, mode, t_min, k)
    torch.testing.assert_close(out.features, f)
    torch.testing.assert_close(out.alpha, a)
    torch.testing.assert_close(out.depth, z)
    assert out.count.tolist() == count and out.first.tolist() == first
    assert count[7] == 0 and first[7] == -1  # pixel 7 has no fragment


def test_gradcheck() -> None:
    pixel, depth, opacity, features = _fragments(12, 3, tie=False)  # the order must not change
    for mode in ("alpha", "normalized_weighted_sum"):
        assert torch.autograd.gradcheck(
            lambda o, f, z, m=mode: tuple(
                getattr(composite(pixel, z, o, f, 3, m), name) for name in ("features", "alpha", "depth")
            ),
            (opacity.requires_grad_(), features.requires_grad_(), depth.clone().requires_grad_()),
        )


@pytest.mark.parametrize(("t_min", "k"), [(0.05, None), (0.0, 2), (0.3, 3)])
def test_gradcheck_alpha_with_cut_fragments(t_min: float, k: int | None) -> None:
    """Alpha compositing's gradient against finite differences, with fragments left out
    by early termination and by the K nearest, and a fragment of opacity 0, whose gradient is not 0 (a
    one-sided difference, since the opacity cannot go below 0)."""
    pixel, depth, opacity, features = _fragments(16, 3, seed=1, tie=False)

    def f(o: torch.Tensor, feats: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        res = composite(pixel, z, o, feats, 3, min_transmittance=t_min, max_per_pixel=k)
        return res.features, res.alpha, res.depth, res.count

    def total(o: torch.Tensor) -> torch.Tensor:
        return sum(x.sum() for x in f(o, features, depth)[:3])  # type: ignore[return-value]

    assert int(f(opacity, features, depth)[3].sum()) < 16  # some fragments are left out
    leaves = [x.clone().requires_grad_() for x in (opacity, features, depth)]
    assert torch.autograd.gradcheck(lambda *x: f(*x)[:3], leaves)
    first = int(torch.argmin(depth + 10 * (pixel != pixel[0])))  # the nearest fragment of pixel[0]: kept
    o = opacity.detach().clone()
    o[first] = 0.0
    (grad,) = torch.autograd.grad(total(o.requires_grad_()), o)
    bumped = o.detach().clone()
    bumped[first] = 1e-7
    one_sided = (total(bumped) - total(o.detach())) / 1e-7
    assert abs(float(grad[first])) > 0.1
    assert float(grad[first]) == pytest.approx(float(one_sided), rel=1e-5)


def test_long_runs_keep_precision() -> None:
    """A million faint fragments in one pixel: the float64 log-transmittance keeps the product exact."""
    P = 1_000_000
    opacity = torch.full((P,), 1e-5)
    out = composite(torch.zeros(P, dtype=torch.int64), torch.arange(P).float(), opacity, torch.ones(P, 1), 1)
    assert float(out.alpha[0]) == pytest.approx(1 - (1 - 1e-5) ** P, rel=1e-5)
    assert float(out.features[0, 0]) == pytest.approx(float(out.alpha[0]), rel=1e-4)


def test_exception() -> None:
    pixel, depth, opacity, features = _fragments()
    with pytest.raises(ValueError, match="mode"):
        composite(pixel, depth, opacity, features, 8, "max")
    with pytest.raises(ValueError, match="depth"):
        composite(pixel, depth[:-1], opacity, features, 8)
    with pytest.raises(ValueError, match="features"):
        composite(pixel, depth, opacity, features[:, 0], 8)
    with pytest.raises(ValueError, match="max_per_pixel"):
        composite(pixel, depth, opacity, features, 8, max_per_pixel=0)
    for bad in (1.0, -0.1, float("nan")):
        wrong = opacity.clone()
        wrong[2] = bad
        with pytest.raises(ValueError, match="opacity"):
            composite(pixel, depth, wrong, features, 8)
    wrong[2] = 1.0  # a full weight is fine in a weighted sum
    assert bool(torch.isfinite(composite(pixel, depth, wrong, features, 8, "weighted_sum").features).all())
    with pytest.raises(ValueError, match="min_transmittance"):
        composite(pixel, depth, opacity, features, 8, min_transmittance=1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_sort_fragments_orders_by_pixel_then_depth_stably(dtype: torch.dtype) -> None:
    """The single-key sort of 32-bit depths gives the order of a stable sort by (pixel, depth): with
    ties, negative depths, both zeros and infinities."""
    g = torch.Generator().manual_seed(3)
    P = 5000
    pixel = torch.randint(50, (P,), generator=g)
    depth = (torch.randn(P, generator=g) * 10).round() / 4  # many ties
    depth[:6] = torch.tensor([0.0, -0.0, math.inf, -math.inf, 0.0, -0.0])
    depth = depth.to(dtype)
    order = sort_fragments(pixel, depth)
    keys = [(int(pixel[i]), float(depth[i]), i) for i in range(P)]
    assert order.tolist() == [k[2] for k in sorted(keys)]
