"""eval.bench tasks at tiny sizes, and the ``gradiance eval`` command with its reports."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from gradiance.apps.pose import rotation_error_degrees
from gradiance.cli import main
from gradiance.eval import methods
from gradiance.eval.bench import appearance_task, pose_task, shape_task
from gradiance.eval.methods import convergence_methods, eval_methods, register_eval_method


def test_methods_are_registered() -> None:
    assert {"antialias", "softras", "dibr", "nmr", "opendr", "hard"} <= set(eval_methods())
    assert "hard" not in convergence_methods()


def testrotation_error_degrees() -> None:
    z = torch.tensor([0.0, 0.0, 1.0])
    assert rotation_error_degrees(z * 0.3, z * 0.1) == pytest.approx(math.degrees(0.2), rel=1e-5)
    assert rotation_error_degrees(z * 0.3, -z * 0.3) == pytest.approx(math.degrees(0.6), rel=1e-5)


def test_pose_task_is_deterministic_and_converges() -> None:
    a = pose_task("softras", 15.0, 0, steps=2, size=16)
    b = pose_task("softras", 15.0, 0, steps=2, size=16)
    assert replace(a, seconds=0.0) == replace(b, seconds=0.0)
    assert a.rotation_error_degrees == pytest.approx(15.0, abs=3.0)  # two small steps from 15 degrees
    c = pose_task("softras", 15.0, 1, steps=2, size=16)
    assert c.rotation_error_degrees != a.rotation_error_degrees  # another trial, another axis
    done = pose_task("softras", 15.0, 0, steps=60, size=32)
    assert done.success and done.iterations_to_success is not None and done.rotation_error_degrees < 5


def test_shape_and_appearance_tasks_report_their_fields() -> None:
    s = shape_task("softras", views=2, steps=2, size=16, surface_samples=200, volume_samples=300)
    row = asdict(s)
    for key in ("chamfer_l2", "chamfer_l1", "normal_consistency", "f_score", "volume_iou", "silhouette_iou"):
        assert math.isfinite(row[key]), key
    assert 0 <= s.volume_iou <= 1 and 0 <= s.silhouette_iou <= 1
    a = appearance_task("softras", views=2, steps=2, size=16, texture_size=8)
    assert math.isfinite(a.texture_psnr) and math.isfinite(a.image_psnr) and a.sh_relative_error >= 0


def test_a_registered_method_runs_the_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        methods, "_EVAL_METHODS", dict(methods._EVAL_METHODS)
    )  # registered for this test only
    calls = []

    def flat(meshes, cameras, lights):  # type: ignore[no-untyped-def]
        calls.append(1)
        from gradiance.mesh import render

        out = render(meshes, cameras, lights, method="softras")
        return out.image, out.alpha

    register_eval_method("test-flat", flat)
    assert "test-flat" in eval_methods()
    pose_task("test-flat", 15.0, 0, steps=1, size=16)
    assert calls


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        pose_task("nope", 15.0, 0)
    with pytest.raises(ValueError, match="target"):
        pose_task("softras", 15.0, 0, target="depth")


@pytest.mark.parametrize(
    ("what", "methods", "fields"),
    [
        ("convergence", "softras", {"task", "method", "success", "rotation_error_degrees", "chamfer_l2"}),
        ("gradients", "hard,antialias", {"method", "parameter", "pixel_area_cosine", "own_fd_passed"}),
        ("speed", "hard", {"op", "forward_ms", "backward_ms", "peak_mb"}),
    ],
)
def test_eval_command_writes_reports(tmp_path: Path, what: str, methods: str, fields: set[str]) -> None:
    out = tmp_path / what
    assert main(["eval", what, "--tiny", "--methods", methods, "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["kind"] == what and data["rows"]
    keys = set().union(*(row.keys() for row in data["rows"]))
    assert fields <= keys
    page = (out / "report.html").read_text()
    assert "<table>" in page and "src='http" not in page  # self-contained
    assert (out / "results.md").read_text().startswith(f"# gradiance eval {what}")
    if what == "gradients":
        assert "data:image/png;base64," in page and (out / "gradient_translation.png").exists()


def test_eval_command_rejects_unknown_methods(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "convergence", "--tiny", "--methods", "nope", "--out", str(tmp_path)])
    assert "method must be one of" in capsys.readouterr().err


def test_scenes() -> None:
    from gradiance.eval.bench import SCENES, scene

    for name in SCENES:
        m = scene(name)
        assert float(m.verts.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="scene must be one of"):
        scene("dragon")
    row = shape_task(
        "softras", views=2, steps=1, size=16, surface_samples=100, volume_samples=100, shape="torus"
    )
    assert row.shape == "torus"
