"""OBJ + MTL reading and writing: formats, round trips, warnings and every hostile/malformed case."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradiance.core.meshes import Meshes, SurfaceMaterial
from gradiance.io import MeshFileError, asset_path, load_obj, save_image, save_obj, shared_asset_path


def _count(path: Path, key: str) -> int:
    with open(path) as fh:
        return sum(1 for line in fh if line.split()[:1] == [key])


def _write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.write_text(text)
    return p


def _texture(h: int, w: int, c: int = 3, seed: int = 0) -> torch.Tensor:
    """A random texture quantised to 8 bits, so that a PNG round trip is exact."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w, c), generator=g).float() / 255.0


def _three_material_mesh() -> Meshes:
    """A small mesh with UVs indexed separately from vertices, normals, and three materials."""
    verts = torch.tensor(
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]], dtype=torch.float32
    ) + torch.tensor([0.125, -0.3, 0.7])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 1, 5], [0, 5, 4], [3, 2, 1]])
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.5, 0.25], [0.2, 0.9], [0.3, 0.3]])
    face_uvs = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 5], [3, 2, 1]])
    normals = torch.nn.functional.normalize(
        torch.randn(6, 3, generator=torch.Generator().manual_seed(1)), dim=1
    )
    mats = [
        SurfaceMaterial(
            "red", torch.tensor([0.8, 0.1, 0.1]), torch.tensor([0.5, 0.5, 0.5]), torch.tensor(20.0)
        ),
        SurfaceMaterial(
            "wood", torch.tensor([1.0, 1.0, 1.0]), torch.zeros(3), torch.tensor(3.5), _texture(5, 7)
        ),
        SurfaceMaterial(
            "blue", torch.tensor([0.0, 0.2, 0.9]), torch.tensor([0.1, 0.2, 0.3]), torch.tensor(1.0)
        ),
    ]
    return Meshes.single(
        verts,
        faces,
        vert_normals=normals,
        uvs=uvs,
        face_uvs=face_uvs,
        materials=mats,
        face_materials=torch.tensor([1, 1, 0, 2, 1]),
    )


# ----------------------------------------------------------------------------------------------- assets
def test_smoke_spot() -> None:
    path = asset_path("spot")
    mesh = load_obj(path)
    assert len(mesh) == 1
    assert mesh.verts.shape == (_count(path, "v"), 3) == (2930, 3)
    assert mesh.faces.shape == (5856, 3)
    assert mesh.uvs is not None and mesh.face_uvs is not None
    assert mesh.uvs.shape == (_count(path, "vt"), 2)
    # Spot's UVs lie in [0, 1] up to 4 seam vertices that overshoot by at most 0.06 in the source file.
    inside = ((mesh.uvs >= 0) & (mesh.uvs <= 1)).all(dim=1)
    assert int((~inside).sum()) <= 4 and mesh.uvs.min() > -0.06 and mesh.uvs.max() < 1.01
    assert mesh.materials == ((),) and mesh.face_materials is None
    assert mesh.verts.dtype == torch.float32 and mesh.faces.dtype == torch.int64


def test_smoke_teapot() -> None:
    path = asset_path("teapot")
    mesh = load_obj(path)
    assert mesh.verts.shape == (_count(path, "v"), 3)
    assert mesh.faces.shape == (_count(path, "f"), 3) == (6320, 3)
    assert mesh.uvs is None and mesh.vert_normals is None


def test_smoke_bunny() -> None:
    path = shared_asset_path("bunny")
    if path is None:
        pytest.skip("bunny.obj not found (set GRADIANCE_ASSETS or provide ../shared/assets)")
    mesh = load_obj(path)
    assert mesh.verts.shape == (_count(path, "v"), 3)
    assert mesh.faces.shape == (_count(path, "f"), 3) == (69451, 3)


