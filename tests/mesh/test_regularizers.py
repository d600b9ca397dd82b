"""Mesh regularisers against per-vertex and per-edge loops, known values, gradients and bad input."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

from gradiance.core import Meshes
from gradiance.core.primitives import cube, icosphere, plane
from gradiance.mesh.regularizers import (
    edge_length_loss,
    flatten_loss,
    laplacian_smoothing,
    laplacian_weights,
    normal_consistency,
)

DT = torch.float64


def _jittered(mesh: Meshes, seed: int, scale: float = 0.1) -> Meshes:
    g = torch.Generator().manual_seed(seed)
    return mesh.with_verts(mesh.verts.to(DT) + scale * torch.randn(mesh.verts.shape, generator=g, dtype=DT))


def _batch() -> Meshes:
    """A jittered tetrahedron-like icosphere piece and a jittered cube: two meshes of different sizes."""
    return Meshes.join([_jittered(icosphere(0, dtype=DT), 0), _jittered(cube(dtype=DT).geometry(), 1, 0.2)])


def _split(meshes: Meshes) -> list[tuple[list[list[float]], list[list[int]]]]:
    """Each mesh as python lists of vertices and local faces."""
    out = []
    for n in range(len(meshes)):
        v0, v1 = int(meshes.vert_offsets[n]), int(meshes.vert_offsets[n + 1])
        f0, f1 = int(meshes.face_offsets[n]), int(meshes.face_offsets[n + 1])
        out.append((meshes.verts[v0:v1].tolist(), (meshes.faces[f0:f1] - v0).tolist()))
    return out


def _sub(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _cross(a: list[float], b: list[float]) -> list[float]:
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def _norm(a: list[float]) -> float:
    return math.sqrt(_dot(a, a))


def _laplacian_loop(verts: list[list[float]], faces: list[list[int]], method: str) -> float:
    weights: dict[tuple[int, int], float] = defaultdict(float)
    area = [0.0] * len(verts)
    for f in faces:
        for k in range(3):
            i, j, o = f[(k + 1) % 3], f[(k + 2) % 3], f[k]  # edge (i, j) opposite corner o
            a, b = _sub(verts[i], verts[o]), _sub(verts[j], verts[o])
            cot = _dot(a, b) / _norm(_cross(a, b))
            weights[(min(i, j), max(i, j))] += 1.0 if method == "uniform" else cot
            area[f[k]] += _norm(_cross(_sub(verts[f[1]], verts[f[0]]), _sub(verts[f[2]], verts[f[0]]))) / 6
    if method == "uniform":
        weights = defaultdict(float, {e: 1.0 for e in weights})
    total = 0.0
    for i in range(len(verts)):
        acc, wsum = [0.0, 0.0, 0.0], 0.0
        for (p, q), w in weights.items():
            if i in (p, q):
                j = q if i == p else p
                acc = [x + w * d for x, d in zip(acc, _sub(verts[i], verts[j]), strict=True)]
                wsum += w
        norm = 2 * area[i] if method == "cotangent" else wsum
        total += _norm([x / norm for x in acc])
    return total / len(verts)


def _edges_loop(faces: list[list[int]]) -> dict[tuple[int, int], list[int]]:
    edges: dict[tuple[int, int], list[int]] = defaultdict(list)
    for n, f in enumerate(faces):
        for k in range(3):
            i, j = f[k], f[(k + 1) % 3]
            edges[(min(i, j), max(i, j))].append(n)
    return edges


def _edge_loop(verts: list[list[float]], faces: list[list[int]], target: float) -> float:
    edges = _edges_loop(faces)
    return sum((_norm(_sub(verts[i], verts[j])) - target) ** 2 for i, j in edges) / len(edges)


def _normal_loop(verts: list[list[float]], faces: list[list[int]]) -> float:
    def unit_normal(f: list[int]) -> list[float]:
        n = _cross(_sub(verts[f[1]], verts[f[0]]), _sub(verts[f[2]], verts[f[0]]))
        return [x / _norm(n) for x in n]

    terms = []
    for owners in _edges_loop(faces).values():
        for a in range(len(owners)):
            for b in range(a + 1, len(owners)):
                terms.append(1 - _dot(unit_normal(faces[owners[a]]), unit_normal(faces[owners[b]])))
    return sum(terms) / len(terms)


def _flatten_loop(verts: list[list[float]], faces: list[list[int]]) -> float:
    """Liu et al. 2019's flatten loss per edge: ``(cos theta + 1)^2`` with ``theta`` the angle between the
    two faces' in-plane directions from the shared edge to their third vertices."""

    def away(f: list[int], i: int, j: int) -> list[float]:
        k = next(x for x in f if x not in (i, j))
        e = _sub(verts[j], verts[i])
        e = [x / _norm(e) for x in e]
        d = _sub(verts[k], verts[i])
        along = _dot(d, e)
        b = [d[c] - along * e[c] for c in range(3)]
        return [x / _norm(b) for x in b]

    terms = []
    for (i, j), owners in _edges_loop(faces).items():
        for a in range(len(owners)):
            for b in range(a + 1, len(owners)):
                cos = _dot(away(faces[owners[a]], i, j), away(faces[owners[b]], i, j))
                terms.append((cos + 1) ** 2)
    return sum(terms) / len(terms)


