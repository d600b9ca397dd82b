"""Small numerically safe vector helpers shared by the whole library."""

from __future__ import annotations

import torch
from torch import Tensor


def safe_normalize(x: Tensor) -> Tensor:
    """``x / |x|`` along the last dimension; a zero vector maps to zero, with zero gradient.

    The gradient is finite everywhere (``|x|^2`` is clamped to the dtype's smallest normal number before the
    square root, and ``torch.where`` masks the zero vectors), so background pixels or degenerate faces with
    zero normals never produce NaN.
    """
    sq = (x * x).sum(-1, keepdim=True)
    unit = x / sq.clamp_min(torch.finfo(x.dtype).tiny).sqrt()
    return torch.where(sq > 0, unit, torch.zeros_like(unit))
