"""Batched, differentiable rotation conversions and rigid (SE(3)) transforms, built on ``roma``.

Conventions (fixed here once for the whole library):

- Every function takes any number of leading batch dimensions ``...``, follows the device and dtype of its
  inputs (float32 or float64) and is differentiable by autograd.
- Rotation matrices ``R`` are ``(..., 3, 3)`` and act on column vectors: ``x_rot = R @ x``.
- Quaternions are ``(..., 4)`` in ``(w, x, y, z)`` order, real part first (as PyTorch3D and 3D Gaussian
  splatting store them); ``roma`` uses ``(x, y, z, w)`` and the wrappers below reorder.
- Axis-angle vectors are ``(..., 3)``: the unit axis times the angle in radians (angle = norm).
- 6D rotations are ``(..., 6)``: the first two *columns* of ``R`` concatenated.
- Euler angles are ``(..., 3)`` radians with a 3-letter ``convention``: upper case (``"XYZ"``) means
  intrinsic rotations about the moving axes, lower case (``"xyz"``) extrinsic rotations about the fixed
  axes (scipy's rule). Intrinsic ``"XYZ"`` gives ``Rx(a0) @ Ry(a1) @ Rz(a2)``; extrinsic ``"xyz"`` gives
  ``Rz(a2) @ Ry(a1) @ Rx(a0)``.
- A rigid transform is a pair ``(R (..., 3, 3), t (..., 3))`` mapping ``x_out = R @ x + t``.
"""

from __future__ import annotations

from collections.abc import Sequence

import roma
import torch
from torch import Tensor

from .checks import check_same_device, check_tensor

__all__ = [
    "axis_angle_to_matrix",
    "euler_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "matrix_to_se3",
    "quaternion_apply",
    "quaternion_invert",
    "quaternion_multiply",
    "quaternion_to_matrix",
    "random_rotations",
    "rotation_6d_to_matrix",
    "se3_apply",
    "se3_compose",
    "se3_inverse",
    "se3_to_matrix",
]


def _check_trailing(x: object, name: str, trailing: Sequence[int | str]) -> Tensor:
    """Check that ``x`` is a float tensor whose last dimensions are ``trailing``; any leading dims."""
    x = check_tensor(x, name)
    k = len(trailing)
    if x.dim() < k:
        want = ", ".join(str(s) for s in trailing)
        raise ValueError(f"{name} must have shape (..., {want}), got {tuple(x.shape)}")
    return check_tensor(x, name, [None] * (x.dim() - k) + list(trailing))


def _check_convention(convention: object) -> str:
    """Require three axis letters, all upper (intrinsic) or all lower (extrinsic), no equal neighbours."""
    ok = (
        isinstance(convention, str)
        and len(convention) == 3
        and (set(convention) <= set("XYZ") or set(convention) <= set("xyz"))
        and convention[0] != convention[1]
        and convention[1] != convention[2]
    )
    if not ok:
        raise ValueError(
            "convention must be 3 axis letters, all upper case (intrinsic) or all lower case (extrinsic), "
            f"with no two consecutive axes equal, e.g. 'XYZ', 'xyz' or 'ZXZ'; got {convention!r}"
        )
    return str(convention)


# ---------------------------------------------------------------------------------------------------------
# Quaternions (w, x, y, z)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``q (..., 4)`` in ``(w, x, y, z)`` order.

    ``q`` is normalised first, so an unnormalised (e.g. learnable, as in 3DGS) quaternion is allowed;
    ``q`` and ``-q`` give the same matrix. ``q`` must not be zero.
    """
    q = _check_trailing(q, "q", (4,))
    return roma.unitquat_to_rotmat(roma.quat_wxyz_to_xyzw(roma.quat_normalize(q)))


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Unit quaternions ``(..., 4)`` in ``(w, x, y, z)`` order of rotation matrices ``R (..., 3, 3)``.

    The sign is chosen so that ``w >= 0``. Uses Markley's method (roma), stable for every rotation.
    """
    R = _check_trailing(R, "R", (3, 3))
    q = roma.quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(R))
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_multiply(q1: Tensor, q2: Tensor) -> Tensor:
    """Hamilton product ``q1 * q2`` of ``(w, x, y, z)`` quaternions, broadcast over leading dims.

    For unit quaternions, ``quaternion_to_matrix(q1 * q2)`` equals
    ``quaternion_to_matrix(q1) @ quaternion_to_matrix(q2)``.
    """
    q1 = _check_trailing(q1, "q1", (4,))
    q2 = _check_trailing(q2, "q2", (4,))
    check_same_device(q1=q1, q2=q2)
    p = roma.quat_product(roma.quat_wxyz_to_xyzw(q1), roma.quat_wxyz_to_xyzw(q2))
    return roma.quat_xyzw_to_wxyz(p)


