"""The mesh renderers on CUDA give the CPU's images, ids and gradients (skipped without CUDA)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
import torch
from torch import Tensor

from gradiance.core import look_at, normalize_to_unit_sphere
from gradiance.io import load_asset
from gradiance.mesh import RasterSettings, available_methods, rasterize, render
from tests.devices import CUDA, assert_same_on_cuda

DT = torch.float64


def _spot(device: str):  # type: ignore[no-untyped-def]
    return normalize_to_unit_sphere(load_asset("spot", device=device, dtype=DT))


def _cams(device: str):  # type: ignore[no-untyped-def]
    eyes = torch.tensor([[0.8, 0.6, 2.4], [-2.0, 0.5, -1.0]], dtype=DT, device=device)
    return look_at(eyes, image_size=(24, 28), fov=45.0)


@CUDA
@pytest.mark.parametrize("method", available_methods())
def test_textured_spot_renders_the_same_on_cuda(method: str) -> None:
    """Every registered method on textured Spot from two views: image, alpha, depth, normals, face ids and
    the gradients with respect to the vertices and the texture."""
    spot = _spot("cpu")

    def run(leaves: Sequence[Tensor], device: str) -> dict[str, Tensor]:
        verts, texture = leaves
        mesh = _spot(device)
        mat = replace(mesh.materials[0][0], diffuse_map=texture)
        out = render(replace(mesh, materials=((mat,),)).with_verts(verts), _cams(device), method=method)
        return {n: getattr(out, n) for n in ("image", "alpha", "depth", "normals", "face_id")}

    assert_same_on_cuda(run, [spot.verts, spot.materials[0][0].diffuse_map])


@CUDA
def test_k_layers_render_the_same_on_cuda() -> None:
    """Four depth layers of the rasteriser, with their barycentrics (differentiable in the vertices)."""
    spot = _spot("cpu").geometry()

    def run(leaves: Sequence[Tensor], device: str) -> dict[str, Tensor]:
        mesh = _spot(device).geometry().with_verts(leaves[0])
        frags = rasterize(mesh, _cams(device), RasterSettings(faces_per_pixel=4))
        return {"face_id": frags.face_id, "bary": frags.bary, "depth": frags.depth}

    assert_same_on_cuda(run, [spot.verts])
