"""``gradiance fit``: the files it writes exist and are valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from gradiance.cli import main
from gradiance.io import load_obj


@pytest.mark.parametrize("kind", ["shape", "pose", "appearance"])
def test_fit_command_writes_its_files(tmp_path: Path, kind: str) -> None:
    out = tmp_path / kind
    args = ["fit", kind, "--views", "2", "--size", "16", "--steps", "4", "--out", str(out)]
    assert main(args) == 0
    mesh = load_obj(out / "result.obj")
    assert mesh.faces.shape[0] > 0
    with Image.open(out / "optimisation.gif") as gif:
        assert gif.n_frames == 4  # one frame per step at 4 steps
    data = json.loads((out / "results.json").read_text())
    assert len(data["rows"]) == 4 and "loss" in data["rows"][0]
    result = data["tables"]["result"][0]
    assert result["kind"] == kind and 0 <= result["silhouette_iou"] <= 1
    assert {"pose": "rotation_error_degrees", "shape": "chamfer_l2", "appearance": "image_psnr"}[
        kind
    ] in result
    page = (out / "report.html").read_text()
    assert page.count("data:image/") >= 2 and f"gradiance fit {kind}" in page
    if kind == "appearance":
        assert (out / "texture.png").exists()


def test_fit_command_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "shape", "--method", "nope", "--views", "2", "--size", "8", "--out", str(tmp_path)])
    assert "method must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", "shape", "--mesh", str(tmp_path / "x.stl"), "--out", str(tmp_path)])
    (tmp_path / "x.stl").write_text("solid")
    with pytest.raises(SystemExit):
        main(["fit", "shape", "--mesh", str(tmp_path / "x.stl"), "--out", str(tmp_path)])
    assert ".obj, .ply" in capsys.readouterr().err
