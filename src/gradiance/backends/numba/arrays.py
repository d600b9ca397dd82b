"""What the numba kernels' wrappers share: tensors as numpy arrays, pixel centres in a given dtype, and
the threads that run kernels side by side."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

_T = TypeVar("_T")


def as_numpy(x: Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor (made contiguous and detached first)."""
    return x.detach().contiguous().numpy()


def pixel_centres(W: int, H: int, like: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(u, v)``: the column and row centres ``j + 0.5`` (``(W,)`` and ``(H,)``) in ``like``'s dtype, so
    that a kernel's arithmetic stays in the dtype of its triangles."""
    u, v = ((np.arange(n, dtype=np.float64) + 0.5).astype(like.dtype) for n in (W, H))
    return u, v


@functools.lru_cache(maxsize=4)
def thread_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool kept for the process (threads are started once). Kernels release the GIL and run on
    plain threads, not numba's parallel loops: those run on a second OpenMP runtime beside torch's, and the
    two spin against each other (a test suite under pytest-xdist ran 40x slower)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gradiance-kernels")


def on_threads(ranges: list[tuple[int, int]], job: Callable[[int, int], _T]) -> list[_T]:
    """``job(lo, hi)`` for every range, on the thread pool when there are several."""
    if len(ranges) == 1:
        return [job(*ranges[0])]
    return list(thread_pool(len(ranges)).map(lambda r: job(*r), ranges))


def first_order(backward: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.autograd.function.once_differentiable`` for the kernels' backward passes, which also raises
    when the backward pass is asked for a graph (``create_graph=True``). once_differentiable alone raises
    only when the incoming gradient needs a gradient itself; with a constant incoming gradient a second
    derivative through the kernel would come out as zero, silently."""
    inner = torch.autograd.function.once_differentiable(backward)

    @functools.wraps(backward)
    def wrapper(ctx: Any, *grads: Any) -> Any:
        if torch.is_grad_enabled():
            raise RuntimeError(
                "the compiled (numba) kernels are differentiable once: second derivatives "
                "(create_graph=True) through them are not supported (the once_differentiable rule)"
            )
        return inner(ctx, *grads)

    return wrapper