def test_shape_dtype_device() -> None:
    mesh = load_obj(asset_path("spot"), dtype=torch.float64, device="cpu")
    assert mesh.verts.dtype == torch.float64 and mesh.uvs is not None and mesh.uvs.dtype == torch.float64
    assert mesh.device == torch.device("cpu")


# ----------------------------------------------------------------------------------------------- round trip
def test_round_trip_materials_texture(tmp_path: Path) -> None:
    mesh = _three_material_mesh()
    save_obj(tmp_path / "scene.obj", mesh)
    assert {p.name for p in tmp_path.iterdir()} == {"scene.obj", "scene.mtl", "scene_mat1.png"}
    back = load_obj(tmp_path / "scene.obj")
    assert torch.equal(back.verts, mesh.verts)
    assert torch.equal(back.faces, mesh.faces)
    assert back.uvs is not None and back.face_uvs is not None and mesh.uvs is not None
    assert torch.equal(back.uvs[back.face_uvs], mesh.uvs[mesh.face_uvs])
    assert back.vert_normals is not None and mesh.vert_normals is not None
    assert torch.equal(back.vert_normals, mesh.vert_normals)
    assert back.face_materials is not None and mesh.face_materials is not None
    assert torch.equal(back.face_materials, mesh.face_materials)
    assert [m.name for m in back.materials[0]] == ["red", "wood", "blue"]
    for got, want in zip(back.materials[0], mesh.materials[0], strict=True):
        assert torch.equal(got.diffuse, want.diffuse)
        assert torch.equal(got.specular, want.specular)
        assert torch.equal(got.shininess, want.shininess)
        assert (got.diffuse_map is None) == (want.diffuse_map is None)
    got_map, want_map = back.materials[0][1].diffuse_map, mesh.materials[0][1].diffuse_map
    assert got_map is not None and want_map is not None
    assert got_map.shape == want_map.shape and (got_map - want_map).abs().max() <= 0.5 / 255


