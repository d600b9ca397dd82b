"""Input checks shared by every public op.

Each check raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong shape, range, device or
non-finite values) with a message that names the argument and what was expected, so that a user can fix
the call without reading the source.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# A shape spec lists one entry per dimension: an int demands that size, a str names a size that must agree
# wherever the same name appears (within one call), and None accepts any size.
ShapeSpec = Sequence[int | str | None]


def _fmt_spec(spec: ShapeSpec) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in spec) + ")"


def check_tensor(
    x: object,
    name: str,
    shape: ShapeSpec | None = None,
    *,
    dtype: str | torch.dtype | None = "float",
    sizes: dict[str, int] | None = None,
    finite: bool = False,
    device: torch.device | None = None,
) -> Tensor:
    """Validate one tensor argument and return it unchanged.

    Args:
        x: the value to check.
        name: the argument's name as the user wrote it, used in error messages.
        shape: expected shape, one entry per dimension (see ``ShapeSpec``); None skips the check.
        dtype: "float" (float32 or float64), "index" (int32 or int64), a torch dtype, or None for any.
        sizes: named sizes shared across several calls; filled in as names are first seen.
        finite: also require every element to be finite (this synchronises with the device).
        device: when given, the tensor must live on this device.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if dtype == "float":
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    elif dtype == "index":
        if x.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be an int32 or int64 index tensor, got {x.dtype}")
    elif isinstance(dtype, torch.dtype) and x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if shape is not None:
        _check_shape(x, name, shape, sizes if sizes is not None else {})
    if device is not None and x.device != torch.device(device):
        raise ValueError(f"{name} is on {x.device} but the other inputs are on {device}; move it explicitly")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_shape(x: Tensor, name: str, spec: ShapeSpec, sizes: dict[str, int]) -> None:
    if x.dim() != len(spec):
        raise ValueError(f"{name} must have shape {_fmt_spec(spec)}, got {tuple(x.shape)}")
    for dim, (want, got) in enumerate(zip(spec, x.shape, strict=True)):
        if want is None:
            continue
        if isinstance(want, str):
            if want in sizes and sizes[want] != got:
                raise ValueError(
                    f"{name} must have shape {_fmt_spec(spec)} with {want}={sizes[want]}, "
                    f"got {tuple(x.shape)} (dimension {dim})"
                )
            sizes.setdefault(want, got)
        elif want != got:
            raise ValueError(f"{name} must have shape {_fmt_spec(spec)}, got {tuple(x.shape)}")


def check_index_range(index: Tensor, name: str, upper: int | Tensor, what: str) -> None:
    """Require ``0 <= index < upper`` elementwise; ``upper`` may be a tensor broadcast to ``index``."""
    if index.numel() == 0:
        return
    if bool((index < 0).any()) or bool((index >= upper).any()):
        bad = index[(index < 0) | (index >= upper)][0].item()
        raise ValueError(f"{name} has index {bad} outside the valid range of {what}")


def check_same_device(**tensors: Tensor | None) -> torch.device:
    """Return the common device of the given tensors; raise naming the first one that differs."""
    device: torch.device | None = None
    first = ""
    for name, t in tensors.items():
        if t is None:
            continue
        if device is None:
            device, first = t.device, name
        elif t.device != device:
            raise ValueError(
                f"{name} is on {t.device} but {first} is on {device}; gradiance never moves data "
                "between devices silently, call .to(device) first"
            )
    return device if device is not None else torch.device("cpu")


def check_positive(value: float | Tensor, name: str, *, allow_zero: bool = False) -> None:
    """Require a scalar or every element of a tensor to be positive (or non-negative) and finite."""
    t = torch.as_tensor(value)
    ok = (t >= 0) if allow_zero else (t > 0)
    if not bool((ok & torch.isfinite(t)).all()):
        relation = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {relation}, got {value}")


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Require a Python int (not a bool) of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        relation = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {relation}, got {value!r}")
    return value


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Require ``value`` to be one of the given strings."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
