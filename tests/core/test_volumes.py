"""Voxel grids: validation and the trilinear field, against a per-point loop."""

from __future__ import annotations

import pytest
import torch

from gradiance.core.volumes import Volumes

LO = (-0.5, -1.0, 0.0)
HI = (0.5, 1.0, 3.0)


def _grid(dtype: torch.dtype = torch.float64) -> Volumes:
    g = torch.Generator().manual_seed(0)
    d = torch.rand(2, 3, 4, 5, generator=g, dtype=dtype)
    f = torch.rand(2, 3, 4, 5, 2, generator=g, dtype=dtype)
    return Volumes(d, f, lo=LO, hi=HI)


def _trilinear_loop(values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """One point: voxel centres at lo + (n + 1/2) h, constant out to the faces, zero outside."""
    lo, hi = torch.tensor(LO, dtype=p.dtype), torch.tensor(HI, dtype=p.dtype)
    if ((p < lo) | (p > hi)).any():
        return torch.zeros(values.shape[3:], dtype=values.dtype)
    n = torch.tensor(values.shape[:3], dtype=p.dtype)
    u = ((p - lo) / (hi - lo) * n - 0.5).clamp(torch.zeros(3, dtype=p.dtype), n - 1)
    i0 = u.floor().long().clamp(max=(n - 1).long())
    i1 = torch.minimum(i0 + 1, (n - 1).long())
    a = u - i0
    out = torch.zeros(values.shape[3:], dtype=values.dtype)
    for cx in (0, 1):
        for cy in (0, 1):
            for cz in (0, 1):
                w = (a[0] if cx else 1 - a[0]) * (a[1] if cy else 1 - a[1]) * (a[2] if cz else 1 - a[2])
                idx = [(i1 if c else i0)[k] for k, c in enumerate((cx, cy, cz))]
                out = out + w * values[idx[0], idx[1], idx[2]]
    return out


def test_sample_matches_loop() -> None:
    vol = _grid()
    g = torch.Generator().manual_seed(1)
    pts = torch.rand(2, 300, 3, generator=g, dtype=torch.float64) * 1.2 - 0.1
    pts = torch.tensor(LO, dtype=torch.float64) + pts * (torch.tensor(HI) - torch.tensor(LO)).double()
    dens, feats = vol.sample(pts)
    assert dens.shape == (2, 300) and feats.shape == (2, 300, 2)
    assert vol.features is not None
    for b in range(2):
        values = torch.cat([vol.densities[b, ..., None], vol.features[b]], -1)
        want = torch.stack([_trilinear_loop(values, p) for p in pts[b]])
        assert torch.allclose(dens[b], want[:, 0]) and torch.allclose(feats[b], want[:, 1:])
    centre = torch.tensor([[[-0.5 + 1 / 6, -1 + 0.25, 0.3]]], dtype=torch.float64).expand(2, 1, 3)
    assert torch.allclose(vol.sample(centre)[0][:, 0], vol.densities[:, 0, 0, 0])


def test_shape_and_voxel_values() -> None:
    vol = Volumes(torch.ones(1, 2, 2, 2), lo=torch.zeros(3), hi=torch.ones(3))
    assert vol.resolution == (2, 2, 2) and vol.num_features == 0 and len(vol) == 1
    assert torch.allclose(vol.voxel_size, torch.full((1, 3), 0.5))
    d, f = vol.sample(torch.rand(1, 4, 3))
    assert d.shape == (1, 4) and f.shape == (1, 4, 0)
    full = _grid()
    dens, feats = full.voxel_values(torch.tensor([1, 0]), torch.tensor([[2, 3, 4], [0, 1, 2]]))
    assert full.features is not None
    assert dens[0] == full.densities[1, 2, 3, 4] and torch.equal(feats[1], full.features[0, 0, 1, 2])


def test_gradcheck() -> None:
    vol = _grid()
    d = vol.densities.clone().requires_grad_()
    f = vol.features.clone().requires_grad_()  # type: ignore[union-attr]
    pts = torch.tensor([[[0.1, 0.3, 1.1], [-0.2, -0.7, 2.0]]], dtype=torch.float64).expand(2, 2, 3).clone()
    pts.requires_grad_()

    def fn(d: torch.Tensor, f: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return Volumes(d, f, lo=LO, hi=HI).sample(p)

    assert torch.autograd.gradcheck(fn, (d, f, pts))


def test_exception() -> None:
    with pytest.raises(ValueError, match="at least one grid and one voxel"):
        Volumes(torch.ones(1, 0, 2, 2))
    with pytest.raises(ValueError, match="densities must have shape"):
        Volumes(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="densities must be finite and >= 0"):
        Volumes(-torch.ones(1, 2, 2, 2))
    with pytest.raises(ValueError, match="densities must be finite and >= 0"):
        Volumes(torch.full((1, 2, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="features must have shape"):
        Volumes(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 3, 3))
    with pytest.raises(TypeError, match="features must have the dtype"):
        Volumes(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="hi > lo"):
        Volumes(torch.ones(1, 2, 2, 2), lo=(0.0, 0.0, 0.0), hi=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="lo must have shape"):
        Volumes(torch.ones(1, 2, 2, 2), lo=torch.zeros(2))
    with pytest.raises(ValueError, match="points must have shape"):
        Volumes(torch.ones(1, 2, 2, 2)).sample(torch.zeros(5, 3))
