"""render: composition of the mesh pipeline, against per-pixel loops, gradients and inverse problems."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gradiance.core.cameras import Cameras, look_at
from gradiance.core.lights import AmbientLight, DirectionalLights, Lights
from gradiance.core.meshes import Meshes, SurfaceMaterial
from gradiance.core.primitives import cube, icosphere, plane
from gradiance.mesh.rasterize import RasterSettings
from gradiance.mesh.render import (
    RenderSettings,
    available_methods,
    register_method,
    render,
    render_hard,
    render_silhouette,
    shade_fragments,
)

DT = torch.float64


def _cams(size: int = 12) -> Cameras:
    # no camera lies in the plane of a cube face: edge-on faces switch silhouettes discontinuously
    eyes = torch.tensor([[2.0, 1.5, -3.0], [-2.5, 1.3, 2.0]], dtype=DT)
    return look_at(eyes, image_size=(size, size), fov=45.0)


def _lights(B: int = 1) -> Lights:
    return Lights(
        ambient=AmbientLight(torch.tensor([0.2, 0.2, 0.2], dtype=DT)),
        directional=DirectionalLights(
            torch.tensor([[0.3, 1.0, -0.6]], dtype=DT), torch.tensor([[0.9, 0.8, 0.7]], dtype=DT)
        ),
    )


def _colored_cube() -> Meshes:
    c = cube(dtype=DT)
    colors = torch.rand(8, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    return Meshes.single(c.verts, c.faces, vert_colors=colors)


def test_smoke() -> None:
    out = render(cube(), look_at(torch.tensor([0.0, 0.0, -4.0]), image_size=(8, 8)))
    assert out.image.shape == (1, 8, 8, 3)


def test_shape() -> None:
    cams = _cams()
    for method in ("hard", "antialias"):
        out = render(_colored_cube(), cams, _lights(), method=method)
        assert out.image.shape == (2, 12, 12, 3) and out.alpha.shape == (2, 12, 12, 1)
        assert out.depth.shape == (2, 12, 12, 1) and out.normals.shape == (2, 12, 12, 3)
        assert out.face_id.shape == (2, 12, 12, 1)
    assert {"hard", "antialias"} <= set(available_methods())


def test_unlit_vertex_colors_match_per_pixel_loop() -> None:
    mesh, cams = _colored_cube(), _cams()
    out = render(mesh, cams, settings=RenderSettings(background=(0.1, 0.2, 0.3)))
    fr = out.fragments
    for b in range(2):
        for i in range(12):
            for j in range(12):
                f = int(fr.face_id[b, i, j, 0])
                if f < 0:
                    want = torch.tensor([0.1, 0.2, 0.3], dtype=DT)
                else:
                    want = sum(fr.bary[b, i, j, 0, c] * mesh.vert_colors[mesh.faces[f, c]] for c in range(3))  # type: ignore[index]
                torch.testing.assert_close(out.image[b, i, j], want)


def test_flat_lambert_matches_hand_computation() -> None:
    mesh, cams = cube(dtype=DT), _cams()
    lights = _lights()
    out = render(mesh, cams, lights, settings=RenderSettings(shading="flat"))
    l_dir = lights.directional.directions[0, 0] / lights.directional.directions[0, 0].norm()  # type: ignore[union-attr]
    for b in range(2):
        for i in range(12):
            for j in range(12):
                f = int(out.face_id[b, i, j, 0])
                if f < 0:
                    continue
                n = mesh.face_normals()[f]
                want = 0.2 + torch.tensor([0.9, 0.8, 0.7], dtype=DT) * max(float(n @ l_dir), 0.0)
                torch.testing.assert_close(out.image[b, i, j], want)
                torch.testing.assert_close(out.normals[b, i, j], n)


def test_texture_matches_per_pixel_nearest_lookup() -> None:
    p = plane(2.0, 2, dtype=DT)
    tex = torch.rand(5, 7, 3, dtype=DT, generator=torch.Generator().manual_seed(1))
    mesh = Meshes.single(
        p.verts,
        p.faces,
        uvs=p.uvs,
        face_uvs=p.face_uvs,
        materials=[SurfaceMaterial("t", diffuse_map=tex)],
        face_materials=torch.zeros(8, dtype=torch.int64),
    )
    cams = look_at(
        torch.tensor([[0.3, 2.5, 0.2]], dtype=DT),
        up=torch.tensor([0.0, 0.0, -1.0], dtype=DT),
        image_size=(10, 10),
        fov=50.0,
    )
    out = render(mesh, cams, settings=RenderSettings(texture_filter="nearest"))
    fr = out.fragments
    assert int((fr.face_id >= 0).sum()) > 50
    for i in range(10):
        for j in range(10):
            f = int(fr.face_id[0, i, j, 0])
            if f < 0:
                continue
            uv = sum(fr.bary[0, i, j, 0, c] * mesh.uvs[mesh.face_uvs[f, c]] for c in range(3))  # type: ignore[index]
            row, col = min(int((1 - float(uv[1])) * 5), 4), min(int(float(uv[0]) * 7), 6)
            torch.testing.assert_close(out.image[0, i, j], tex[row, col])


def test_materials_pick_constant_colors_per_face() -> None:
    c = cube(dtype=DT)
    mats = [
        SurfaceMaterial("red", diffuse=torch.tensor([1.0, 0, 0], dtype=DT)),
        SurfaceMaterial("blue", diffuse=torch.tensor([0, 0, 1.0], dtype=DT)),
    ]
    fm = torch.arange(12) % 2
    mesh = Meshes.single(c.verts, c.faces, materials=mats, face_materials=fm)
    out = render(mesh, _cams())
    covered = out.face_id[..., 0] >= 0
    want = torch.where(
        (fm[out.face_id[..., 0].clamp_min(0)] == 0)[..., None], mats[0].diffuse, mats[1].diffuse
    )
    torch.testing.assert_close(out.image[covered], want[covered])


@pytest.mark.parametrize("model", ["lambert", "phong"])
def test_shared_and_per_camera_lights_render_alike(model: str) -> None:
    """Lights shared by the cameras shade all pixels as one batch; per-camera lights shade them one by
    one; a light repeated per camera and the corrupted packed layer (``replace``-d ``bary``) agree."""
    mesh, cams = _colored_cube(), _cams()
    shared = _lights()
    assert shared.directional is not None and shared.ambient is not None
    per_camera = Lights(
        ambient=AmbientLight(shared.ambient.color.expand(2, 3).clone()),
        directional=DirectionalLights(
            shared.directional.directions.expand(2, 1, 3).clone(),
            shared.directional.colors.expand(2, 1, 3).clone(),
        ),
    )
    settings = RenderSettings(model=model)
    a = render(mesh, cams, shared, settings=settings)
    b = render(mesh, cams, per_camera, settings=settings)
    torch.testing.assert_close(a.image, b.image)
    fr = replace(a.fragments, bary=a.fragments.bary.clone())  # the images path, not the packed layer
    c = shade_fragments(fr, mesh, cams, shared, None, settings)
    torch.testing.assert_close(a.image, c.image)


def test_gouraud_equals_smooth_on_a_plane() -> None:
    p = plane(2.0, 3, dtype=DT)
    mesh = Meshes.single(p.verts, p.faces, vert_colors=torch.rand(16, 3, dtype=DT))
    cams = look_at(torch.tensor([[0.5, 2.0, 1.0]], dtype=DT), image_size=(10, 10))
    a = render(mesh, cams, _lights(), settings=RenderSettings(shading="gouraud"))
    b = render(mesh, cams, _lights(), settings=RenderSettings(shading="smooth"))
    torch.testing.assert_close(a.image, b.image)


def test_two_sided_lighting() -> None:
    mesh = plane(2.0, 1, dtype=DT)
    below = look_at(torch.tensor([[0.2, -2.0, 0.1]], dtype=DT), image_size=(8, 8))
    light = Lights(
        directional=DirectionalLights(torch.tensor([[0.0, -1.0, 0.0]], dtype=DT), torch.ones(1, 3, dtype=DT))
    )
    lit = render(mesh, below, light, settings=RenderSettings(two_sided=True))
    dark = render(mesh, below, light, settings=RenderSettings(two_sided=False))
    covered = lit.face_id[..., 0] >= 0
    assert float(lit.image[covered].min()) > 0.99 and float(dark.image[covered].max()) == 0.0


def test_empty_mesh_renders_background() -> None:
    empty = Meshes.single(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64))
    out = render(
        empty,
        look_at(torch.tensor([0.0, 0.0, -3.0]), image_size=(4, 4)),
        settings=RenderSettings(background=(1, 0, 0)),
    )
    assert bool((out.image == torch.tensor([1.0, 0, 0])).all()) and float(out.alpha.sum()) == 0


def test_vertices_behind_the_camera_give_finite_gradients() -> None:
    # a ground plane that extends behind the camera, seen from just above it: clipped, not dropped or wrapped
    p = plane(40.0, 4, dtype=DT)
    verts = p.verts.clone().requires_grad_()
    cams = look_at(
        torch.tensor([[0.0, 0.5, 0.0]], dtype=DT),
        at=torch.tensor([0.0, 0.3, 3.0], dtype=DT),
        image_size=(16, 16),
    )
    for method in ("hard", "antialias"):
        out = render(Meshes.single(verts, p.faces), cams, _lights(), method=method)
        covered = out.alpha[0, :, :, 0] > 0
        assert bool(covered[-1].all()) and not bool(covered[0].any())  # ground below the horizon only
        (out.image.sum() + out.depth.sum()).backward()
        assert verts.grad is not None and bool(torch.isfinite(verts.grad).all())
        verts.grad = None


def test_gradcheck() -> None:
    mesh, cams = _colored_cube(), _cams(6)
    ids = render(mesh, cams).face_id
    colors = mesh.vert_colors.clone().requires_grad_()  # type: ignore[union-attr]
    verts = mesh.verts.clone().requires_grad_()
    direction = torch.tensor([[0.3, 1.0, -0.6]], dtype=DT, requires_grad=True)

    def f(c: torch.Tensor, v: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        m = Meshes.single(v, mesh.faces, vert_colors=c)
        lights = Lights(
            ambient=AmbientLight(torch.full((3,), 0.1, dtype=DT)),
            directional=DirectionalLights(d, torch.ones(1, 3, dtype=DT)),
        )
        out = render(m, cams, lights, settings=RenderSettings(model="blinn_phong"))
        assert torch.equal(out.face_id, ids)
        return out.image

    assert torch.autograd.gradcheck(f, (colors, verts, direction), eps=1e-7, atol=1e-5)


def test_antialias_render_matches_finite_differences() -> None:
    mesh, cams = _colored_cube(), _cams(16)
    ids = render(mesh, cams).face_id
    w = torch.rand(2, 16, 16, 3, dtype=DT, generator=torch.Generator().manual_seed(2))

    def loss(shift: torch.Tensor) -> torch.Tensor:
        out = render(mesh.with_verts(mesh.verts + shift), cams, _lights(), method="antialias")
        return (out.image * w).sum()

    shift = torch.zeros(3, dtype=DT, requires_grad=True)
    loss(shift).backward()
    assert shift.grad is not None
    for axis in range(3):
        h = torch.zeros(3, dtype=DT)
        h[axis] = 1e-6
        assert torch.equal(render(mesh.with_verts(mesh.verts + h), cams).face_id, ids)
        fd = (loss(h) - loss(-h)) / 2e-6
        assert abs(float(fd) - float(shift.grad[axis])) < 1e-4 * max(1.0, abs(float(fd)))


def test_inverse_vertex_colors_from_lit_images() -> None:
    mesh, cams = _colored_cube(), _cams(24)
    target = render(mesh, cams, _lights()).image
    colors = torch.full((8, 3), 0.5, dtype=DT, requires_grad=True)
    opt = torch.optim.Adam([colors], lr=0.05)
    for _ in range(200):
        out = render(Meshes.single(mesh.verts, mesh.faces, vert_colors=colors), cams, _lights())
        loss = ((out.image - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    visible = torch.unique(mesh.faces[out.face_id[out.face_id >= 0]])
    err = (colors.detach() - mesh.vert_colors)[visible].abs().max()  # type: ignore[index]
    assert float(err) < 0.02


def test_inverse_texture_from_images() -> None:
    p = plane(2.0, 1, dtype=DT)
    truth = torch.rand(4, 4, 3, dtype=DT, generator=torch.Generator().manual_seed(3))
    cams = look_at(
        torch.tensor([[0.0, 2.5, 0.01]], dtype=DT),
        up=torch.tensor([0.0, 0.0, -1.0], dtype=DT),
        image_size=(32, 32),
        fov=50.0,
    )

    def textured(t: torch.Tensor) -> Meshes:
        return Meshes.single(
            p.verts,
            p.faces,
            uvs=p.uvs,
            face_uvs=p.face_uvs,
            materials=[SurfaceMaterial("t", diffuse_map=t)],
            face_materials=torch.zeros(2, dtype=torch.int64),
        )

    settings = RenderSettings(texture_wrap="clamp")
    target = render(textured(truth), cams, settings=settings).image
    tex = torch.full((4, 4, 3), 0.5, dtype=DT, requires_grad=True)
    opt = torch.optim.Adam([tex], lr=0.05)
    for _ in range(200):
        loss = ((render(textured(tex), cams, settings=settings).image - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((tex.detach() - truth).abs().max()) < 0.02


def test_register_method() -> None:
    register_method("test-hard-copy", render_hard)
    out = render(cube(), look_at(torch.tensor([0.0, 0.0, -4.0]), image_size=(6, 6)), method="test-hard-copy")
    assert out.image.shape == (1, 6, 6, 3)


def test_exception() -> None:
    cams = look_at(torch.tensor([0.0, 0.0, -4.0]), image_size=(6, 6))
    with pytest.raises(ValueError, match="method"):
        render(cube(), cams, method="raytrace")
    with pytest.raises(ValueError, match="shading"):
        RenderSettings(shading="phong")
    with pytest.raises(ValueError, match="model"):
        RenderSettings(model="cook-torrance")
    with pytest.raises(ValueError, match="texture_filter"):
        RenderSettings(texture_filter="anisotropic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="background"):
        RenderSettings(background=(1.0, 0.0))  # type: ignore[arg-type]
    no_uv = Meshes.single(
        cube().verts,
        cube().faces,
        materials=[SurfaceMaterial("t", diffuse_map=torch.rand(2, 2, 3))],
        face_materials=torch.zeros(12, dtype=torch.int64),
    )
    with pytest.raises(ValueError, match="uvs"):
        render(no_uv, cams)
    nan_mesh = cube().with_verts(cube().verts.clone().index_fill_(0, torch.tensor([0]), float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        render(nan_mesh, cams)
    with pytest.raises(ValueError, match="1 mesh or one per camera"):
        render(
            Meshes.join([icosphere(0), icosphere(0)]), cams, settings=RenderSettings(raster=RasterSettings())
        )


def test_inverse_spot_pose_from_silhouette() -> None:
    """A small rotation and translation of Spot recovered from one target silhouette through antialias
    gradients (the hard render alone gives the pose no gradient)."""
    from gradiance.core.mesh_ops import normalize_to_unit_sphere
    from gradiance.core.transforms import axis_angle_to_matrix
    from gradiance.io import load_asset

    spot = normalize_to_unit_sphere(load_asset("spot")).geometry()
    cams = look_at(torch.tensor([[0.3, 0.4, 2.6], [2.6, 0.3, -0.4]]), image_size=(48, 48), fov=45.0)

    def silhouette(rotvec: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        posed = spot.with_verts(spot.verts @ axis_angle_to_matrix(rotvec).T + shift)
        return render(posed, cams, method="antialias").alpha

    true_r, true_t = torch.tensor([0.1, -0.15, 0.05]), torch.tensor([0.08, -0.05, 0.06])
    target = silhouette(true_r, true_t).detach()
    rotvec = torch.zeros(3, requires_grad=True)
    shift = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([rotvec, shift], lr=0.01)
    for _ in range(120):
        loss = ((silhouette(rotvec, shift) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((shift.detach() - true_t).norm()) < 0.02
    assert float((rotvec.detach() - true_r).norm()) < 0.04


@pytest.mark.parametrize("method", ["softras", "dibr", "hard"])
def test_render_silhouette_is_the_renders_alpha(method: str) -> None:
    mesh = icosphere(1, 0.8, dtype=DT)
    verts = mesh.verts.clone().requires_grad_()
    cams = _cams(16)
    settings = RenderSettings()
    full = render(mesh.with_verts(verts), cams, _lights(), method=method, settings=settings).alpha
    alone = render_silhouette(mesh.with_verts(verts), cams, method, settings)
    torch.testing.assert_close(alone, full)
    if method != "hard":
        w = torch.rand_like(full)
        (g_full,) = torch.autograd.grad((full * w).sum(), verts)
        (g_alone,) = torch.autograd.grad((alone * w).sum(), verts)
        torch.testing.assert_close(g_alone, g_full)
    with pytest.raises(ValueError, match="method"):
        render_silhouette(mesh, cams, "raytrace")