def test_round_trip_vertex_colors_float64(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(3)
    verts = torch.randn(5, 3, generator=g, dtype=torch.float64)
    colors = torch.rand(5, 3, generator=g, dtype=torch.float64)
    mesh = Meshes.single(verts, torch.tensor([[0, 1, 2], [2, 3, 4]]), vert_colors=colors)
    save_obj(tmp_path / "c.obj", mesh)
    assert not (tmp_path / "c.mtl").exists()
    back = load_obj(tmp_path / "c.obj", dtype=torch.float64)
    assert torch.equal(back.verts, verts) and back.vert_colors is not None
    assert torch.equal(back.vert_colors, colors)


def test_round_trip_without_textures(tmp_path: Path) -> None:
    save_obj(tmp_path / "s.obj", _three_material_mesh(), save_textures=False)
    assert not list(tmp_path.glob("*.png"))
    back = load_obj(tmp_path / "s.obj")
    assert all(m.diffuse_map is None for m in back.materials[0])


def test_save_exception(tmp_path: Path) -> None:
    mesh = _three_material_mesh()
    with pytest.raises(ValueError, match="exactly one mesh"):
        save_obj(tmp_path / "a.obj", Meshes.join([mesh, mesh]))
    dup = Meshes.single(
        mesh.verts,
        mesh.faces,
        materials=[SurfaceMaterial("x"), SurfaceMaterial("x")],
        face_materials=torch.zeros(5, dtype=torch.int64),
    )
    with pytest.raises(ValueError, match="unique"):
        save_obj(tmp_path / "b.obj", dup)
    bad = Meshes.single(
        mesh.verts,
        mesh.faces,
        materials=[SurfaceMaterial("t", diffuse_map=torch.full((2, 2, 3), 1.5))],
        face_materials=torch.zeros(5, dtype=torch.int64),
    )
    with pytest.raises(ValueError, match=r"diffuse_map has values outside \[0, 1\]"):
        save_obj(tmp_path / "c.obj", bad)
    assert not (tmp_path / "c.obj").exists()


# ----------------------------------------------------------------------------------------------- syntax
def test_corner_formats(tmp_path: Path) -> None:
    head = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvn 0 0 1\n"
    for corners, has_uv, has_n in (
        ("1 2 3", False, False),
        ("1/1 2/2 3/3", True, False),
        ("1//1 2//1 3//1", False, True),
        ("1/1/1 2/2/1 3/3/1", True, True),
    ):
        mesh = load_obj(_write(tmp_path, "a.obj", head + f"f {corners}\n"))
        assert mesh.faces.tolist() == [[0, 1, 2]]
        assert (mesh.uvs is not None) == has_uv and (mesh.vert_normals is not None) == has_n
        if has_uv:
            assert mesh.face_uvs is not None and mesh.face_uvs.tolist() == [[0, 1, 2]]


def test_negative_indices(tmp_path: Path) -> None:
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf -3/-3 -2/-2 -1/-1\n"
    text += "v 5 5 5\nvt 0.5 0.5\nf -4/1 -2/-1 -1/-2\n"
    mesh = load_obj(_write(tmp_path, "neg.obj", text))
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert mesh.face_uvs is not None and mesh.face_uvs.tolist() == [[0, 1, 2], [0, 3, 2]]


def test_mixed_layouts_and_comments(tmp_path: Path) -> None:
    text = "# header\nv 0 0 0\nv 1 0 0 # inline\nv 0 1 0\nv 1 1 0 1.0\nvn 0 0 1\no obj\ng grp\ns 1\n"
    text += "f 1//1 2//1 3//1\nf 2 4 3\n"
    with pytest.warns(UserWarning, match="only some face corners have normals"):
        mesh = load_obj(_write(tmp_path, "m.obj", text))
    assert mesh.faces.tolist() == [[0, 1, 2], [1, 3, 2]] and mesh.vert_normals is None


def test_quads_fan_triangulated(tmp_path: Path) -> None:
    text = "".join(f"v {i} {i * i} 0\n" for i in range(6)) + "f 1 2 3 4\nf 1 2 3 4 5 6\nf 3 2 1\n"
    mesh = load_obj(_write(tmp_path, "q.obj", text))
    assert mesh.faces.tolist() == [
        [0, 1, 2],
        [0, 2, 3],
        [0, 1, 2],
        [0, 2, 3],
        [0, 3, 4],
        [0, 4, 5],
        [2, 1, 0],
    ]


def test_vert_normals_consistent(tmp_path: Path) -> None:
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvn 0 0 1\nvn 0 0 1\nvn 1 0 0\n"
    text += "f 1//1 2//2 3//1\nf 2//1 4//3 3//2\n"  # equal values under different indices are consistent
    mesh = load_obj(_write(tmp_path, "n.obj", text))
    assert mesh.vert_normals is not None
    assert mesh.vert_normals.tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 1], [1, 0, 0]]


def test_vert_normals_inconsistent_warns(tmp_path: Path) -> None:
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvn 0 0 1\nvn 1 0 0\nf 1//1 2//1 3//1\nf 2//2 4//2 3//2\n"
    with pytest.warns(UserWarning, match="different normals"):
        mesh = load_obj(_write(tmp_path, "n.obj", text))
    assert mesh.vert_normals is None


def test_some_faces_without_uvs_warn(tmp_path: Path) -> None:
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0.5 0.5\nf 1/1 2/1 3/1\nf 3 2 1\n"
    with pytest.warns(UserWarning, match="no texture coordinates"):
        mesh = load_obj(_write(tmp_path, "u.obj", text))
    assert mesh.uvs is not None and mesh.face_uvs is not None
    assert mesh.uvs[mesh.face_uvs].tolist() == [[[0.5, 0.5]] * 3, [[0.0, 0.0]] * 3]


