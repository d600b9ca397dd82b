"""Exact voxel traversal against the incremental stepper of Amanatides and Woo (1987), written per ray."""

from __future__ import annotations

import math

import torch

from gradiance.core.rays import ray_box_intersect
from gradiance.volume import traverse_voxels

RES = (4, 5, 3)
LO = torch.tensor([-1.0, -0.5, -0.75], dtype=torch.float64)
HI = torch.tensor([1.0, 1.5, 0.75], dtype=torch.float64)


def _stepper(
    o: torch.Tensor, d: torch.Tensor, t0: float, t1: float
) -> list[tuple[tuple[int, int, int], float]]:
    """Amanatides-Woo: from the entry voxel, step across whichever plane comes next; one ray, in Python."""
    enter, exit_ = (float(x) for x in ray_box_intersect(o, d, LO, HI))
    t, end = max(enter, t0), min(exit_, t1)
    if not end > t:
        return []
    h = (HI - LO) / torch.tensor(RES, dtype=torch.float64)
    p = o + t * d
    cell = [min(max(math.floor(float((p[a] - LO[a]) / h[a])), 0), RES[a] - 1) for a in range(3)]
    step, t_next, t_delta = [], [], []
    for a in range(3):
        if d[a] > 0:
            step.append(1)
            t_next.append(float((LO[a] + (cell[a] + 1) * h[a] - o[a]) / d[a]))
            t_delta.append(float(h[a] / d[a]))
        elif d[a] < 0:
            step.append(-1)
            t_next.append(float((LO[a] + cell[a] * h[a] - o[a]) / d[a]))
            t_delta.append(float(-h[a] / d[a]))
        else:
            step.append(0)
            t_next.append(math.inf)
            t_delta.append(math.inf)
    out = []
    while True:
        a = min(range(3), key=lambda k: t_next[k])
        t_stop = min(t_next[a], end)
        if t_stop > t:
            out.append(((cell[0], cell[1], cell[2]), t_stop - t))
        if t_next[a] >= end:
            return out
        t = t_next[a]
        cell[a] += step[a]
        t_next[a] += t_delta[a]
        if not 0 <= cell[a] < RES[a]:  # left the grid
            return out


def _check(o: torch.Tensor, d: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor) -> None:
    R = o.shape[0]
    seg = traverse_voxels(o, d, LO.expand(R, 3), HI.expand(R, 3), RES, t0, t1)
    for r in range(R):
        want = _stepper(o[r], d[r], float(t0[r]), float(t1[r]))
        got_valid = seg.valid[r]
        cells = [tuple(int(c) for c in v) for v in seg.voxels[r][got_valid]]
        lengths = seg.samples.lengths[r][got_valid]
        assert cells == [w[0] for w in want], r
        assert torch.allclose(lengths, torch.tensor([w[1] for w in want], dtype=torch.float64), atol=1e-12), r
    ordered = seg.samples.t_start[:, 1:] >= seg.samples.t_end[:, :-1]  # padding included
    assert ordered.all() and (seg.samples.t_end >= seg.samples.t_start).all()


def test_matches_stepper() -> None:
    g = torch.Generator().manual_seed(0)
    o = torch.randn(300, 3, generator=g, dtype=torch.float64) * 2.5
    target = LO + (HI - LO) * torch.rand(300, 3, generator=g, dtype=torch.float64)
    d = torch.nn.functional.normalize(target - o, dim=1)
    d[::7] = torch.nn.functional.normalize(
        torch.randn(43, 3, generator=g, dtype=torch.float64), dim=1
    )  # misses too
    t0 = torch.rand(300, generator=g, dtype=torch.float64)
    t1 = t0 + 1 + 4 * torch.rand(300, generator=g, dtype=torch.float64)  # some rays stop inside the grid
    _check(o, d, t0, t1)


def test_parallel_and_grazing_rays() -> None:
    o = torch.tensor(
        [
            [-2.0, 0.1, 0.1],  # along +x, parallel to the y and z planes
            [0.3, 3.0, -0.2],  # along -y
            [-2.0, 0.3, 0.25],  # along +x on the y = 0.3 and z = 0.25 planes: along an edge of the grid
            [-2.0, 2.0, 0.1],  # parallel, outside the y slab: misses
            [-1.0, -0.5, -0.75],  # from a corner along the diagonal of voxels: through edges and corners
        ],
        dtype=torch.float64,
    )
    h = (HI - LO) / torch.tensor(RES, dtype=torch.float64)
    d = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 0, 0]], dtype=torch.float64)
    d[4] = torch.nn.functional.normalize(h, dim=0)
    t0, t1 = torch.zeros(5, dtype=torch.float64), torch.full((5,), 10.0, dtype=torch.float64)
    seg = traverse_voxels(o, d, LO.expand(5, 3), HI.expand(5, 3), RES, t0, t1)
    lengths = (seg.samples.lengths * seg.valid).sum(1)
    diagonal_length = 3 * float(torch.linalg.norm(h))  # three voxels along their diagonal, then out in z
    want = torch.tensor([2.0, 2.0, 2.0, 0.0, diagonal_length], dtype=torch.float64)
    assert torch.allclose(lengths, want)
    assert seg.valid[0].sum() == 4 and seg.valid[1].sum() == 5 and seg.valid[3].sum() == 0
    edge = [tuple(int(c) for c in v) for v in seg.voxels[2][seg.valid[2]]]
    assert edge == [w[0] for w in _stepper(o[2], d[2], 0.0, 10.0)]  # the voxels above and behind the edge
    diagonal = [tuple(int(c) for c in v) for v in seg.voxels[4][seg.valid[4]]]
    assert diagonal == [(0, 0, 0), (1, 1, 1), (2, 2, 2)]  # zero-length steps through edges are dropped
    assert torch.isfinite(seg.samples.t).all()


def test_gradients_of_lengths() -> None:
    o = torch.tensor([[-2.0, 0.13, 0.21], [0.3, -2.0, 0.05]], dtype=torch.float64, requires_grad=True)
    d = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.21, -0.1], [0.1, 1.0, 0.13]], dtype=torch.float64), dim=1
    )
    t0, t1 = torch.zeros(2, dtype=torch.float64), torch.full((2,), 10.0, dtype=torch.float64)
    weights = torch.rand(2, 60, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def fn(o: torch.Tensor) -> torch.Tensor:  # a smooth function of the lengths while the voxels stay fixed
        seg = traverse_voxels(o, d, LO.expand(2, 3), HI.expand(2, 3), RES, t0, t1)
        flat = (seg.voxels[..., 0] * 5 + seg.voxels[..., 1]) * 3 + seg.voxels[..., 2]  # one weight per voxel
        return (seg.samples.lengths * torch.gather(weights, 1, flat)).sum()

    assert torch.autograd.gradcheck(fn, (o,), eps=1e-7)
