"""Gaussians that stand in for a triangle mesh: one flat Gaussian per face, so that mesh benchmarks (pose,
shape, appearance) can drive the Gaussian renderer with gradients reaching the vertices.

Face ``f`` with corners ``v_0, v_1, v_2`` becomes a Gaussian at the centroid ``m`` whose in-plane
covariance is the covariance of the uniform distribution on the triangle,
``(1/12) sum_k (v_k - m)(v_k - m)^T`` (restricted to the face's plane), scaled by ``spread``, and whose
normal standard deviation is ``thickness`` times the larger in-plane one. The in-plane axes come from the
closed-form eigenvectors of that 2 x 2 covariance. Colours are the faces' mean vertex colours (white when
the mesh has none) as degree-0 SH; lighting is not modelled (the render is unlit albedo).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.meshes import Meshes
from ..core.transforms import matrix_to_quaternion
from ..core.vectors import safe_normalize
from .model import Gaussians, rgb_to_sh0


def gaussians_from_meshes(
    meshes: Meshes,
    opacity: float = 0.98,
    spread: float = 2.0,
    thickness: float = 0.05,
    colors: Tensor | None = None,
) -> Gaussians:
    """One Gaussian per face of every mesh of ``meshes`` (module docstring), differentiable in the
    vertices; ``colors`` ``(F, C)`` overrides the faces' colours."""
    if not 0 < opacity < 1:
        raise ValueError(f"opacity must be in (0, 1) (alpha compositing needs it below 1), got {opacity}")
    fv = meshes.face_verts()  # (F, 3, 3)
    centre = fv.mean(1)
    n = safe_normalize(torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1))
    e1 = safe_normalize(fv[:, 1] - fv[:, 0])
    e2 = torch.linalg.cross(n, e1, dim=-1)
    rel = fv - centre[:, None]
    x, y = (rel * e1[:, None]).sum(-1), (rel * e2[:, None]).sum(-1)  # (F, 3) in-plane coordinates
    a, b, c = (x * x).sum(1) / 12, (x * y).sum(1) / 12, (y * y).sum(1) / 12
    theta = 0.5 * torch.atan2(2 * b, a - c)  # principal axis of [[a, b], [b, c]]
    mid, half = (a + c) / 2, torch.sqrt(((a - c) / 2) ** 2 + b * b + 1e-20)
    lam1, lam2 = mid + half, (mid - half).clamp_min(1e-12)
    u1 = torch.cos(theta)[:, None] * e1 + torch.sin(theta)[:, None] * e2
    u2 = torch.linalg.cross(n, u1, dim=-1)
    R = torch.stack([u1, u2, n], -1)  # columns: the Gaussian's axes in the world
    s1, s2 = spread * lam1.sqrt(), spread * lam2.sqrt()
    scales = torch.stack([s1, s2, thickness * s1], -1).clamp_min(1e-8)
    if colors is not None:
        if colors.dim() != 2 or colors.shape[0] != fv.shape[0]:
            raise ValueError(f"colors must have shape ({fv.shape[0]}, C), got {tuple(colors.shape)}")
        rgb = colors
    elif meshes.vert_colors is not None:
        rgb = meshes.vert_colors[meshes.faces][..., :3].mean(1)
    else:
        rgb = torch.ones_like(centre)
    opacities = torch.full_like(centre[:, 0], opacity)
    return Gaussians(centre, matrix_to_quaternion(R), scales, opacities, rgb_to_sh0(rgb)[:, None])


def face_covariances(meshes: Meshes) -> Tensor:
    """``(F, 3, 3)`` covariance of the uniform distribution on each face (for tests and diagnostics)."""
    fv = meshes.face_verts()
    rel = fv - fv.mean(1, keepdim=True)
    return torch.einsum("fki,fkj->fij", rel, rel) / 12