def test_flatten_loss_matches_the_papers_per_edge_loop() -> None:
    meshes = Meshes.join([_jittered(icosphere(1, dtype=DT), 4), _jittered(cube(dtype=DT).geometry(), 5, 0.2)])
    want = sum(_flatten_loop(v, f) for v, f in _split(meshes)) / 2
    torch.testing.assert_close(flatten_loss(meshes), torch.tensor(want, dtype=DT))
    assert float(flatten_loss(plane(subdivisions=3, dtype=DT))) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", ["uniform", "cotangent", "cotangent_normalized"])
def test_laplacian_matches_per_vertex_loop(method: str) -> None:
    meshes = _batch()
    want = sum(_laplacian_loop(v, f, method) for v, f in _split(meshes)) / 2
    torch.testing.assert_close(laplacian_smoothing(meshes, method), torch.tensor(want, dtype=DT))


@pytest.mark.parametrize("target", [0.0, 0.7])
def test_edge_length_matches_per_edge_loop(target: float) -> None:
    meshes = _batch()
    want = sum(_edge_loop(v, f, target) for v, f in _split(meshes)) / 2
    torch.testing.assert_close(edge_length_loss(meshes, target), torch.tensor(want, dtype=DT))


def test_normal_consistency_matches_per_edge_loop_with_a_non_manifold_edge() -> None:
    base = _jittered(cube(dtype=DT).geometry(), 2, 0.1)
    # a fin: one more face on the cube's first edge makes it shared by three faces
    i, j = base.faces[0, 0], base.faces[0, 1]
    verts = torch.cat([base.verts, torch.tensor([[0.3, 2.0, 0.1]], dtype=DT)])
    faces = torch.cat([base.faces, torch.tensor([[int(i), int(j), 8]])])
    meshes = Meshes.join([Meshes.single(verts, faces), _jittered(icosphere(0, dtype=DT), 3)])
    want = sum(_normal_loop(v, f) for v, f in _split(meshes)) / 2
    torch.testing.assert_close(normal_consistency(meshes), torch.tensor(want, dtype=DT))


def test_known_values() -> None:
    flat = plane(subdivisions=3, dtype=DT)
    assert float(normal_consistency(flat)) == pytest.approx(0.0, abs=1e-12)
    # the uniform and cotangent Laplacians of a flat regular grid vanish at interior vertices
    for method in ("uniform", "cotangent"):
        edges, weights, norm = laplacian_weights(flat, method)
        flow = weights[:, None] * (flat.verts[edges[:, 0]] - flat.verts[edges[:, 1]])
        lap = torch.zeros_like(flat.verts).index_add(0, edges[:, 0], flow).index_add(0, edges[:, 1], -flow)
        lap = lap / norm[:, None]
        interior = (flat.verts[:, [0, 2]].abs() < 0.99).all(1)
        assert int(interior.sum()) == 4
        assert float(lap[interior].abs().max()) < 1e-6 and float(lap[~interior].abs().max()) > 0.1
    sphere = icosphere(0, dtype=DT)
    side = float((sphere.verts[sphere.faces[0, 0]] - sphere.verts[sphere.faces[0, 1]]).norm())
    assert float(edge_length_loss(sphere, side)) == pytest.approx(0.0, abs=1e-12)
    # a sphere's cotangent Laplacian is its mean curvature normal 2 H n = 2 / r n (up to discretisation)
    fine = icosphere(4, radius=2.0, dtype=DT)
    assert float(laplacian_smoothing(fine, "cotangent")) == pytest.approx(1.0, rel=0.02)
    # scaling by s scales the uniform Laplacian by s and leaves normal consistency alone
    big = fine.with_verts(3 * fine.verts)
    torch.testing.assert_close(laplacian_smoothing(big), 3 * laplacian_smoothing(fine))
    torch.testing.assert_close(normal_consistency(big), normal_consistency(fine))


@pytest.mark.parametrize(
    "loss",
    [
        lambda m: laplacian_smoothing(m, "uniform"),
        lambda m: laplacian_smoothing(m, "cotangent"),
        lambda m: laplacian_smoothing(m, "cotangent_normalized"),
        lambda m: edge_length_loss(m, 0.5),
        normal_consistency,
        flatten_loss,
    ],
)
def test_gradcheck(loss: object) -> None:
    meshes = _batch()
    verts = meshes.verts.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: loss(meshes.with_verts(v)), (verts,))  # type: ignore[operator]


def test_degenerate_input_stays_finite() -> None:
    mesh = cube(dtype=DT).geometry()
    verts = mesh.verts.clone()
    verts[1] = verts[0]  # collapses two faces' edge: zero-length edge, zero-area faces
    verts = verts.requires_grad_()
    empty = Meshes.single(torch.zeros(0, 3, dtype=DT), torch.zeros(0, 3, dtype=torch.int64))
    for method in ("uniform", "cotangent", "cotangent_normalized"):
        for value in (
            laplacian_smoothing(mesh.with_verts(verts), method),
            edge_length_loss(mesh.with_verts(verts), 0.3),
            normal_consistency(mesh.with_verts(verts)),
        ):
            (grad,) = torch.autograd.grad(value, verts)
            assert bool(torch.isfinite(value)) and bool(torch.isfinite(grad).all())
        assert float(laplacian_smoothing(empty, method)) == 0.0
    assert float(edge_length_loss(empty)) == 0.0 and float(normal_consistency(empty)) == 0.0


def test_exception() -> None:
    mesh = cube()
    with pytest.raises(ValueError, match="method"):
        laplacian_smoothing(mesh, "harmonic")
    with pytest.raises(ValueError, match="target_length"):
        edge_length_loss(mesh, -1.0)
    with pytest.raises(TypeError, match="meshes"):
        normal_consistency(mesh.verts)  # type: ignore[arg-type]
