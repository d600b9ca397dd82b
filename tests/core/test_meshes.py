"""Packing, splitting, indexing, attributes and validation of Meshes and PointClouds."""

from __future__ import annotations

import pytest
import torch

from gradiance.core.meshes import Meshes, SurfaceMaterial
from gradiance.core.pointclouds import PointClouds
from gradiance.core.primitives import cube, icosphere


def _tri_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    return v, torch.tensor([[0, 1, 2]])


def _quad_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor([[0.0, 0, 1], [2, 0, 1], [2, 2, 1], [0, 2, 1]])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def _batch() -> Meshes:
    (v0, f0), (v1, f1) = _tri_mesh(), _quad_mesh()
    tex = torch.rand(4, 4, 3)
    mats = [
        [SurfaceMaterial("red", diffuse=torch.tensor([1.0, 0, 0]))],
        [SurfaceMaterial("plain"), SurfaceMaterial("tex", diffuse_map=tex)],
    ]
    return Meshes.from_list(
        [v0, v1],
        [f0, f1],
        vert_colors=[torch.rand(3, 3), torch.rand(4, 3)],
        vert_features={"w": [torch.rand(3, 2), torch.rand(4, 2)]},
        uvs=[torch.rand(3, 2), torch.rand(5, 2)],
        face_uvs=[torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 2], [0, 3, 4]])],
        materials=mats,
        face_materials=[torch.tensor([0]), torch.tensor([1, 0])],
    )


def test_smoke() -> None:
    m = Meshes.single(*_tri_mesh(), vert_features={"w": torch.ones(3, 2)})
    assert m.vert_features["w"].shape == (3, 2)
    assert len(m) == 1 and m.verts.shape == (3, 3)
    torch.testing.assert_close(m.face_areas(), torch.tensor([0.5]))


def test_shape() -> None:
    m = _batch()
    assert len(m) == 2
    assert m.num_verts_per_mesh == [3, 4] and m.num_faces_per_mesh == [1, 2]
    assert m.verts.shape == (7, 3) and m.faces.shape == (3, 3)
    # face indices are packed: the second mesh's faces point past the first mesh's vertices
    assert m.faces.tolist() == [[0, 1, 2], [3, 4, 5], [3, 5, 6]]
    assert m.face_uvs is not None and m.face_uvs.tolist() == [[0, 1, 2], [3, 4, 5], [3, 6, 7]]
    assert m.vert_to_mesh.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert m.face_to_mesh.tolist() == [0, 1, 1]
    assert m.face_normals().shape == (3, 3) and m.compute_vert_normals().shape == (7, 3)


def test_split_and_join_round_trip() -> None:
    m = _batch()
    parts = m.split()
    assert [len(p) for p in parts] == [1, 1]
    torch.testing.assert_close(parts[1].verts, _quad_mesh()[0])
    assert parts[1].faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert parts[1].materials[0][1].name == "tex"
    joined = Meshes.join(parts)
    for name in ("verts", "faces", "vert_colors", "uvs", "face_uvs", "face_materials", "vert_offsets"):
        torch.testing.assert_close(getattr(joined, name), getattr(m, name))
    torch.testing.assert_close(joined.vert_features["w"], m.vert_features["w"])
    twice = Meshes.join([m, m])
    assert len(twice) == 4 and twice.num_faces_per_mesh == [1, 2, 1, 2]
    assert [f.tolist() for f in twice.faces_list()] == [f.tolist() for f in m.faces_list()] * 2


def test_indexing() -> None:
    m = Meshes.join([_batch(), _batch()])
    sub = m[[3, 0]]
    assert sub.num_verts_per_mesh == [4, 3]
    assert sub.faces.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6]]
    assert sub.materials[0][1].name == "tex" and sub.materials[1][0].name == "red"
    torch.testing.assert_close(sub.verts[:4], m.verts[10:14])
    assert len(m[1:3]) == 2 and len(m[torch.tensor([True, False, False, True])]) == 2
    # the sub-batch is itself valid
    Meshes(**{k: getattr(sub, k) for k in ("verts", "faces", "vert_offsets", "face_offsets")})
    with pytest.raises(IndexError, match="Meshes"):
        m[4]


