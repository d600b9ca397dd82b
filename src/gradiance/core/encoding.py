"""Positional encoding of coordinates, shared by neural fields and neural implicit surfaces."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionalEncoding(nn.Module):
    """``gamma(p) = (p, sin(2^0 pi p), cos(2^0 pi p), ..., sin(2^(L-1) pi p), cos(2^(L-1) pi p))`` applied to
    each coordinate (Mildenhall et al. 2020, eq. 4); ``(..., D)`` to ``(..., D (include_input + 2 L))``."""

    scales: Tensor

    def __init__(self, num_frequencies: int, include_input: bool = True) -> None:
        super().__init__()
        if not isinstance(num_frequencies, int) or num_frequencies < 0:
            raise ValueError(f"num_frequencies must be an int >= 0, got {num_frequencies!r}")
        self.include_input = include_input
        self.register_buffer("scales", math.pi * 2.0 ** torch.arange(num_frequencies, dtype=torch.float32))

    def output_size(self, dims: int) -> int:
        return dims * (int(self.include_input) + 2 * int(self.scales.numel()))

    def forward(self, x: Tensor) -> Tensor:
        angles = (x[..., None] * self.scales.to(x.dtype)).flatten(-2)
        parts = [x] if self.include_input else []
        return torch.cat([*parts, torch.sin(angles), torch.cos(angles)], -1)
