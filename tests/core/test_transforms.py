"""Tests for gradiance.core.transforms: conventions, round trips, batching, gradients and input checks."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch.autograd import gradcheck

from gradiance.core.transforms import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    matrix_to_se3,
    quaternion_apply,
    quaternion_invert,
    quaternion_multiply,
    quaternion_to_matrix,
    random_rotations,
    rotation_6d_to_matrix,
    se3_apply,
    se3_compose,
    se3_inverse,
    se3_to_matrix,
)

F64 = torch.float64
TOL = 1e-10
# All 12 axis sequences (6 Tait-Bryan, 6 proper Euler), each intrinsic (upper) and extrinsic (lower).
SEQUENCES = ["".join(p) for p in itertools.product("XYZ", repeat=3) if p[0] != p[1] and p[1] != p[2]]
CONVENTIONS = SEQUENCES + [s.lower() for s in SEQUENCES]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rots(n: int = 16, seed: int = 0) -> torch.Tensor:
    return random_rotations(n, dtype=F64, generator=_gen(seed))


def _elementary(axis: str, a: torch.Tensor) -> torch.Tensor:
    """Rotation by angle a about one coordinate axis, written out by hand."""
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    rows = {
        "x": [[o, z, z], [z, c, -s], [z, s, c]],
        "y": [[c, z, s], [z, o, z], [-s, z, c]],
        "z": [[c, -s, z], [s, c, z], [z, z, o]],
    }[axis.lower()]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _assert_rotation(R: torch.Tensor, tol: float = TOL) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=tol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=tol, rtol=0)


def _assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> None:
    torch.testing.assert_close(a, b, atol=tol, rtol=0)


# known values -------------------------------------------------------------------------------------


def test_smoke() -> None:
    """90 degrees about z maps x to y, whichever representation describes it."""
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    ey = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    h = math.pi / 2
    mats = [
        axis_angle_to_matrix(torch.tensor([0.0, 0.0, h], dtype=F64)),
        quaternion_to_matrix(torch.tensor([math.cos(h / 2), 0.0, 0.0, math.sin(h / 2)], dtype=F64)),
        euler_to_matrix(torch.tensor([0.0, 0.0, h], dtype=F64), "XYZ"),
        euler_to_matrix(torch.tensor([0.0, 0.0, h], dtype=F64), "xyz"),
    ]
    for R in mats:
        _assert_close(R @ ex, ey)
    q = torch.tensor([math.cos(h / 2), 0.0, 0.0, math.sin(h / 2)], dtype=F64)
    _assert_close(quaternion_apply(q, ex), ey)


@pytest.mark.parametrize("a", [-2.5, -0.3, 0.0, 0.7, 3.0])
def test_quaternion_about_z(a: float) -> None:
    q = torch.tensor([math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)], dtype=F64)
    Rz = _elementary("z", torch.tensor(a, dtype=F64))
    _assert_close(quaternion_to_matrix(q), Rz)
    _assert_close(axis_angle_to_matrix(torch.tensor([0.0, 0.0, a], dtype=F64)), Rz)


def test_euler_hand_built_xyz() -> None:
    """Intrinsic "XYZ" is Rx @ Ry @ Rz; extrinsic "xyz" is Rz @ Ry @ Rx."""
    ang = torch.rand(10, 3, dtype=F64, generator=_gen(1)) * 4 - 2
    Rx, Ry, Rz = (_elementary(ax, ang[:, i]) for i, ax in enumerate("xyz"))
    _assert_close(euler_to_matrix(ang, "XYZ"), Rx @ Ry @ Rz)
    _assert_close(euler_to_matrix(ang, "xyz"), Rz @ Ry @ Rx)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_euler_hand_built_all(convention: str) -> None:
    """Intrinsic: product in the order given; extrinsic: product in reverse order (scipy's rule)."""
    ang = torch.rand(10, 3, dtype=F64, generator=_gen(2)) * 4 - 2
    mats = [_elementary(ax, ang[:, i]) for i, ax in enumerate(convention)]
    if convention.islower():
        mats = mats[::-1]
    _assert_close(euler_to_matrix(ang, convention), mats[0] @ mats[1] @ mats[2])


# round trips --------------------------------------------------------------------------------------


def test_quaternion_round_trip() -> None:
    R = _rots()
    q = matrix_to_quaternion(R)
    assert bool((q[:, 0] >= 0).all())
    _assert_close(q.norm(dim=-1), torch.ones(16, dtype=F64))
    _assert_close(quaternion_to_matrix(q), R)
    # Unnormalised and negated quaternions give the same rotation.
    _assert_close(quaternion_to_matrix(-3.5 * q), R)
    q_rand = torch.randn(16, 4, dtype=F64, generator=_gen(3))
    q_rand = torch.where(q_rand[:, :1] < 0, -q_rand, q_rand)
    _assert_close(
        matrix_to_quaternion(quaternion_to_matrix(q_rand)), q_rand / q_rand.norm(dim=-1, keepdim=True)
    )


def test_axis_angle_round_trip() -> None:
    R = _rots()
    v = matrix_to_axis_angle(R)
    assert bool((v.norm(dim=-1) <= math.pi + 1e-12).all())
    _assert_close(axis_angle_to_matrix(v), R)
    v_in = torch.randn(16, 3, dtype=F64, generator=_gen(4))
    v_in = v_in / v_in.norm(dim=-1, keepdim=True) * torch.rand(16, 1, dtype=F64, generator=_gen(5)) * 3
    _assert_close(matrix_to_axis_angle(axis_angle_to_matrix(v_in)), v_in)


def test_axis_angle_zero() -> None:
    eye = torch.eye(3, dtype=F64)
    _assert_close(axis_angle_to_matrix(torch.zeros(3, dtype=F64)), eye)
    _assert_close(matrix_to_axis_angle(eye), torch.zeros(3, dtype=F64))
    v = torch.tensor([1e-7, -2e-7, 3e-8], dtype=F64)
    _assert_close(matrix_to_axis_angle(axis_angle_to_matrix(v)), v, tol=1e-15)


def test_rotation_6d() -> None:
    R = _rots()
    d6 = matrix_to_rotation_6d(R)
    _assert_close(d6, torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1))  # columns, as in Zhou et al. 2019
    _assert_close(rotation_6d_to_matrix(d6), R)
    raw = torch.randn(16, 6, dtype=F64, generator=_gen(6))
    R2 = rotation_6d_to_matrix(raw)
    _assert_rotation(R2)
    _assert_close(R2[..., :, 0], raw[:, :3] / raw[:, :3].norm(dim=-1, keepdim=True))
    _assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(R2)), R2)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_euler_round_trip(convention: str) -> None:
    R = _rots(seed=7)
    _assert_close(euler_to_matrix(matrix_to_euler(R, convention), convention), R)
    # Angles inside the canonical range, away from gimbal lock, come back unchanged.
    u = torch.rand(16, 3, dtype=F64, generator=_gen(8))
    proper = convention[0].lower() == convention[2].lower()
    mid = 0.1 + u[:, 1] * (math.pi - 0.2) if proper else (u[:, 1] - 0.5) * (math.pi - 0.2)
    ang = torch.stack(((u[:, 0] * 2 - 1) * 3.1, mid, (u[:, 2] * 2 - 1) * 3.1), dim=-1)
    _assert_close(matrix_to_euler(euler_to_matrix(ang, convention), convention), ang)