def test_gradients_flow_through_packing() -> None:
    v0 = _tri_mesh()[0].clone().requires_grad_()
    v1 = _quad_mesh()[0].clone().requires_grad_()
    m = Meshes.from_list([v0, v1], [_tri_mesh()[1], _quad_mesh()[1]])
    m[1].face_areas().sum().backward()
    assert v0.grad is None or float(v0.grad.abs().sum()) == 0
    assert v1.grad is not None and float(v1.grad.abs().sum()) > 0


def test_normals_and_edges() -> None:
    m = Meshes.single(*_quad_mesh())
    torch.testing.assert_close(m.face_normals(), torch.tensor([[0.0, 0, 1], [0, 0, 1]]))
    torch.testing.assert_close(m.compute_vert_normals(), torch.tensor([[0.0, 0, 1]] * 4))
    edges, face_edges = m.edges()
    assert edges.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]]
    assert face_edges.tolist() == [[3, 1, 0], [4, 2, 1]]
    c = cube()
    assert c.edges()[0].shape == (18, 2)  # V - E + F = 2 for 8 vertices and 12 faces
    # zero-area faces get zero normals, never NaN, with finite gradients
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]], requires_grad=True)
    n = Meshes.single(v, torch.tensor([[0, 1, 2]])).compute_vert_normals()
    assert bool(torch.isfinite(n).all()) and float(n.detach().abs().sum()) == 0
    n.sum().backward()
    assert v.grad is not None and bool(torch.isfinite(v.grad).all())


def test_vertex_normals_of_sphere_point_outwards() -> None:
    s = icosphere(2, dtype=torch.float64)
    cos = (s.compute_vert_normals() * s.verts).sum(-1)
    assert float(cos.min()) > 0.99


def test_with_verts_and_to() -> None:
    m = _batch()
    new = m.with_verts(m.verts * 2)
    torch.testing.assert_close(new.verts, m.verts * 2)
    assert new.faces is m.faces
    d = m.to(dtype=torch.float64)
    assert d.verts.dtype == torch.float64 and d.faces.dtype == torch.int64
    assert d.materials[1][1].diffuse_map is not None and d.materials[1][1].diffuse_map.dtype == torch.float64
    assert not m.with_verts(m.verts.clone().requires_grad_()).detach().verts.requires_grad


def test_empty_batch_and_empty_mesh() -> None:
    empty = Meshes.from_list([torch.zeros(0, 3)], [torch.zeros(0, 3, dtype=torch.int64)])
    assert len(empty) == 1 and empty.faces.shape == (0, 3)
    both = Meshes.join([empty, Meshes.single(*_tri_mesh())])
    assert both.num_faces_per_mesh == [0, 1] and both.faces.tolist() == [[0, 1, 2]]


