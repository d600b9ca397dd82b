"""What the numba kernels' wrappers share: tensors as numpy arrays, and pixel centres in a given dtype."""

from __future__ import annotations

import numpy as np
from torch import Tensor


def as_numpy(x: Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor (made contiguous and detached first)."""
    return x.detach().contiguous().numpy()


def pixel_centres(W: int, H: int, like: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(u, v)``: the column and row centres ``j + 0.5`` (``(W,)`` and ``(H,)``) in ``like``'s dtype, so
    that a kernel's arithmetic stays in the dtype of its triangles."""
    u, v = ((np.arange(n, dtype=np.float64) + 0.5).astype(like.dtype) for n in (W, H))
    return u, v
