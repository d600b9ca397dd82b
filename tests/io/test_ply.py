"""PLY meshes and point clouds: round trips (binary and ASCII), interop with trimesh, hostile headers."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from gradiance.core.meshes import Meshes
from gradiance.core.pointclouds import PointClouds
from gradiance.io import (
    MeshFileError,
    asset_path,
    load_obj,
    load_ply,
    load_ply_mesh,
    load_ply_points,
    save_ply,
)


def _colors(n: int, c: int, seed: int = 0) -> torch.Tensor:
    """Colours on the 8-bit grid, so that a uchar round trip is exact."""
    return torch.randint(0, 256, (n, c), generator=torch.Generator().manual_seed(seed)).float() / 255


def _header(*lines: str, fmt: str = "ascii") -> bytes:
    return ("\n".join(["ply", f"format {fmt} 1.0", *lines, "end_header"]) + "\n").encode()


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip_mesh(tmp_path: Path, binary: bool) -> None:
    teapot = load_obj(asset_path("teapot"))
    colors, normals = _colors(teapot.verts.shape[0], 3), teapot.compute_vert_normals()
    mesh = Meshes.single(teapot.verts, teapot.faces, vert_colors=colors, vert_normals=normals)
    save_ply(tmp_path / "t.ply", mesh, binary=binary)
    back = load_ply(tmp_path / "t.ply")
    assert isinstance(back, Meshes)
    assert torch.equal(back.verts, mesh.verts) and torch.equal(back.faces, mesh.faces)
    assert back.vert_colors is not None and torch.allclose(back.vert_colors, colors, atol=1e-6)
    assert back.vert_normals is not None and torch.equal(back.vert_normals, normals)
    # trimesh reads what we write
    tm = trimesh.load(tmp_path / "t.ply", process=False)
    assert isinstance(tm, trimesh.Trimesh)
    assert np.array_equal(tm.faces, mesh.faces.numpy()) and np.allclose(tm.vertices, mesh.verts.numpy())


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip_points(tmp_path: Path, binary: bool) -> None:
    g = torch.Generator().manual_seed(2)
    n = 50
    colors = _colors(n, 4).double()
    normals = torch.randn(n, 3, generator=g, dtype=torch.float64)
    radii = torch.rand(n, generator=g, dtype=torch.float64) + 0.01
    cloud = PointClouds.from_list(
        [torch.randn(n, 3, generator=g, dtype=torch.float64)],
        colors=[colors],
        normals=[normals],
        radii=[radii],
        features={
            "opacity": [torch.rand(n, 1, generator=g, dtype=torch.float64)],
            "sh": [torch.rand(n, 3, dtype=torch.float64)],
        },
    )
    save_ply(tmp_path / "p.ply", cloud, binary=binary)
    back = load_ply(tmp_path / "p.ply", dtype=torch.float64)
    assert isinstance(back, PointClouds) and len(back) == 1
    assert torch.equal(back.points, cloud.points)
    assert back.colors is not None and torch.allclose(back.colors, colors, atol=1e-12)
    assert back.normals is not None and torch.equal(back.normals, normals)
    assert back.radii is not None and torch.equal(back.radii, radii)
    assert sorted(back.features) == ["opacity", "sh_0", "sh_1", "sh_2"]
    assert torch.equal(back.features["opacity"], cloud.features["opacity"])
    assert torch.equal(torch.cat([back.features[f"sh_{k}"] for k in range(3)], 1), cloud.features["sh"])


def test_shape_kinds(tmp_path: Path) -> None:
    mesh = Meshes.single(torch.rand(4, 3), torch.tensor([[0, 1, 2], [1, 3, 2]]))
    save_ply(tmp_path / "m.ply", mesh)
    assert isinstance(load_ply_points(tmp_path / "m.ply"), PointClouds)  # faces ignored
    save_ply(tmp_path / "p.ply", PointClouds.from_list([torch.rand(7, 3)]))
    with pytest.raises(MeshFileError, match="has no faces"):
        load_ply_mesh(tmp_path / "p.ply")
    back = load_ply_points(tmp_path / "p.ply", dtype=torch.float64)
    assert back.points.shape == (7, 3) and back.points.dtype == torch.float64 and back.colors is None


def test_read_trimesh_files(tmp_path: Path) -> None:
    tm = trimesh.creation.icosphere(subdivisions=1)
    rgba = np.random.default_rng(0).integers(0, 256, (len(tm.vertices), 4), dtype=np.uint8)
    tm.visual.vertex_colors = rgba
    for encoding in ("binary", "ascii"):
        (tmp_path / "s.ply").write_bytes(trimesh.exchange.ply.export_ply(tm, encoding=encoding))
        mesh = load_ply_mesh(tmp_path / "s.ply")
        assert np.allclose(mesh.verts.numpy(), tm.vertices, atol=1e-6)
        assert np.array_equal(mesh.faces.numpy(), tm.faces)
        assert mesh.vert_colors is not None and mesh.vert_colors.shape == (len(tm.vertices), 4)
        assert np.allclose(mesh.vert_colors.numpy() * 255, rgba, atol=1e-4)


def test_big_endian_polygons_scale(tmp_path: Path) -> None:
    """Big-endian binary, mixed triangles/quads (slow path), uchar colours, ``scale`` as radii."""
    head = _header(
        "element vertex 4", "property float x", "property float y", "property float z",
        "property uchar red", "property uchar green", "property uchar blue", "property float scale",
        "element face 2", "property list uchar int vertex_indices", fmt="binary_big_endian",
    )  # fmt: skip
    body = b"".join(struct.pack(">fffBBBf", i, i * i, 0.5, 255, 0, 51 * i, 0.25 + i) for i in range(4))
    body += struct.pack(">Biii", 3, 0, 1, 2) + struct.pack(">Biiii", 4, 0, 1, 2, 3)
    (tmp_path / "be.ply").write_bytes(head + body)
    mesh = load_ply_mesh(tmp_path / "be.ply")
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 1, 2], [0, 2, 3]]
    assert mesh.verts[:, 1].tolist() == [0, 1, 4, 9]
    assert mesh.vert_colors is not None and mesh.vert_colors[:, 2].tolist() == pytest.approx(
        [0, 0.2, 0.4, 0.6]
    )
    points = load_ply_points(tmp_path / "be.ply")
    assert points.radii is not None and points.radii.tolist() == [0.25, 1.25, 2.25, 3.25]


def test_ascii_polygons_and_uvs(tmp_path: Path) -> None:
    text = _header(
        "comment TextureFile ../../etc/passwd", "element vertex 5", "property float x", "property float y",
        "property float z", "property float s", "property float t", "element face 2",
        "property list uchar int vertex_indices",
    )  # fmt: skip
    text += b"0 0 0 0 0\n1 0 0 1 0\n1 1 0 1 1\n0 1 0 0 1\n2 2 2 0.5 0.5\n3 0 1 2\n5 0 1 2 3 4\n"
    (tmp_path / "a.ply").write_bytes(text)
    mesh = load_ply_mesh(tmp_path / "a.ply")
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 1, 2], [0, 2, 3], [0, 3, 4]]
    assert mesh.uvs is not None and mesh.uvs[4].tolist() == [0.5, 0.5]
    assert mesh.face_uvs is not None and torch.equal(mesh.face_uvs, mesh.faces)


def test_exception_absurd_count(tmp_path: Path) -> None:
    for fmt in ("binary_little_endian", "ascii"):
        path = tmp_path / "huge.ply"
        path.write_bytes(
            _header(
                "element vertex 1000000000000",
                "property float x",
                "property float y",
                "property float z",
                fmt=fmt,
            )
            + b"\0" * 24
        )
        tracemalloc.start()
        try:
            with pytest.raises(MeshFileError, match="more than max_elements") as info:
                load_ply(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert str(info.value).startswith(str(path)) and peak < 1_000_000
        # below max_elements but still far more than the file holds
        path.write_bytes(
            _header(
                "element vertex 1000000", "property float x", "property float y", "property float z", fmt=fmt
            )
            + b"\0" * 24
        )
        with pytest.raises(MeshFileError, match="only 24 bytes follow the header"):
            load_ply(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a ply file at all", "no 'end_header'"),
        (b"plx\nformat ascii 1.0\nend_header\n", "not a PLY file"),
        (_header("element vertex 1", "property float x"), "need at least"),
        (_header("element vertex -1", "property float x"), "not a non-negative integer"),
        (_header("element vertex 1", "property quaternion x"), "unexpected header line"),
        (
            _header("element vertex 1", "property float x", fmt="binary_middle_endian"),
            "unexpected header line",
        ),
        (
            _header("element vertex 1", "property float x", "property float y", "property float z")
            + b"1 2 z\n",
            "non-numeric",
        ),
        (_header("element vertex 1", "property float x", "property float y") + b"1 2\n", "scalar x, y, z"),
        (
            _header(
                "element vertex 3",
                "property float x",
                "property float y",
                "property float z",
                "element face 1",
                "property list uchar int vertex_indices",
            )
            + b"0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n",
            "face vertex index 7 is out of range",
        ),
        (
            _header(
                "element vertex 3",
                "property float x",
                "property float y",
                "property float z",
                "element face 1",
                "property list uchar int vertex_indices",
            )
            + b"0 0 0\n1 0 0\n0 1 0\n2 0 1\n",
            "fewer than 3 corners",
        ),
        (
            _header(
                "element vertex 1",
                "property float x",
                "property float y",
                "property float z",
                "property float radius",
            )
            + b"0 0 0 0\n",
            "must be positive",
        ),
        (
            _header(
                "element vertex 2",
                "property float x",
                "property float y",
                "property float z",
                fmt="binary_little_endian",
            )
            + struct.pack("<fff", 0, 0, 0)
            + b"\0\0",
            "need at least",
        ),
        (
            _header("element vertex 1", "property float x", "property float y", "property float z")
            + b"0 nan 0\n",
            "non-finite",
        ),
    ],
)
def test_exception_malformed(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.ply"
    path.write_bytes(data)
    with pytest.raises(MeshFileError, match=message) as info:
        load_ply(path)
    assert str(info.value).startswith(str(path))


def test_exception_truncated_binary_lists(tmp_path: Path) -> None:
    head = _header(
        "element vertex 3", "property float x", "property float y", "property float z",
        "element face 2", "property list uchar int vertex_indices", fmt="binary_little_endian",
    )  # fmt: skip
    body = struct.pack("<9f", *range(9)) + struct.pack("<Biii", 3, 0, 1, 2) + struct.pack("<Bi", 4, 0)
    (tmp_path / "t.ply").write_bytes(head + body)
    with pytest.raises(MeshFileError, match="data ends inside element 'face'"):
        load_ply(tmp_path / "t.ply")


def test_save_exception(tmp_path: Path) -> None:
    cloud = PointClouds.from_list([torch.rand(3, 3)], colors=[torch.full((3, 3), 2.0)])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        save_ply(tmp_path / "a.ply", cloud)
    two = PointClouds.from_list([torch.rand(3, 3), torch.rand(2, 3)])
    with pytest.raises(ValueError, match="exactly one item"):
        save_ply(tmp_path / "b.ply", two)
    with pytest.raises(TypeError, match="Meshes or PointClouds"):
        save_ply(tmp_path / "c.ply", torch.rand(3, 3))  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="does not write uvs"):
        save_ply(tmp_path / "d.ply", load_obj(asset_path("spot")))