# quaternion algebra -------------------------------------------------------------------------------


def test_quaternion_algebra() -> None:
    q1 = torch.randn(16, 4, dtype=F64, generator=_gen(9))
    q2 = torch.randn(16, 4, dtype=F64, generator=_gen(10))
    _assert_close(
        quaternion_to_matrix(quaternion_multiply(q1, q2)), quaternion_to_matrix(q1) @ quaternion_to_matrix(q2)
    )
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64).expand(16, 4)
    _assert_close(quaternion_multiply(q1, quaternion_invert(q1)), identity)
    _assert_close(quaternion_multiply(quaternion_invert(q1), q1), identity)
    pts = torch.randn(16, 5, 3, dtype=F64, generator=_gen(11))
    expected = (quaternion_to_matrix(q1)[:, None] @ pts[..., None])[..., 0]
    _assert_close(quaternion_apply(q1[:, None], pts), expected)
    # Broadcasting: one quaternion applied to many points.
    _assert_close(quaternion_apply(q1[0], pts[0]), expected[0])


# SE(3) --------------------------------------------------------------------------------------------


def _random_se3(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = math.prod(shape)
    R = random_rotations(n, dtype=F64, generator=_gen(seed)).reshape(*shape, 3, 3)
    t = torch.randn(*shape, 3, dtype=F64, generator=_gen(seed + 100))
    return R, t


def test_se3() -> None:
    R1, t1 = _random_se3((4,), 12)
    R2, t2 = _random_se3((4,), 13)
    x = torch.randn(4, 7, 3, dtype=F64, generator=_gen(14))
    # Known value: x_out = R x + t.
    _assert_close(se3_apply(R1, t1, x), (R1[:, None] @ x[..., None])[..., 0] + t1[:, None])
    # Compose applies (R2, t2) first.
    R12, t12 = se3_compose(R1, t1, R2, t2)
    _assert_close(se3_apply(R12, t12, x), se3_apply(R1, t1, se3_apply(R2, t2, x)))
    # Inverse undoes, on both sides.
    Ri, ti = se3_inverse(R1, t1)
    _assert_close(se3_apply(Ri, ti, se3_apply(R1, t1, x)), x)
    R_id, t_id = se3_compose(R1, t1, Ri, ti)
    _assert_close(R_id, torch.eye(3, dtype=F64).expand(4, 3, 3))
    _assert_close(t_id, torch.zeros(4, 3, dtype=F64))
    # Homogeneous matrices agree with the pair, and split back.
    M = se3_to_matrix(R1, t1)
    assert M.shape == (4, 4, 4)
    _assert_close(M[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=F64).expand(4, 4))
    xh = torch.cat((x, torch.ones(4, 7, 1, dtype=F64)), dim=-1)
    _assert_close((xh @ M.transpose(-1, -2))[..., :3], se3_apply(R1, t1, x))
    _assert_close(matrix_to_se3(se3_to_matrix(R12, t12))[0], R12)
    _assert_close(matrix_to_se3(M)[1], t1)
    R3, t3 = matrix_to_se3(M[:, :3])  # (..., 3, 4) also accepted
    _assert_close(R3, R1)
    _assert_close(t3, t1)


def test_se3_broadcast() -> None:
    """One transform applies to a batch of point sets; R and t batch dims broadcast."""
    R, t = _random_se3((), 15)
    x = torch.randn(2, 3, 5, 3, dtype=F64, generator=_gen(16))
    out = se3_apply(R, t, x)
    assert out.shape == (2, 3, 5, 3)
    _assert_close(out[1, 2], x[1, 2] @ R.T + t)
    M = se3_to_matrix(R, torch.zeros(6, 3, dtype=F64))
    assert M.shape == (6, 4, 4)


# shapes, devices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_shape(batch: tuple[int, ...]) -> None:
    n = math.prod(batch)
    R = random_rotations(n, dtype=F64, generator=_gen(17)).reshape(*batch, 3, 3)
    q = matrix_to_quaternion(R)
    v = matrix_to_axis_angle(R)
    d6 = matrix_to_rotation_6d(R)
    e = matrix_to_euler(R, "ZYX")
    assert q.shape == (*batch, 4)
    assert v.shape == (*batch, 3)
    assert d6.shape == (*batch, 6)
    assert e.shape == (*batch, 3)
    for R_back in (quaternion_to_matrix(q), axis_angle_to_matrix(v), rotation_6d_to_matrix(d6)):
        assert R_back.shape == (*batch, 3, 3)
        _assert_close(R_back, R)
    _assert_close(euler_to_matrix(e, "ZYX"), R)
    assert quaternion_multiply(q, q).shape == (*batch, 4)
    assert quaternion_invert(q).shape == (*batch, 4)
    assert quaternion_apply(q, v).shape == (*batch, 3)
    t = torch.zeros(*batch, 3, dtype=F64)
    assert se3_to_matrix(R, t).shape == (*batch, 4, 4)
    assert se3_apply(R, t, torch.zeros(*batch, 4, 3, dtype=F64)).shape == (*batch, 4, 3)
    assert se3_inverse(R, t)[0].shape == (*batch, 3, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype(dtype: torch.dtype) -> None:
    R = random_rotations(8, dtype=dtype, generator=_gen(18))
    assert R.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else TOL
    _assert_rotation(R, tol)
    for out in (
        quaternion_to_matrix(matrix_to_quaternion(R)),
        axis_angle_to_matrix(matrix_to_axis_angle(R)),
        rotation_6d_to_matrix(matrix_to_rotation_6d(R)),
        euler_to_matrix(matrix_to_euler(R, "zxz"), "zxz"),
    ):
        assert out.dtype == dtype
        _assert_close(out, R, tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda() -> None:
    R = random_rotations(8, dtype=torch.float32, device="cuda")
    assert R.device.type == "cuda"
    for out in (matrix_to_quaternion(R), matrix_to_axis_angle(R), matrix_to_euler(R, "XYZ")):
        assert out.device == R.device
    _assert_close(quaternion_to_matrix(matrix_to_quaternion(R)), R, 1e-5)


def test_random_rotations() -> None:
    R = random_rotations(20000, dtype=F64, generator=_gen(19))
    assert R.shape == (20000, 3, 3)
    _assert_rotation(R)
    _assert_close(R, random_rotations(20000, dtype=F64, generator=_gen(19)), 0.0)
    # Under the Haar measure every entry has mean 0 and variance 1/3.
    _assert_close(R.mean(dim=0), torch.zeros(3, 3, dtype=F64), 0.02)
    _assert_close(R.pow(2).mean(dim=0), torch.full((3, 3), 1 / 3, dtype=F64), 0.02)


# gradients ----------------------------------------------------------------------------------------


def _gc(fn: Callable[..., object], *inputs: torch.Tensor) -> None:
    args = tuple(x.detach().clone().requires_grad_(True) for x in inputs)
    assert gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck() -> None:
    R = _rots(3, seed=20)
    q = torch.randn(3, 4, dtype=F64, generator=_gen(21))
    _gc(quaternion_to_matrix, q)
    _gc(matrix_to_quaternion, R)
    _gc(axis_angle_to_matrix, torch.randn(3, 3, dtype=F64, generator=_gen(22)))
    _gc(matrix_to_axis_angle, R)
    _gc(rotation_6d_to_matrix, torch.randn(3, 6, dtype=F64, generator=_gen(23)))
    _gc(matrix_to_rotation_6d, R)
    _gc(quaternion_multiply, q, torch.randn(3, 4, dtype=F64, generator=_gen(24)))
    _gc(quaternion_invert, q)
    _gc(quaternion_apply, q, torch.randn(3, 3, dtype=F64, generator=_gen(25)))
    t = torch.randn(3, 3, dtype=F64, generator=_gen(26))
    _gc(se3_compose, R, t, R.flip(0), t.flip(0))
    _gc(se3_inverse, R, t)
    _gc(se3_apply, R, t, torch.randn(3, 4, 3, dtype=F64, generator=_gen(27)))
    _gc(se3_to_matrix, R, t)
    _gc(matrix_to_se3, torch.randn(3, 4, 4, dtype=F64, generator=_gen(28)))


@pytest.mark.parametrize("convention", ["XYZ", "xyz", "ZYX", "ZXZ", "yxy"])
def test_gradcheck_euler(convention: str) -> None:
    ang = torch.tensor([[0.3, -0.7, 1.2], [-2.0, 0.5, 0.1]], dtype=F64)
    _gc(lambda a: euler_to_matrix(a, convention), ang)
    _gc(lambda m: matrix_to_euler(m, convention), _rots(3, seed=29))


@pytest.mark.parametrize("norm", [0.0, 1e-9, 1e-6, 1e-3])
def test_gradcheck_axis_angle_near_zero(norm: float) -> None:
    """Both directions are differentiable at and near the identity."""
    direction = torch.tensor([0.6, -0.8, 0.0], dtype=F64)
    v = direction * norm
    _gc(axis_angle_to_matrix, v)
    _gc(matrix_to_axis_angle, axis_angle_to_matrix(v))


def test_axis_angle_jacobian_at_zero() -> None:
    """dR/dv_k at v = 0 is the cross-product matrix of e_k (exact, not merely finite)."""
    jac = torch.autograd.functional.jacobian(axis_angle_to_matrix, torch.zeros(3, dtype=F64))
    skew_z = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)
    _assert_close(jac[..., 2], skew_z)


# input checks -------------------------------------------------------------------------------------

_R = torch.eye(3)
_T = torch.zeros(3)


@pytest.mark.parametrize(
    ("fn", "error", "match"),
    [
        (lambda: quaternion_to_matrix(torch.zeros(5, 3)), ValueError, "q"),
        (lambda: quaternion_to_matrix(torch.zeros(5, 4, dtype=torch.int64)), TypeError, "q"),
        (lambda: quaternion_to_matrix([1.0, 0.0, 0.0, 0.0]), TypeError, "q"),
        (lambda: matrix_to_quaternion(torch.zeros(3, 4)), ValueError, "R"),
        (lambda: matrix_to_quaternion(torch.zeros(3)), ValueError, "R"),
        (lambda: matrix_to_quaternion(torch.eye(3, dtype=torch.int32)), TypeError, "R"),
        (lambda: axis_angle_to_matrix(torch.zeros(2, 4)), ValueError, "v"),
        (lambda: axis_angle_to_matrix(torch.zeros(3, dtype=torch.int64)), TypeError, "v"),
        (lambda: matrix_to_axis_angle(torch.zeros(2, 2)), ValueError, "R"),
        (lambda: rotation_6d_to_matrix(torch.zeros(9)), ValueError, "d6"),
        (lambda: matrix_to_rotation_6d(torch.zeros(6)), ValueError, "R"),
        (lambda: euler_to_matrix(torch.zeros(4), "XYZ"), ValueError, "angles"),
        (lambda: euler_to_matrix(torch.zeros(3, dtype=torch.int64)), TypeError, "angles"),
        (lambda: euler_to_matrix(torch.zeros(3), "XyZ"), ValueError, "convention"),
        (lambda: euler_to_matrix(torch.zeros(3), "XXY"), ValueError, "convention"),
        (lambda: euler_to_matrix(torch.zeros(3), "XY"), ValueError, "convention"),
        (lambda: matrix_to_euler(_R, "abc"), ValueError, "convention"),
        (lambda: matrix_to_euler(_R, "zyyx"), ValueError, "convention"),
        (lambda: quaternion_multiply(torch.zeros(4), torch.zeros(3)), ValueError, "q2"),
        (lambda: quaternion_invert(torch.zeros(3)), ValueError, "q"),
        (lambda: quaternion_apply(torch.zeros(4), torch.zeros(4)), ValueError, "points"),
        (lambda: se3_compose(_R, _T, torch.zeros(3, 4), _T), ValueError, "R2"),
        (lambda: se3_compose(_R, torch.zeros(4), _R, _T), ValueError, "t1"),
        (lambda: se3_inverse(_R, torch.zeros(3, dtype=torch.int64)), TypeError, "t"),
        (lambda: se3_apply(_R, _T, torch.zeros(3)), ValueError, "points"),
        (lambda: se3_apply(_R, _T, torch.zeros(5, 2)), ValueError, "points"),
        (lambda: se3_to_matrix(torch.zeros(4, 4), _T), ValueError, "R"),
        (lambda: matrix_to_se3(torch.zeros(4, 3)), ValueError, "M"),
        (lambda: matrix_to_se3(torch.zeros(4)), ValueError, "M"),
        (lambda: random_rotations(-1), ValueError, "n"),
        (lambda: random_rotations(3, dtype=torch.int64), TypeError, "dtype"),
    ],
)
def test_exception(fn: Callable[[], object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=rf"^{match}\b"):
        fn()
