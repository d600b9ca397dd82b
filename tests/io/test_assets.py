"""Bundled assets (Spot, the Utah teapot) and the shared, unbundled test meshes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradiance.io import asset_path, list_assets, load_asset, load_obj, shared_asset_path


def test_list_and_paths() -> None:
    assert list_assets() == ["spot", "teapot"]
    for name in list_assets():
        assert asset_path(name).is_file() and asset_path(name).suffix == ".obj"


def test_smoke_spot() -> None:
    spot = load_asset("spot")
    assert spot.verts.shape == (2930, 3) and spot.faces.shape == (5856, 3)
    assert spot.uvs is not None and spot.face_uvs is not None
    (material,) = spot.materials[0]
    assert material.name == "spot" and material.diffuse_map is not None
    h, w, c = material.diffuse_map.shape
    assert c == 3 and h > 0 and w > 0
    assert float(material.diffuse_map.min()) >= 0 and float(material.diffuse_map.max()) <= 1
    assert spot.face_materials is not None and (spot.face_materials == 0).all()


def test_smoke_teapot_dtype() -> None:
    teapot = load_asset("teapot", dtype=torch.float64)
    assert teapot.verts.dtype == torch.float64 and teapot.faces.shape == (6320, 3)
    assert teapot.materials == ((),)


def test_exception_unknown() -> None:
    with pytest.raises(ValueError, match=r"unknown asset 'cow'; available assets: \['spot', 'teapot'\]"):
        load_asset("cow")
    with pytest.raises(ValueError, match="unknown asset"):
        asset_path("../spot")


def test_shared_asset_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shared_asset_path("does_not_exist") is None
    with pytest.raises(ValueError, match="plain file name"):
        shared_asset_path("../etc/passwd")
    (tmp_path / "mine.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    monkeypatch.setenv("GRADIANCE_ASSETS", str(tmp_path))
    assert shared_asset_path("mine") == tmp_path / "mine.obj"
    assert shared_asset_path("mine.obj") == tmp_path / "mine.obj"


def test_smoke_bunny() -> None:
    path = shared_asset_path("bunny")
    if path is None:
        pytest.skip("bunny.obj not found (set GRADIANCE_ASSETS or provide ../shared/assets)")
    bunny = load_obj(path)
    assert bunny.faces.shape == (69451, 3) and bunny.verts.shape[1] == 3
