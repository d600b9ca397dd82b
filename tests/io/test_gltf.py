"""glTF/GLB: files written by trimesh, our own writer, and hostile references."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from trimesh.visual.material import PBRMaterial
from trimesh.visual.texture import TextureVisuals

from gradiance.core.meshes import Meshes, SurfaceMaterial
from gradiance.io import MeshFileError, asset_path, load_gltf, load_obj, save_gltf


def _trimesh_scene() -> tuple[trimesh.Scene, np.ndarray, np.ndarray]:
    """A red box (no texture) and a textured, translated icosphere; returns the scene, UVs and texture."""
    rng = np.random.default_rng(0)
    box = trimesh.creation.box()
    box.visual = TextureVisuals(material=PBRMaterial(name="red", baseColorFactor=[204, 51, 0, 255]))
    ball = trimesh.creation.icosphere(subdivisions=1)
    uv = rng.random((len(ball.vertices), 2))
    texture = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    ball.visual = TextureVisuals(
        uv=uv, material=PBRMaterial(name="skin", baseColorTexture=Image.fromarray(texture))
    )
    scene = trimesh.Scene()
    scene.add_geometry(box, geom_name="box", node_name="box")
    scene.add_geometry(
        ball,
        geom_name="ball",
        node_name="ball",
        transform=trimesh.transformations.translation_matrix([0, 2, 0]),
    )
    return scene, uv, texture


def test_smoke_trimesh_glb(tmp_path: Path) -> None:
    scene, uv, texture = _trimesh_scene()
    (tmp_path / "s.glb").write_bytes(scene.export(file_type="glb"))
    with pytest.warns(UserWarning, match="some primitives have no UVs"):
        mesh = load_gltf(tmp_path / "s.glb")
    box, ball = scene.geometry["box"], scene.geometry["ball"]
    nb = len(box.vertices)
    assert mesh.verts.shape == (nb + len(ball.vertices), 3)
    assert mesh.faces.shape == (len(box.faces) + len(ball.faces), 3)
    assert [m.name for m in mesh.materials[0]] == ["red", "skin"]
    assert mesh.face_materials is not None
    assert mesh.face_materials.tolist() == [0] * len(box.faces) + [1] * len(ball.faces)
    # the node transform is applied
    assert np.allclose(mesh.verts[nb:].numpy(), ball.vertices + np.array([0.0, 2.0, 0.0]), atol=1e-6)
    assert np.allclose(mesh.verts[:nb].numpy(), box.vertices, atol=1e-6)
    assert mesh.uvs is not None and mesh.face_uvs is not None and torch.equal(mesh.face_uvs, mesh.faces)
    assert np.allclose(mesh.uvs[nb:].numpy(), uv, atol=1e-6) and (mesh.uvs[:nb] == 0).all()
    red, skin = mesh.materials[0]
    assert red.diffuse.tolist() == pytest.approx([0.8, 0.2, 0.0]) and red.diffuse_map is None
    assert skin.diffuse_map is not None and skin.diffuse_map.shape == (8, 16, 3)
    assert torch.equal(skin.diffuse_map, torch.from_numpy(texture).float() / 255)
    with pytest.warns(UserWarning, match="some primitives have no UVs"):
        plain = load_gltf(tmp_path / "s.glb", load_textures=False, dtype=torch.float64)
    assert plain.materials[0][1].diffuse_map is None and plain.verts.dtype == torch.float64


def test_round_trip_save_gltf(tmp_path: Path) -> None:
    spot = load_obj(asset_path("spot"))
    assert spot.uvs is not None and spot.face_uvs is not None
    texture = torch.randint(0, 256, (16, 8, 3), generator=torch.Generator().manual_seed(0)).float() / 255
    fm = (torch.arange(spot.faces.shape[0]) % 3 == 0).long()
    mats = [
        SurfaceMaterial("tex", diffuse_map=texture),
        SurfaceMaterial("red", diffuse=torch.tensor([1.0, 0, 0])),
    ]
    mesh = Meshes.single(
        spot.verts, spot.faces, uvs=spot.uvs, face_uvs=spot.face_uvs, materials=mats, face_materials=fm
    )
    save_gltf(tmp_path / "spot.glb", mesh)
    back = load_gltf(tmp_path / "spot.glb")
    assert [m.name for m in back.materials[0]] == ["tex", "red"]
    assert back.uvs is not None and back.face_uvs is not None and back.face_materials is not None
    for k in range(2):
        want, got = fm == k, back.face_materials == k
        assert torch.allclose(back.verts[back.faces[got]], spot.verts[spot.faces[want]], atol=1e-6)
        assert torch.allclose(back.uvs[back.face_uvs[got]], spot.uvs[spot.face_uvs[want]], atol=1e-6)
    tex = back.materials[0][0].diffuse_map
    assert tex is not None and torch.equal(tex, texture)
    assert back.materials[0][1].diffuse.tolist() == [1.0, 0.0, 0.0]


def test_vertex_colors(tmp_path: Path) -> None:
    colors = torch.randint(0, 256, (4, 3), generator=torch.Generator().manual_seed(1)).float() / 255
    mesh = Meshes.single(torch.rand(4, 3), torch.tensor([[0, 1, 2], [0, 2, 3]]), vert_colors=colors)
    save_gltf(tmp_path / "c.glb", mesh)
    back = load_gltf(tmp_path / "c.glb")
    assert back.vert_colors is not None
    assert torch.allclose(back.vert_colors[back.faces], colors[mesh.faces], atol=1e-6)


def test_save_exception(tmp_path: Path) -> None:
    mesh = Meshes.single(torch.rand(3, 3), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r"\.glb"):
        save_gltf(tmp_path / "a.gltf", mesh)
    with pytest.raises(ValueError, match="exactly one mesh"):
        save_gltf(tmp_path / "a.glb", Meshes.join([mesh, mesh]))


def _gltf_with(tmp_path: Path, buffer_uri: str, count: int = 3) -> Path:
    """A minimal .gltf (one triangle) whose buffer has the given URI."""
    doc = {
        "asset": {"version": "2.0"},
        "buffers": [{"uri": buffer_uri, "byteLength": 36}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": count, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "nodes": [{"mesh": 0}],
        "scenes": [{"nodes": [0]}],
        "scene": 0,
    }  # fmt: skip
    path = tmp_path / "inner" / "m.gltf"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_external_buffer_inside_folder(tmp_path: Path) -> None:
    data = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32).tobytes()
    path = _gltf_with(tmp_path, "tri.bin")
    (path.parent / "tri.bin").write_bytes(data)
    assert load_gltf(path).faces.shape == (1, 3)
    embedded = _gltf_with(tmp_path, "data:application/octet-stream;base64," + base64.b64encode(data).decode())
    assert load_gltf(embedded).verts.shape == (3, 3)


def test_exception_hostile(tmp_path: Path) -> None:
    (tmp_path / "evil.bin").write_bytes(b"\0" * 36)
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "link.bin").symlink_to(tmp_path / "evil.bin")
    for uri in (
        "../evil.bin",
        str(tmp_path / "evil.bin"),
        "link.bin",
        "http://example.com/x.bin",
        "file:///etc/passwd",
    ):
        path = _gltf_with(tmp_path, uri)
        with pytest.raises(MeshFileError, match="refusing") as info:
            load_gltf(path)
        assert str(info.value).startswith(str(path))
    path = _gltf_with(tmp_path, "missing.bin")
    with pytest.raises(MeshFileError, match="not found"):
        load_gltf(path)
    (path.parent / "tri.bin").write_bytes(b"\0" * 36)
    with pytest.raises(MeshFileError, match="accessors\\[0\\] declares count 1000000000000"):
        load_gltf(_gltf_with(tmp_path, "tri.bin", count=10**12))
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"glTF" + b"\xff" * 40)
    with pytest.raises(MeshFileError, match="malformed GLB"):
        load_gltf(junk)
    junk.write_bytes(b"{not json")
    with pytest.raises(MeshFileError, match="invalid glTF JSON"):
        load_gltf(junk)
