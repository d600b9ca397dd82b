"""Mesh faces as Gaussians, and the Gaussian benchmark's row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from gradiance.core import Meshes, look_at
from gradiance.core.mesh_ops import sample_surface
from gradiance.core.primitives import icosphere
from gradiance.gaussians import render_gaussians
from gradiance.gaussians.from_mesh import face_covariances, gaussians_from_meshes

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_splats.py"


def test_face_gaussians_have_the_triangles_covariance() -> None:
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.3, 0.8, 0.2]], dtype=torch.float64)
    tri = Meshes.single(v, torch.tensor([[0, 1, 2]]))
    pts, _, _, _ = sample_surface(tri, 200_000, generator=torch.Generator().manual_seed(0))
    centred = pts[0] - pts[0].mean(0)
    torch.testing.assert_close(
        face_covariances(tri)[0], centred.T @ centred / len(centred), atol=5e-4, rtol=0
    )
    g = gaussians_from_meshes(tri, spread=1.0, thickness=1e-6)
    torch.testing.assert_close(g.covariances()[0], face_covariances(tri)[0], atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(g.means[0], v.mean(0))


def test_mesh_as_gaussians_renders_its_silhouette_with_vertex_gradients() -> None:
    mesh = icosphere(2, 0.6)
    verts = mesh.verts.clone().requires_grad_()
    cams = look_at(torch.tensor([[0.0, 0.0, 2.5]]), image_size=(24, 24), fov=45.0)
    out = render_gaussians(gaussians_from_meshes(mesh.with_verts(verts)), cams)
    from gradiance.mesh import render

    hard = render(mesh, cams).alpha
    assert float(((out.alpha > 0.5) == (hard > 0.5)).float().mean()) > 0.9
    (grad,) = torch.autograd.grad(out.alpha.sum(), verts)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_benchmark_prints_a_row() -> None:
    args = [sys.executable, str(BENCH), "--primitives", "50", "--size", "32"]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["primitives"] == 50 and row["forward_ms"] > 0 and row["pairs"] > 0
    points = subprocess.run([*args, "--renderer", "points"], capture_output=True, text=True, check=True)
    assert json.loads(points.stdout.strip().splitlines()[-1])["op"] == "render_points"


def test_eval_method_gradient_matches_finite_differences() -> None:
    from gradiance.core import AmbientLight, DirectionalLights, Lights
    from gradiance.eval.methods import eval_methods, get_method

    assert "gaussians" in eval_methods()
    method = get_method("gaussians")
    mesh = icosphere(2, 0.6, dtype=torch.float64)
    cams = look_at(torch.tensor([[0.3, 0.2, 2.5]], dtype=torch.float64), image_size=(20, 20), fov=45.0)
    lights = Lights(
        ambient=AmbientLight(torch.full((3,), 0.3, dtype=torch.float64)),
        directional=DirectionalLights(
            torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64), torch.full((1, 3), 0.7, dtype=torch.float64)
        ),
    )
    weight = torch.rand(1, 20, 20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss(shift: torch.Tensor) -> torch.Tensor:
        image, alpha = method(mesh.with_verts(mesh.verts + shift), cams, lights)
        assert image.shape == (1, 20, 20, 3) and alpha.shape == (1, 20, 20, 1)
        return (image * weight).sum() + alpha.sum()

    shift = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(shift), shift)
    eps = 1e-5
    fd = torch.stack(
        [(loss(eps * e) - loss(-eps * e)) / (2 * eps) for e in torch.eye(3, dtype=torch.float64)]
    )
    torch.testing.assert_close(grad, fd, rtol=1e-3, atol=1e-4)
