"""DIB-R: soft background coverage against a per-pixel loop, limits, gradients and an inverse problem."""

from __future__ import annotations

import math

import pytest
import torch

from gradiance.core import Cameras, Meshes
from gradiance.mesh import RenderSettings, render
from gradiance.mesh.dibr import DIBRSettings
from tests.mesh.scenes import triangle_soup

DT = torch.float64


def _scene(seed: int = 0, n_faces: int = 4) -> tuple[Meshes, Cameras]:
    return triangle_soup(seed, n_faces)


def _settings(**kw: object) -> RenderSettings:
    return RenderSettings(dibr=DIBRSettings(**kw))  # type: ignore[arg-type]


def _segment_d2(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    e = b - a
    s = min(max(float(((p - a) @ e) / (e @ e)), 0.0), 1.0)
    return float(((p - a - s * e) ** 2).sum())


def brute_force_alpha(mesh: Meshes, cams: Cameras, hard_alpha: torch.Tensor, s: DIBRSettings) -> torch.Tensor:
    B, (H, W) = len(cams), cams.image_size
    scale = min(H, W) / 2
    out = torch.ones(B, H, W, 1, dtype=DT)
    for b in range(B):
        pix = cams[b].project(mesh.verts)[0][0]
        for i in range(H):
            for j in range(W):
                if hard_alpha[b, i, j, 0] > 0:
                    continue
                p = torch.tensor([j + 0.5, i + 0.5], dtype=DT)
                miss = 1.0
                for face in mesh.faces.tolist():
                    t = pix[face]
                    d2 = min(_segment_d2(p, t[k], t[(k + 1) % 3]) for k in range(3)) / scale**2
                    a = math.exp(-d2 / s.delta)
                    if a > s.cutoff:
                        miss *= 1 - a
                out[b, i, j, 0] = 1 - miss
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed: int) -> None:
    mesh, cams = _scene(seed)
    s = DIBRSettings(delta=2e-2)
    out = render(mesh, cams, method="dibr", settings=RenderSettings(dibr=s))
    hard = render(mesh, cams)
    torch.testing.assert_close(out.alpha, brute_force_alpha(mesh, cams, hard.alpha, s), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(out.image, hard.image)  # foreground: the interpolated attributes
    background = hard.alpha == 0
    assert float(out.alpha[background].max()) > 0.05 and float(out.alpha[background].min()) < 0.5


def test_small_delta_gives_the_hard_silhouette() -> None:
    mesh, cams = _scene(2, n_faces=6)
    soft = render(mesh, cams, method="dibr", settings=_settings(delta=1e-9))
    torch.testing.assert_close(soft.alpha, render(mesh, cams).alpha, atol=1e-6, rtol=0)


def test_k_nearest_mode() -> None:
    mesh, cams = _scene(3, n_faces=6)
    full = render(mesh, cams, method="dibr", settings=_settings(delta=5e-2)).alpha
    many = render(mesh, cams, method="dibr", settings=_settings(delta=5e-2, faces_per_pixel=50)).alpha
    one = render(mesh, cams, method="dibr", settings=_settings(delta=5e-2, faces_per_pixel=1)).alpha
    torch.testing.assert_close(many, full)
    assert bool((one <= full + 1e-12).all()) and float((full - one).max()) > 1e-3


def test_gradcheck() -> None:
    mesh, cams = _scene(5, n_faces=2)
    cams = cams[0]
    verts = mesh.verts.clone().requires_grad_()
    colors = mesh.vert_colors.clone().requires_grad_()  # type: ignore[union-attr]
    ids = render(mesh, cams).face_id

    def f(v: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = render(
            Meshes.single(v, mesh.faces, vert_colors=c), cams, method="dibr", settings=_settings(delta=3e-2)
        )
        assert torch.equal(out.face_id, ids)
        return out.image, out.alpha

    assert torch.autograd.gradcheck(f, (verts, colors), eps=1e-7, atol=1e-5)


def test_exception() -> None:
    with pytest.raises(ValueError, match="delta"):
        DIBRSettings(delta=-1.0)
    with pytest.raises(ValueError, match="cutoff"):
        DIBRSettings(cutoff=1.5)
    with pytest.raises(ValueError, match="faces_per_pixel"):
        DIBRSettings(faces_per_pixel=0)
