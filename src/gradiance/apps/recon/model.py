"""The single-view reconstruction network of NMR and SoftRas (Kato et al. 2018, Liu et al. 2019): a CNN
encodes an RGBA image, fully connected layers decode per-vertex displacements of a sphere template.

Each output coordinate is ``v = b tanh(atanh(t / b) + delta)`` for template coordinate ``t`` and bound
``b = 0.5``: predictions stay inside the protocol's ``[-0.5, 0.5]^3`` cube, ``delta = 0`` gives the
template, and (unlike a sign-preserving sigmoid parameterisation) a template coordinate of 0 can still
move. The last layer starts at zero, so training starts from the sphere. Group normalisation rather than
batch normalisation keeps every image's prediction independent of the rest of its batch, so that a
distributed run computes exactly what one process computes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...core.meshes import Meshes
from ...core.primitives import icosphere

BOUND = 0.5


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.GroupNorm(8, cout), nn.ReLU())


class Encoder(nn.Module):
    """``(B, 4, S, S)`` RGBA images (``S`` divisible by 16) to ``(B, latent)`` codes."""

    def __init__(self, image_size: int = 64, latent: int = 512, width: int = 32) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be divisible by 16, got {image_size}")
        w = width
        self.conv = nn.Sequential(_conv(4, w), _conv(w, 2 * w), _conv(2 * w, 4 * w), _conv(4 * w, 8 * w))
        flat = 8 * w * (image_size // 16) ** 2
        self.fc = nn.Sequential(nn.Linear(flat, 1024), nn.ReLU(), nn.Linear(1024, latent), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).flatten(1))


class ReconNet(nn.Module):
    """Image to mesh: ``forward(images (B, 4, S, S)) -> verts (B, V, 3)`` on the template's faces.

    Args:
        image_size: input resolution ``S``.
        template_level: icosphere subdivision level of the template (3: 642 vertices, 1280 faces, as the
            papers' ``sphere_642``).
        template_radius: the template sphere's radius.
        latent: size of the image code.
    """

    template: Tensor
    faces: Tensor

    def __init__(
        self, image_size: int = 64, template_level: int = 3, template_radius: float = 0.3, latent: int = 512
    ) -> None:
        super().__init__()
        if not 0 < template_radius < BOUND:
            raise ValueError(f"template_radius must be in (0, {BOUND}), got {template_radius}")
        sphere = icosphere(template_level, template_radius)
        self.register_buffer("template", sphere.verts.clone())
        self.register_buffer("faces", sphere.faces.clone())
        self.encoder = Encoder(image_size, latent)
        v = sphere.verts.shape[0]
        self.decoder = nn.Sequential(
            nn.Linear(latent, 1024), nn.ReLU(), nn.Linear(1024, 2048), nn.ReLU(), nn.Linear(2048, v * 3)
        )
        last = self.decoder[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, images: Tensor) -> Tensor:
        delta = self.decoder(self.encoder(images)).reshape(images.shape[0], -1, 3)
        return BOUND * torch.tanh(torch.atanh(self.template / BOUND) + delta)

    def meshes(self, verts: Tensor) -> Meshes:
        """The packed batch of ``B`` meshes with vertices ``verts`` ``(B, V, 3)`` on the template's faces."""
        B, V, _ = verts.shape
        faces = self.faces.to(verts.device)
        F, dev = faces.shape[0], verts.device
        packed = (faces[None] + V * torch.arange(B, device=dev)[:, None, None]).reshape(-1, 3)
        step = torch.arange(B + 1, device=dev)
        return Meshes(verts.reshape(-1, 3), packed, step * V, step * F, validate=False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
