"""interpolate against a per-pixel loop, gradients, screen-space derivatives and bad input."""

from __future__ import annotations

import pytest
import torch

from gradiance.core.cameras import Cameras, look_at
from gradiance.core.meshes import Meshes
from gradiance.core.primitives import cube, uv_sphere
from gradiance.mesh.interpolate import interpolate
from gradiance.mesh.rasterize import RasterSettings, rasterize

DT = torch.float64


def _scene() -> tuple[Meshes, Cameras]:
    mesh = uv_sphere(6, 8, dtype=DT)
    cams = look_at(torch.tensor([[0.3, 0.5, -3.0], [2.0, 0.0, 2.0]], dtype=DT), image_size=(7, 9), fov=40.0)
    return mesh, cams


def test_smoke() -> None:
    mesh, cams = _scene()
    values, derivs = interpolate(mesh.verts, rasterize(mesh, cams), mesh.faces)
    assert values.shape == (2, 7, 9, 1, 3) and derivs is None


def test_shape() -> None:
    mesh, cams = _scene()
    fr = rasterize(mesh, cams, RasterSettings(faces_per_pixel=2, bary_derivatives=True))
    values, derivs = interpolate(
        torch.rand(2, mesh.verts.shape[0], 5, dtype=DT), fr, mesh.faces, derivatives=True
    )
    assert values.shape == (2, 7, 9, 2, 5) and derivs is not None and derivs.shape == (2, 7, 9, 2, 5, 2)
    uv, _ = interpolate(mesh.uvs, fr, mesh.face_uvs)  # type: ignore[arg-type]
    assert uv.shape == (2, 7, 9, 2, 2)


def test_matches_per_pixel_loop() -> None:
    mesh, cams = _scene()
    attrs = torch.rand(2, mesh.verts.shape[0], 4, dtype=DT)
    fr = rasterize(mesh, cams, RasterSettings(faces_per_pixel=2))
    values, _ = interpolate(attrs, fr, mesh.faces)
    for b in range(2):
        for i in range(7):
            for j in range(9):
                for k in range(2):
                    f = int(fr.face_id[b, i, j, k])
                    want = torch.zeros(4, dtype=DT)
                    if f >= 0:
                        for c in range(3):
                            want += fr.bary[b, i, j, k, c] * attrs[b, mesh.faces[f, c]]
                    torch.testing.assert_close(values[b, i, j, k], want)


def test_uvs_use_their_own_indices() -> None:
    # on the UV sphere the seam shares positions but not UVs: interpolated u stays within [0, 1]
    mesh = uv_sphere(8, 12, dtype=DT)
    cams = look_at(
        torch.tensor([[0.0, 0.0, -3.0]], dtype=DT), image_size=(16, 16), fov=40.0
    )  # looks at the seam
    uv, _ = interpolate(mesh.uvs, rasterize(mesh, cams), mesh.face_uvs)  # type: ignore[arg-type]
    assert float(uv.min()) >= 0 and float(uv.max()) <= 1


def test_derivatives_match_finite_differences() -> None:
    mesh, cams = _scene()
    attrs = torch.rand(mesh.verts.shape[0], 3, dtype=DT)
    fr = rasterize(mesh, cams, RasterSettings(bary_derivatives=True))
    values, derivs = interpolate(attrs, fr, mesh.faces, derivatives=True)
    assert derivs is not None
    h = 1e-6
    for axis in (0, 1):
        shift = torch.zeros(2, dtype=DT)
        shift[axis] = -h  # moving the principal point by -h samples the image at +h
        moved = Cameras(
            cams.R, cams.t, cams.focal_t, cams.principal_t + shift, cams.image_size, cams.near_t, cams.far_t
        )
        fr2 = rasterize(mesh, moved)
        same = (fr2.face_id == fr.face_id) & (fr.face_id >= 0)
        fd = (interpolate(attrs, fr2, mesh.faces)[0] - values)[same] / h
        torch.testing.assert_close(fd, derivs[..., axis][same], atol=1e-4, rtol=1e-4)


def test_gradcheck() -> None:
    mesh, cams = _scene()
    cams = cams[0]
    ids = rasterize(mesh, cams).face_id
    attrs = torch.rand(mesh.verts.shape[0], 2, dtype=DT, requires_grad=True)
    verts = mesh.verts.clone().requires_grad_()

    def f(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        fr = rasterize(mesh.with_verts(v), cams)
        assert torch.equal(fr.face_id, ids)
        return interpolate(a, fr, mesh.faces)[0]

    assert torch.autograd.gradcheck(f, (attrs, verts), eps=1e-7, atol=1e-5)


def test_inverse_vertex_colors() -> None:
    mesh = cube(dtype=DT)
    cams = look_at(
        torch.tensor([[2.0, 1.5, -3.0], [-2.0, -1.5, 3.0]], dtype=DT), image_size=(24, 24), fov=45.0
    )
    fr = rasterize(mesh, cams)
    truth = torch.rand(8, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    target = interpolate(truth, fr, mesh.faces)[0]
    colors = torch.full((8, 3), 0.5, dtype=DT, requires_grad=True)
    opt = torch.optim.Adam([colors], lr=0.05)
    for _ in range(300):
        loss = ((interpolate(colors, fr, mesh.faces)[0] - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((colors.detach() - truth).abs().max()) < 1e-2


def test_exception() -> None:
    mesh, cams = _scene()
    fr = rasterize(mesh, cams)
    with pytest.raises(ValueError, match="attrs must have shape"):
        interpolate(torch.rand(3, mesh.verts.shape[0], 2, dtype=DT), fr, mesh.faces)
    with pytest.raises(TypeError, match="faces must be an int32 or int64"):
        interpolate(mesh.verts, fr, mesh.faces.double())
    with pytest.raises(ValueError, match="bary_derivatives"):
        interpolate(mesh.verts, fr, mesh.faces, derivatives=True)
    with pytest.raises(ValueError, match="faces has 2 rows"):
        interpolate(mesh.verts, fr, mesh.faces[:2])
