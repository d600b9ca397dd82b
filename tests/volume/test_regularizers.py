"""The total-variation prior on voxel grids."""

from __future__ import annotations

import pytest
import torch

from gradiance.volume.regularizers import total_variation


def test_total_variation() -> None:
    assert total_variation(torch.ones(1, 3, 4, 5)) == 0
    g = torch.zeros(1, 2, 1, 1, 2)
    g[0, 1, 0, 0] = torch.tensor([1.0, 3.0])  # one x-neighbour pair differing by (1, 3)
    assert float(total_variation(g)) == pytest.approx((1 + 9) / 2)
    x = torch.rand(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(total_variation, (x,))
    with pytest.raises(ValueError, match="grid must have shape"):
        total_variation(torch.ones(3, 3))
