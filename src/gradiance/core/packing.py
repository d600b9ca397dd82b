"""Packed batches: items of different sizes concatenated along the first dimension.

A packed batch of ``N`` items stores ``offsets`` of shape ``(N + 1,)`` with ``offsets[0] = 0`` and
``offsets[n + 1] - offsets[n]`` the size of item ``n``; item ``n`` owns rows ``offsets[n]:offsets[n+1]``.
Nothing is ever padded to the largest item.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def offsets_from_sizes(sizes: Sequence[int], device: torch.device | str = "cpu") -> Tensor:
    """``(N + 1,)`` int64 offsets for items of the given sizes."""
    out = torch.zeros(len(sizes) + 1, dtype=torch.int64, device=device)
    if len(sizes):
        out[1:] = torch.cumsum(torch.as_tensor(list(sizes), dtype=torch.int64, device=device), 0)
    return out


def sizes_from_offsets(offsets: Tensor) -> list[int]:
    """Python list of item sizes, ``sizes[n] = offsets[n + 1] - offsets[n]``."""
    return [int(s) for s in (offsets[1:] - offsets[:-1]).tolist()]


def item_index(offsets: Tensor) -> Tensor:
    """``(offsets[-1],)`` int64: ``item_index(offsets)[k] = n`` for every row ``k`` of item ``n``."""
    sizes = offsets[1:] - offsets[:-1]
    return torch.repeat_interleave(torch.arange(sizes.numel(), device=offsets.device), sizes)


def select_items(offsets: Tensor, items: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Rows of the chosen items, in the order given, and the offsets of the new packed batch.

    Returns ``(rows, new_offsets)`` where ``rows`` is ``(R,)`` int64 indices into the old packed rows.
    """
    starts = offsets[:-1][list(items)] if len(items) else offsets[:0]
    sizes = (offsets[1:] - offsets[:-1])[list(items)] if len(items) else offsets[:0]
    new_offsets = torch.zeros(len(items) + 1, dtype=torch.int64, device=offsets.device)
    new_offsets[1:] = torch.cumsum(sizes, 0)
    total = int(new_offsets[-1])
    within = torch.arange(total, device=offsets.device) - torch.repeat_interleave(new_offsets[:-1], sizes)
    rows = torch.repeat_interleave(starts, sizes) + within
    return rows, new_offsets


def normalize_items(items: int | slice | Sequence[int] | Tensor, count: int, name: str) -> list[int]:
    """Turn an index, slice, list, bool mask or index tensor over ``count`` items into a list of ints."""
    if isinstance(items, int):
        if not -count <= items < count:
            raise IndexError(f"{name} index {items} is out of range for a batch of {count}")
        return [items % count]
    if isinstance(items, slice):
        return list(range(count))[items]
    if isinstance(items, Tensor):
        if items.dtype == torch.bool:
            if items.shape != (count,):
                raise IndexError(f"{name} mask must have shape ({count},), got {tuple(items.shape)}")
            return [int(i) for i in torch.nonzero(items).flatten().tolist()]
        items = [int(i) for i in items.flatten().tolist()]
    out = []
    for i in items:
        if not -count <= int(i) < count:
            raise IndexError(f"{name} index {i} is out of range for a batch of {count}")
        out.append(int(i) % count)
    return out


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` for an integer ``index`` of any shape, via ``index_select`` (an order of magnitude faster
    than advanced indexing on CPU for multi-column rows): returns ``(*index.shape, *x.shape[1:])``."""
    return torch.index_select(x, 0, index.reshape(-1)).reshape(*index.shape, *x.shape[1:])


class _ScatterRows(torch.autograd.Function):
    """``fill`` broadcast to ``n`` rows (zeros when None) with ``values`` copied into rows ``index``
    (distinct indices)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, values: Tensor, index: Tensor, n: int, fill: Tensor | None
    ) -> Tensor:
        ctx.save_for_backward(index)
        shape = (n, *values.shape[1:])
        # zeros come from a memset; broadcasting a small row is ~10x slower on CPU
        out = values.new_zeros(shape) if fill is None else fill.to(values.dtype).expand(shape).clone()
        return out.index_copy_(0, index, values)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        (index,) = ctx.saved_tensors  # type: ignore[attr-defined]
        # a loss like ``image.sum()`` hands back an expanded (stride 0) gradient, on which ``index_select``
        # is ~40x slower than on a dense one on CPU: make it dense first
        return torch.index_select(grad.contiguous(), 0, index), None, None, None


def scatter_rows(values: Tensor, index: Tensor, n: int, fill: Tensor | None = None) -> Tensor:
    """``(n, *values.shape[1:])``: ``values[k]`` in row ``index[k]`` (distinct indices), ``fill`` (broadcast
    to a row, no gradient; zeros when None) elsewhere; differentiable with respect to ``values``."""
    out: Tensor = _ScatterRows.apply(values, index, n, None if fill is None else fill.detach())
    return out


def run_starts(sorted_keys: Tensor) -> Tensor:
    """``(n,)`` int64: for a sorted 1D tensor, the index of the first element of each element's run of equal
    values. A cumulative sum numbers the runs and each run's first index is looked up: both are parallel
    scans on a GPU, where a cumulative maximum over one long row runs nearly serially (22 of 48 ms of a
    100k-Gaussian render on an H200 went to it)."""
    n = sorted_keys.numel()
    new = torch.ones(n, dtype=torch.bool, device=sorted_keys.device)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    first = torch.nonzero(new).squeeze(1)
    return first[torch.cumsum(new, 0) - 1] if n else first
