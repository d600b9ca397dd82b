"""Compute backends: ``torch`` (the reference, always present), ``numba`` (optional compiled CPU kernels)
and ``triton`` (optional GPU kernels)."""

from __future__ import annotations

import importlib.util
import os

# The subpackage ``gradiance.backends.torch`` would shadow a module-level ``torch`` here, so import by name.
from torch import __version__ as _torch_version
from torch import cuda as _cuda

BACKENDS = ("torch", "numba", "triton")


def backend_status() -> dict[str, str]:
    """Each backend's availability as a short human-readable line (``"available ..."`` or why not)."""
    status = {"torch": f"available (torch {_torch_version}, reference implementation)"}
    if importlib.util.find_spec("numba") is None:
        status["numba"] = "unavailable: the numba package is not installed (pip install gradiance[cpu])"
    else:
        status["numba"] = "available (compiled CPU kernels: z-buffer, interpolation, SoftRas, soft pairs)"
    if importlib.util.find_spec("triton") is None:
        status["triton"] = "unavailable: the triton package is not installed"
    elif _cuda.is_available():
        status["triton"] = "available (CUDA)"
    elif os.environ.get("TRITON_INTERPRET") == "1":
        status["triton"] = "available (interpreter, TRITON_INTERPRET=1; slow, for tests)"
    else:
        status["triton"] = "unavailable: no CUDA device (set TRITON_INTERPRET=1 for the interpreter)"
    return status


def available_backends() -> list[str]:
    """Names of the backends that can run here, the reference first."""
    return [name for name, line in backend_status().items() if line.startswith("available")]