def test_default_and_unknown_materials(tmp_path: Path) -> None:
    _write(tmp_path, "m.mtl", "newmtl a\nKd 0.1 0.2 0.3\nKs 0.5\nNs 7\n")
    _write(tmp_path, "n.mtl", "newmtl b\nKd 1 0 0\nnewmtl a\nKd 0 0 0\n")  # the first 'a' wins
    text = "mtllib m.mtl n.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nusemtl b\nf 1 2 3\nusemtl nope\nf 1 2 3\n"
    with pytest.warns(UserWarning, match="'nope' names no material"):
        mesh = load_obj(_write(tmp_path, "m.obj", text))
    names = [m.name for m in mesh.materials[0]]
    assert names == ["a", "b", "default"]
    assert mesh.face_materials is not None and mesh.face_materials.tolist() == [2, 1, 2]
    a = mesh.materials[0][0]
    assert a.diffuse.tolist() == pytest.approx([0.1, 0.2, 0.3]) and a.specular.tolist() == [0.5] * 3
    assert float(a.shininess) == 7.0


def test_texture_options_and_load_textures(tmp_path: Path) -> None:
    save_image(tmp_path / "t.png", _texture(4, 6))
    text = "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nusemtl a\nf 1/1 2/1 3/1\n"
    obj = _write(tmp_path, "m.obj", text)
    _write(tmp_path, "m.mtl", "newmtl a\nmap_Kd -s 1 1 1 -o 0 0 t.png\n")
    tex = load_obj(obj).materials[0][0].diffuse_map
    assert tex is not None and tex.shape == (4, 6, 3)
    assert torch.equal(tex, _texture(4, 6))
    _write(tmp_path, "m.mtl", "newmtl a\nmap_Kd -bm 0.5 -clamp on t.png\n")
    with pytest.warns(UserWarning, match="ignoring map_Kd options"):
        load_obj(obj)
    assert load_obj(obj, load_textures=False).materials[0][0].diffuse_map is None
    _write(tmp_path, "m.mtl", "newmtl a\nmap_Kd -s 2 2 1 t.png\n")
    with pytest.raises(MeshFileError, match=r"m\.mtl, line 2: map_Kd option -s 2 2 1 changes texture"):
        load_obj(obj)


# ----------------------------------------------------------------------------------------------- errors
_TRI = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("v 0 0 0\nv 1 x 0\nv 0 1 0\nf 1 2 3\n", 2, "non-numeric value 'x'"),
        ("v 0 0\n", 1, "'v' needs 3 or 4 or 6 numbers"),
        ("v 0 0 nan\n", 1, "non-finite"),
        (_TRI + "f 1 2 4\n", 4, "v index 4 is out of range"),
        (_TRI + "f 1 2 -4\n", 4, "v index -4 is out of range"),
        (_TRI + "f 0 1 2\n", 4, "index 0"),
        (_TRI + "f 1 2\n", 4, "at least 3 corners"),
        (_TRI + "f 1 2 3.5\n", 4, "bad index '3.5'"),
        (_TRI + "f 1/1/1/1 2 3\n", 4, "malformed face corner"),
        (_TRI + "f 1/1 2/1 3/1\n", 4, "vt index 1 is out of range"),
        (_TRI + "vt 0 0\nf 1/1 2 3\n", 5, "mixes corners with and without texture coordinates"),
        (_TRI + "f 1 2 3 99999999999999999999999\n", 4, "out of range"),
        (_TRI + "f 1/9999999999999999999999/1 2 3\n", 4, "bad index"),
        (_TRI + "mtllib missing.mtl\nf 1 2 3\n", 4, "material library 'missing.mtl' not found"),
    ],
)
def test_exception_malformed(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path, "bad.obj", text)
    with pytest.raises(MeshFileError, match=message) as info:
        load_obj(path)
    assert str(info.value).startswith(f"{path}, line {line}: ")


