"""A neural signed distance function with geometric initialisation, and occupancy from distances.

``NeuralSDF`` is the geometry network of IDR (Yariv et al. 2020, appendix A.1) sized by its arguments:
positional encoding of the input (Mildenhall et al. 2020, eq. 4), ``depth`` layers of ``width`` units with
softplus activations (``beta = 100``, a smooth ReLU whose gradients give continuous normals) and the input
concatenated again after layer ``skip``. Its output is one signed distance and ``features`` channels for an
appearance network. Geometric initialisation (Atzmon and Lipman 2020, "SAL", section 4) makes the initial
function approximately the signed distance of a sphere of radius ``radius``: hidden weights
``N(0, 2 / width)``, the last layer's distance row ``N(sqrt(pi / width), 1e-4)`` with bias ``-radius``, and
the weights of the encoded frequencies in the first layer (and after the skip) set to zero so that the
network starts from the raw coordinates (IDR's treatment of positional encoding).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.encoding import PositionalEncoding


class NeuralSDF(nn.Module):
    """``forward(points (N, 3)) -> (N,)`` signed distances; ``with_features`` also returns ``(N, features)``
    (module docstring)."""

    def __init__(
        self,
        frequencies: int = 6,
        width: int = 256,
        depth: int = 8,
        skip: int = 4,
        features: int = 256,
        radius: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0 < skip < depth:
            raise ValueError(f"skip must lie in (0, depth), got skip={skip}, depth={depth}")
        self.encode = PositionalEncoding(frequencies)
        n_in = self.encode.output_size(3)
        self.skip, self.num_features = skip, features
        dims = [n_in] + [width] * depth
        layers = []
        for i in range(depth):
            fan_in = dims[i] + (n_in if i == skip else 0)
            layers.append(nn.Linear(fan_in, width))
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(width, 1 + features)
        self.activation = nn.Softplus(beta=100)
        self._geometric_init(n_in, width, radius)

    @torch.no_grad()
    def _geometric_init(self, n_in: int, width: int, radius: float) -> None:
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, nn.Linear)
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2) / math.sqrt(width))
            nn.init.zeros_(layer.bias)
            if i == 0:
                layer.weight[:, 3:] = 0.0  # the encoded frequencies start switched off
            if i == self.skip:
                layer.weight[:, -(n_in - 3) :] = 0.0
        nn.init.normal_(self.out.weight, 0.0, 1e-4)
        nn.init.normal_(self.out.weight[:1], math.sqrt(math.pi) / math.sqrt(width), 1e-4)
        nn.init.zeros_(self.out.bias)
        self.out.bias[0] = -radius

    def with_features(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """``(distance (N,), features (N, C))``."""
        enc = self.encode(points)
        x = enc
        for i, layer in enumerate(self.layers):
            if i == self.skip:
                x = torch.cat([x, enc], -1) / math.sqrt(2)
            x = self.activation(layer(x))
        out = self.out(x)
        return out[..., 0], out[..., 1:]

    def forward(self, points: Tensor) -> Tensor:
        return self.with_features(points)[0]


def occupancy_from_sdf(sdf: nn.Module, sharpness: float = 50.0) -> nn.Module:
    """The occupancy ``sigmoid(-sharpness * f(x))`` of a signed distance ``f`` (1 inside, 0 outside, 1/2 on
    the surface), as a module."""
    if not sharpness > 0:
        raise ValueError(f"sharpness must be > 0, got {sharpness}")
    return _Occupancy(sdf, sharpness)


class _Occupancy(nn.Module):
    def __init__(self, sdf: nn.Module, sharpness: float) -> None:
        super().__init__()
        self.sdf, self.sharpness = sdf, sharpness

    def forward(self, points: Tensor) -> Tensor:
        return torch.sigmoid(-self.sharpness * self.sdf(points))


class RenderingNetwork(nn.Module):
    """IDR's appearance network (Yariv et al. 2020, appendix A.1): an MLP of ``depth`` ReLU layers of
    ``width`` on ``(point, normal, view direction, geometry features)`` (the view direction positionally
    encoded with ``direction_frequencies``), ending in a sigmoid: ``(N, 3) x 3, (N, F) -> (N, 3)``."""

    def __init__(
        self, features: int = 256, width: int = 256, depth: int = 4, direction_frequencies: int = 4
    ) -> None:
        super().__init__()
        self.encode = PositionalEncoding(direction_frequencies)
        n_in = 6 + self.encode.output_size(3) + features
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 3), nn.Sigmoid())

    def forward(self, points: Tensor, normals: Tensor, directions: Tensor, features: Tensor) -> Tensor:
        return self.mlp(torch.cat([points, normals, self.encode(directions), features], -1))
