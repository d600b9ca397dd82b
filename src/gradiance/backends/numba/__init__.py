"""Compiled CPU kernels (numba): optional, picked by ``backend="auto"`` for CPU tensors when numba is
installed (``pip install gradiance[cpu]``). Each kernel computes what its counterpart in
``gradiance.backends.torch`` computes, and its tests compare the two."""

from __future__ import annotations

import functools
import importlib.util

import torch


@functools.cache
def numba_available() -> bool:
    """True when the numba package can be imported (without importing it); looked up once, since every
    ``backend="auto"`` decision asks (a lookup costs ~30 us)."""
    return importlib.util.find_spec("numba") is not None


def use_numba(backend: str, device: torch.device) -> bool:
    """Whether ``backend`` ("auto", "torch" or "numba") runs the numba kernels for tensors on ``device``:
    "auto" does on CPU when numba is installed; "numba" must (else a ValueError says why it cannot)."""
    if backend == "numba":
        if device.type != "cpu":
            raise ValueError(f"backend='numba' runs on CPU tensors, but the scene is on {device}")
        if not numba_available():
            raise ValueError("backend='numba' needs the numba package: pip install numba")
        return True
    return backend == "auto" and device.type == "cpu" and numba_available()
