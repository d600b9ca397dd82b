"""Compiled CPU kernels (numba): optional, picked by ``backend="auto"`` for CPU tensors when numba is
installed (``pip install gradiance[cpu]``). Each kernel computes what its counterpart in
``gradiance.backends.torch`` computes, and its tests compare the two."""

from __future__ import annotations

import importlib.util


def numba_available() -> bool:
    """True when the numba package can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None