def quaternion_invert(q: Tensor) -> Tensor:
    """Inverse ``conj(q) / |q|^2`` of quaternions ``q (..., 4)`` in ``(w, x, y, z)`` order (``q != 0``)."""
    q = _check_trailing(q, "q", (4,))
    return roma.quat_xyzw_to_wxyz(roma.quat_inverse(roma.quat_wxyz_to_xyzw(q)))


def quaternion_apply(q: Tensor, points: Tensor) -> Tensor:
    """Rotate ``points (..., 3)`` by quaternions ``q (..., 4)`` (``(w, x, y, z)``, need not be unit).

    Computes ``q p q^-1``; leading dims broadcast (pass ``q[..., None, :]`` to rotate ``(..., N, 3)``).
    """
    q = _check_trailing(q, "q", (4,))
    points = _check_trailing(points, "points", (3,))
    check_same_device(q=q, points=points)
    return roma.quat_action(roma.quat_wxyz_to_xyzw(q), points)


# ---------------------------------------------------------------------------------------------------------
# Axis-angle, 6D, Euler


def axis_angle_to_matrix(v: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` of axis-angle vectors ``v (..., 3)`` (Rodrigues' formula).

    The angle is ``|v|`` radians about ``v / |v|``. Below ``|v| = 1e-6`` roma switches to the first-order
    expansion ``I + [v]_x``, so the value and gradient are finite and correct at and near ``v = 0``.
    """
    v = _check_trailing(v, "v", (3,))
    return roma.rotvec_to_rotmat(v)


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Axis-angle vectors ``(..., 3)`` with angle in ``[0, pi]`` of rotation matrices ``R (..., 3, 3)``.

    Goes through the unit quaternion (roma); the gradient is finite at the identity. At angle ``pi`` the
    axis sign is ambiguous and the map is not differentiable.
    """
    R = _check_trailing(R, "R", (3, 3))
    return roma.rotmat_to_rotvec(R)


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` from 6D vectors ``d6 (..., 6)`` by Gram-Schmidt.

    Zhou et al. 2019, "On the Continuity of Rotation Representations", Sec. 4.2: ``d6 = (a1, a2)`` are the
    first two *columns* of ``R`` (the paper's convention; PyTorch3D uses rows, i.e. ``R^T``). Then
    ``R[..., :, 0] = a1 / |a1|``, ``R[..., :, 1]`` is ``a2`` orthogonalised and normalised, and
    ``R[..., :, 2]`` their cross product. ``a1`` and ``a2`` must not be parallel.
    """
    d6 = _check_trailing(d6, "d6", (6,))
    M = torch.stack((d6[..., :3], d6[..., 3:]), dim=-1)  # (..., 3, 2): the two columns
    return roma.special_gramschmidt(M)


def matrix_to_rotation_6d(R: Tensor) -> Tensor:
    """6D vectors ``(..., 6) = (R[..., :, 0], R[..., :, 1])`` (first two columns, Zhou et al. 2019)."""
    R = _check_trailing(R, "R", (3, 3))
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def euler_to_matrix(angles: Tensor, convention: str = "XYZ") -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` of Euler angles ``angles (..., 3)`` in radians.

    ``convention`` is 3 letters from ``XYZ`` (intrinsic, about the moving axes) or ``xyz`` (extrinsic,
    about the fixed axes); Tait-Bryan (``"XYZ"``, ``"zyx"``) and proper Euler (``"ZXZ"``) are allowed.
    ``angles[..., i]`` is the angle about axis ``convention[i]``: intrinsic ``"XYZ"`` is
    ``Rx(a0) @ Ry(a1) @ Rz(a2)``, extrinsic ``"xyz"`` is ``Rz(a2) @ Ry(a1) @ Rx(a0)``.
    """
    convention = _check_convention(convention)
    angles = _check_trailing(angles, "angles", (3,))
    return roma.euler_to_rotmat(convention, angles)


def matrix_to_euler(R: Tensor, convention: str = "XYZ") -> Tensor:
    """Euler angles ``(..., 3)`` (radians) of rotation matrices ``R (..., 3, 3)``; inverts euler_to_matrix.

    Angles lie in ``[-pi, pi]``; the middle one in ``[-pi/2, pi/2]`` (Tait-Bryan) or ``[0, pi]`` (proper
    Euler). At gimbal lock (middle angle within 1e-7 of its range's end) the third angle is set to 0 and the
    map is not differentiable there (roma, following scipy).
    """
    convention = _check_convention(convention)
    R = _check_trailing(R, "R", (3, 3))
    return roma.rotmat_to_euler(convention, R)


def random_rotations(
    n: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` rotation matrices ``(n, 3, 3)`` drawn uniformly (Haar measure) on SO(3).

    Uses Shoemake's uniform unit quaternions (roma); pass a ``generator`` for reproducible draws.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return roma.random_rotmat(n, dtype=dtype, device=device, generator=generator)


# ---------------------------------------------------------------------------------------------------------
# SE(3): x_out = R @ x + t


def _check_se3(R: Tensor, t: Tensor, rname: str = "R", tname: str = "t") -> tuple[Tensor, Tensor]:
    R = _check_trailing(R, rname, (3, 3))
    t = _check_trailing(t, tname, (3,))
    check_same_device(**{rname: R, tname: t})
    return R, t


def se3_compose(R1: Tensor, t1: Tensor, R2: Tensor, t2: Tensor) -> tuple[Tensor, Tensor]:
    """The transform that applies ``(R2, t2)`` first, then ``(R1, t1)``: ``(R1 @ R2, R1 @ t2 + t1)``.

    ``R1, R2`` are ``(..., 3, 3)`` and ``t1, t2`` are ``(..., 3)``; leading dims broadcast.
    """
    R1, t1 = _check_se3(R1, t1, "R1", "t1")
    R2, t2 = _check_se3(R2, t2, "R2", "t2")
    check_same_device(R1=R1, R2=R2)
    return R1 @ R2, (R1 @ t2[..., None])[..., 0] + t1


def se3_inverse(R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse ``(R^T, -R^T t)`` of the rigid transform ``R (..., 3, 3)``, ``t (..., 3)`` (R a rotation)."""
    R, t = _check_se3(R, t)
    Rt = R.transpose(-1, -2)
    return Rt, -(Rt @ t[..., None])[..., 0]


def se3_apply(R: Tensor, t: Tensor, points: Tensor) -> Tensor:
    """``out[..., n, :] = R @ points[..., n, :] + t`` for ``points (..., N, 3)``; returns ``(..., N, 3)``.

    ``R (..., 3, 3)`` and ``t (..., 3)`` broadcast against the leading dims of ``points``.
    """
    R, t = _check_se3(R, t)
    points = _check_trailing(points, "points", ("N", 3))
    check_same_device(R=R, points=points)
    return points @ R.transpose(-1, -2) + t[..., None, :]


def se3_to_matrix(R: Tensor, t: Tensor) -> Tensor:
    """Homogeneous matrices ``(..., 4, 4) = [[R, t], [0, 0, 0, 1]]``; leading dims of R and t broadcast."""
    R, t = _check_se3(R, t)
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    top = torch.cat((R.expand(*batch, 3, 3), t.expand(*batch, 3)[..., None]), dim=-1)
    bottom = torch.zeros(*batch, 1, 4, dtype=top.dtype, device=top.device)
    bottom[..., 0, 3] = 1
    return torch.cat((top, bottom), dim=-2)


def matrix_to_se3(M: Tensor) -> tuple[Tensor, Tensor]:
    """Split ``M (..., 4, 4)`` or ``(..., 3, 4)`` into ``R = M[..., :3, :3]`` and ``t = M[..., :3, 3]``.

    The bottom row of a 4x4 ``M`` is not checked (it is assumed to be ``(0, 0, 0, 1)``).
    """
    M = check_tensor(M, "M")
    if M.dim() < 2 or tuple(M.shape[-2:]) not in ((4, 4), (3, 4)):
        raise ValueError(f"M must have shape (..., 4, 4) or (..., 3, 4), got {tuple(M.shape)}")
    return M[..., :3, :3], M[..., :3, 3]
