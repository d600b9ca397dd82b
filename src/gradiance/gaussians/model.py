"""A 3D Gaussian scene (Kerbl, Kopanas, Leimkuehler and Drettakis, SIGGRAPH 2023, "3D Gaussian Splatting
for Real-Time Radiance Field Rendering"): means, rotations, scales, opacities and spherical-harmonics
colours, with the covariance and the view-dependent colour of the paper.

Parameters are the quantities themselves, not the paper's activations of them: ``scales`` are positive
(pass ``exp(log_scales)``), ``opacities`` lie in ``[0, 1]`` (pass ``sigmoid(logits)``), ``quats`` are
``(w, x, y, z)`` and normalised here (so an optimiser may move them freely; a zero quaternion raises).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.checks import check_tensor
from ..core.lights import sh_basis
from ..core.transforms import quaternion_to_matrix
from ..core.vectors import safe_normalize

SH_OFFSET = 0.5  # the paper's colour is sum_lm c_lm Y_lm(d) + 0.5, clamped at 0


@dataclass(frozen=True, eq=False)
class Gaussians:
    """``N`` Gaussians.

    Attributes:
        means: ``(N, 3)`` world centres.
        quats: ``(N, 4)`` rotations ``(w, x, y, z)`` (normalised when used; non-zero).
        scales: ``(N, 3)`` positive standard deviations along the rotated axes.
        opacities: ``(N,)`` in ``[0, 1]``.
        sh: ``(N, (d + 1)^2, C)`` spherical-harmonics coefficients of degree ``d`` in 0..3 (``C`` channels,
            3 for RGB), in ``gradiance.core.lights.sh_basis`` order ``l * l + l + m``.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        check_tensor(self.means, "means", ("N", 3), sizes=sizes, finite=True)
        check_tensor(self.quats, "quats", ("N", 4), sizes=sizes, finite=True)
        check_tensor(self.scales, "scales", ("N", 3), sizes=sizes, finite=True)
        check_tensor(self.opacities, "opacities", ("N",), sizes=sizes, finite=True)
        check_tensor(self.sh, "sh", ("N", None, None), sizes=sizes, finite=True)
        k = self.sh.shape[1]
        if k not in (1, 4, 9, 16):
            raise ValueError(f"sh must have 1, 4, 9 or 16 coefficients per Gaussian (degree 0-3), got {k}")
        if bool((self.scales <= 0).any()):
            raise ValueError("scales must be positive (pass exp(log_scales) for an unconstrained parameter)")
        if bool(((self.opacities < 0) | (self.opacities > 1)).any()):
            raise ValueError("opacities must lie in [0, 1] (pass sigmoid(logits) for an unconstrained one)")
        if bool((self.quats.detach().norm(dim=-1) == 0).any()):
            raise ValueError("quats must be non-zero (they are normalised, but a zero one has no rotation)")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def degree(self) -> int:
        return {1: 0, 4: 1, 9: 2, 16: 3}[int(self.sh.shape[1])]

    def covariances(self) -> Tensor:
        """``(N, 3, 3)`` world covariances ``R S S^T R^T`` (eq. 6 of the paper)."""
        R = quaternion_to_matrix(self.quats)
        M = R * self.scales[:, None, :]
        return M @ M.transpose(1, 2)

    def colors(self, camera_centers: Tensor) -> Tensor:
        """``(B, N, C)`` colours seen from ``camera_centers`` ``(B, 3)``:
        ``max(0, sum_lm c_lm Y_lm(d) + 0.5)`` with ``d`` the unit direction from the camera to each mean."""
        d = safe_normalize(self.means[None].to(camera_centers) - camera_centers[:, None])
        basis = sh_basis(d, self.degree)  # (B, N, K)
        return torch.clamp_min(torch.einsum("bnk,nkc->bnc", basis, self.sh.to(basis)) + SH_OFFSET, 0)


def sh_from_kerbl(sh: Tensor) -> Tensor:
    """Coefficients ``(N, K, C)`` of the reference implementation of Kerbl et al. (and of gsplat, and of
    the ``f_dc``/``f_rest`` fields of their PLY files once reshaped to ``(N, K, C)``) in this module's
    basis: their basis carries the Condon-Shortley phase ``(-1)^m`` and ``sh_basis`` does not, so
    coefficient ``l * l + l + m`` changes sign for odd ``m``. The conversion is its own inverse."""
    k = sh.shape[-2]
    idx = torch.arange(k, device=sh.device)
    level = torch.floor(torch.sqrt(idx.to(torch.float64))).long()
    m = idx - level * level - level
    return sh * torch.where(m % 2 == 0, 1.0, -1.0).to(sh.dtype)[:, None]


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """The degree-0 coefficient ``(..., C)`` whose colour is ``rgb`` (the inverse of ``c Y_00 + 0.5``)."""
    return (rgb - SH_OFFSET) / sh_basis(rgb.new_zeros(1, 3), 0)[0, 0]
