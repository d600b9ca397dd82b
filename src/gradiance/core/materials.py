"""Reflectance parameters for ``core.shading``.

The diffuse albedo is deliberately NOT part of a material: it varies over the surface and reaches the
shading functions per pixel or per vertex (interpolated vertex colours or texture look-ups), as the
``albedo`` argument of ``shade``. A material holds what is constant over a surface: the specular colour and
the Phong exponent. The ambient term reflects with the diffuse albedo (there is no separate ambient colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_same_device, check_tensor

DEFAULT_SPECULAR = 0.2
DEFAULT_SHININESS = 32.0


@dataclass(frozen=True, eq=False)
class PhongMaterial:
    """Specular reflectance of a batch of ``B`` surfaces for the Phong and Blinn-Phong models.

    Attributes:
        specular_color: ``(B, 3)``; given as ``(3,)``, ``(B, 3)`` or a float (grey). Linear RGB, default
            0.2 grey (PyTorch3D's default light-times-material specular colour).
        shininess: ``(B,)``; given as ``()``, ``(B,)`` or a float. The Phong exponent, > 0, default 32.

    Float defaults become float32 CPU tensors (or follow the device and dtype of the other field when it is
    a tensor); move the material with ``.to(device, dtype)``. Both fields may require gradients.
    """

    specular_color: Tensor | float = DEFAULT_SPECULAR
    shininess: Tensor | float = DEFAULT_SHININESS

    def __post_init__(self) -> None:
        ref = next((t for t in (self.specular_color, self.shininess) if isinstance(t, Tensor)), None)
        device = ref.device if ref is not None else torch.device("cpu")
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        ks = self._field(self.specular_color, "specular_color", (3,), device, dtype)
        s = self._field(self.shininess, "shininess", (), device, dtype)
        check_same_device(specular_color=ks, shininess=s)
        B = max(ks.shape[0], s.shape[0])
        if min(ks.shape[0], s.shape[0]) not in (1, B):
            raise ValueError(
                f"specular_color has batch size {ks.shape[0]} and shininess {s.shape[0]}; use 1 or B"
            )
        if not bool(torch.isfinite(ks).all()):
            raise ValueError("specular_color contains NaN or infinite values")
        if not bool((torch.isfinite(s) & (s > 0)).all()):
            raise ValueError(f"shininess must be finite and > 0, got {s.tolist()}")
        object.__setattr__(self, "specular_color", ks.expand(B, 3))
        object.__setattr__(self, "shininess", s.expand(B))

    @staticmethod
    def _field(
        value: object, name: str, trailing: tuple[int, ...], device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        """``value`` as a ``(B, *trailing)`` tensor (floats broadcast to ``trailing``)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return torch.full((1, *trailing), float(value), device=device, dtype=dtype)
        t = check_tensor(value, name, None)
        n = len(trailing)
        if t.dim() not in (n, n + 1):
            spec = f"{trailing}, (B, *{trailing})" if n else "(), (B,)"
            raise ValueError(f"{name} must be a float or have shape {spec}, got {tuple(t.shape)}")
        t = t if t.dim() == n + 1 else t[None]
        return check_tensor(t, name, (None, *trailing))

    # Typed views of the broadcast fields (the dataclass fields accept floats before broadcasting).
    @property
    def specular_color_t(self) -> Tensor:
        """``(B, 3)`` specular colour."""
        return self.specular_color  # type: ignore[return-value]

    @property
    def shininess_t(self) -> Tensor:
        """``(B,)`` Phong exponent."""
        return self.shininess  # type: ignore[return-value]

    @property
    def batch_size(self) -> int:
        return int(self.shininess_t.shape[0])

    @property
    def device(self) -> torch.device:
        return self.shininess_t.device

    def tensors(self) -> dict[str, Tensor]:
        return {"specular_color": self.specular_color_t, "shininess": self.shininess_t}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PhongMaterial:
        """The same material with every tensor moved to ``device`` and cast to ``dtype``."""
        return PhongMaterial(
            self.specular_color_t.to(device=device, dtype=dtype),
            self.shininess_t.to(device=device, dtype=dtype),
        )