def test_exception_mtl(tmp_path: Path) -> None:
    obj = _write(tmp_path, "m.obj", _TRI + "mtllib m.mtl\nusemtl a\nf 1 2 3\n")
    for mtl, line, message in (
        ("newmtl a\nKd 1 oops 0\n", 2, "Kd needs 1 or 3 numbers"),
        ("Kd 1 1 1\n", 1, "Kd before any newmtl"),
        ("newmtl a\nmap_Kd missing.png\n", 2, "texture 'missing.png' not found"),
        ("newmtl a\nmap_Kd -zz 1 t.png\n", 2, "unknown map_Kd option"),
    ):
        _write(tmp_path, "m.mtl", mtl)
        with pytest.raises(MeshFileError, match=message) as info:
            load_obj(obj)
        assert str(info.value).startswith(f"{tmp_path / 'm.mtl'}, line {line}: ")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    _write(tmp_path, "m.mtl", "newmtl a\nmap_Kd bad.png\n")
    with pytest.raises(MeshFileError, match=r"cannot load texture 'bad\.png'"):
        load_obj(obj)


def test_exception_path_escape(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    _write(tmp_path, "evil.mtl", "newmtl a\n")
    save_image(tmp_path / "evil.png", _texture(2, 2))
    (inner / "link.mtl").symlink_to(tmp_path / "evil.mtl")
    (inner / "link.png").symlink_to(tmp_path / "evil.png")
    obj = inner / "m.obj"
    for ref in ("../evil.mtl", str(tmp_path / "evil.mtl"), "link.mtl", "sub/../../evil.mtl"):
        obj.write_text(_TRI + f"mtllib {ref}\nf 1 2 3\n")
        with pytest.raises(MeshFileError, match="refusing") as info:
            load_obj(obj)
        assert str(info.value).startswith(f"{obj}, line 4: ")
    obj.write_text(_TRI + "mtllib m.mtl\nusemtl a\nf 1 2 3\n")
    for ref in ("../evil.png", str(tmp_path / "evil.png"), "link.png", "..\\evil.png"):
        _write(inner, "m.mtl", f"newmtl a\nmap_Kd {ref}\n")
        with pytest.raises(MeshFileError, match="refusing") as info:
            load_obj(obj)
        assert str(info.value).startswith(f"{inner / 'm.mtl'}, line 2: ")
    # a symbolic link that stays inside the folder is fine
    save_image(inner / "real.png", _texture(2, 2))
    (inner / "alias.png").symlink_to(inner / "real.png")
    _write(inner, "m.mtl", "newmtl a\nmap_Kd alias.png\n")
    assert load_obj(obj).materials[0][0].diffuse_map is not None


def test_exception_max_elements(tmp_path: Path) -> None:
    path = _write(tmp_path, "big.obj", "v 0 0 0\n" * 20 + "f 1 2 3 4 5 6 7 8 9 10\n")
    with pytest.raises(MeshFileError, match=r"more than max_elements=10 'v' statements") as info:
        load_obj(path, max_elements=10)
    assert str(info.value).startswith(str(path))
    with pytest.raises(MeshFileError, match="face corners"):
        load_obj(_write(tmp_path, "c.obj", "f 1 2 3 4 5 6\n"), max_elements=5)
    assert load_obj(path, max_elements=20).faces.shape == (8, 3)


def test_exception_long_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gradiance.io.obj.MAX_LINE_BYTES", 64)
    path = _write(tmp_path, "long.obj", _TRI + "f " + " ".join(["1 2 3"] * 40) + "\n")
    with pytest.raises(MeshFileError, match="longer than 64 bytes") as info:
        load_obj(path)
    assert str(info.value).startswith(str(path))


def test_exception_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_obj(tmp_path / "nope.obj")


def test_unicode_and_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "w.obj"
    path.write_bytes(b"# caf\xe9\r\nv 0 0 0\r\nv 1 0 0\r\nv 0 1 0\r\nf 1 2 3\r\n")
    mesh = load_obj(path)
    assert mesh.faces.tolist() == [[0, 1, 2]] and mesh.verts.shape == (3, 3)