def test_exception() -> None:
    v, f = _tri_mesh()
    with pytest.raises(ValueError, match="faces has index 3"):
        Meshes.single(v, torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match="faces has index -1"):
        Meshes.single(v, torch.tensor([[0, 1, -1]]))
    # an index valid for the packed batch but pointing into another mesh is refused
    (v1, f1) = _quad_mesh()
    with pytest.raises(ValueError, match="faces"):
        Meshes.from_list([v, v1], [torch.tensor([[0, 1, 3]]), f1])
    with pytest.raises(ValueError, match="NaN"):
        Meshes.single(torch.tensor([[0.0, 0, 0], [1, 0, 0], [float("nan"), 1, 0]]), f)
    with pytest.raises(ValueError, match="inf"):
        Meshes.single(torch.tensor([[0.0, 0, 0], [1, 0, float("inf")], [0, 1, 0]]), f)
    with pytest.raises(TypeError, match=r"faces\[0\] must be an int32 or int64"):
        Meshes.single(v, f.float())
    with pytest.raises(TypeError, match=r"verts\[0\] must be float32 or float64"):
        Meshes.single(v.long(), f)
    with pytest.raises(ValueError, match=r"verts\[0\] must have shape"):
        Meshes.single(v[:, :2], f)
    with pytest.raises(ValueError, match="vert_colors must have shape"):
        Meshes.single(v, f, vert_colors=torch.rand(4, 3))
    with pytest.raises(ValueError, match="face_uvs has index 5"):
        Meshes.single(v, f, uvs=torch.rand(3, 2), face_uvs=torch.tensor([[0, 1, 5]]))
    with pytest.raises(ValueError, match="uvs and face_uvs must be given together"):
        Meshes.single(v, f, uvs=torch.rand(3, 2))
    with pytest.raises(ValueError, match="face_materials has index 1"):
        Meshes.single(v, f, materials=[SurfaceMaterial()], face_materials=torch.tensor([1]))
    with pytest.raises(ValueError, match="one entry per mesh"):
        Meshes.from_list([v, v], [f, f], vert_colors=[torch.rand(3, 3)])
    with pytest.raises(ValueError, match="verts must have shape"):
        Meshes.single(v, f).with_verts(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="diffuse"):
        SurfaceMaterial(diffuse=torch.ones(4))
    with pytest.raises(ValueError, match="only some have vert_colors"):
        Meshes.join([Meshes.single(v, f, vert_colors=torch.rand(3, 3)), Meshes.single(v, f)])
    assert (
        len(Meshes.join([Meshes.single(v, f, vert_colors=torch.rand(3, 3)).geometry(), Meshes.single(v, f)]))
        == 2
    )


# ------------------------------------------------------------------------------------- point clouds
def _clouds() -> PointClouds:
    return PointClouds.from_list(
        [torch.rand(5, 3), torch.rand(2, 3), torch.rand(4, 3)],
        colors=[torch.rand(5, 3), torch.rand(2, 3), torch.rand(4, 3)],
        radii=[torch.full((5,), 0.1), torch.full((2,), 0.2), torch.full((4,), 0.3)],
        features={"f": [torch.rand(5, 8), torch.rand(2, 8), torch.rand(4, 8)]},
    )


def test_pointclouds_shape_and_split() -> None:
    pc = _clouds()
    assert len(pc) == 3 and pc.num_points_per_cloud == [5, 2, 4]
    assert pc.point_to_cloud.tolist() == [0] * 5 + [1] * 2 + [2] * 4
    sub = pc[[2, 0]]
    assert sub.num_points_per_cloud == [4, 5]
    torch.testing.assert_close(sub.points[:4], pc.points[7:])
    assert sub.radii is not None and sub.radii[:4].tolist() == pytest.approx([0.3] * 4)
    joined = PointClouds.join(pc.split())
    torch.testing.assert_close(joined.points, pc.points)
    torch.testing.assert_close(joined.features["f"], pc.features["f"])
    assert pc.to(dtype=torch.float64).colors.dtype == torch.float64  # type: ignore[union-attr]


def test_pointclouds_exception() -> None:
    with pytest.raises(ValueError, match=r"points\[0\] must have shape"):
        PointClouds.from_list([torch.rand(3, 2)])
    with pytest.raises(ValueError, match="NaN"):
        PointClouds.from_list([torch.tensor([[0.0, float("nan"), 0]])])
    with pytest.raises(ValueError, match="radii must be positive"):
        PointClouds.from_list([torch.rand(2, 3)], radii=[torch.tensor([0.1, 0.0])])
    with pytest.raises(ValueError, match="colors must have shape"):
        PointClouds(torch.rand(3, 3), torch.tensor([0, 3]), colors=torch.rand(2, 3))
    with pytest.raises(ValueError, match="offsets must start at 0"):
        PointClouds(torch.rand(3, 3), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="only some have colors"):
        PointClouds.join([_clouds(), PointClouds.from_list([torch.rand(2, 3)])])
