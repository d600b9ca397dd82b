"""Every example runs end to end on a tiny setting and writes its pictures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_spot_pose_example_runs(tmp_path: Path) -> None:
    script = EXAMPLES / "spot_pose_from_silhouette.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--steps", "3", "--size", "24"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "rot err" in done.stdout
    assert (tmp_path / "target_start_result.png").stat().st_size > 100


def test_reconstruction_example_runs(tmp_path: Path) -> None:
    script = EXAMPLES / "reconstruct_from_silhouettes.py"
    args = ["--out", str(tmp_path), "--steps", "4", "--size", "16", "--views", "2"]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True)
    assert "iou" in done.stdout
    assert (tmp_path / "reconstruction.obj").stat().st_size > 100


def test_texture_example_runs(tmp_path: Path) -> None:
    script = EXAMPLES / "recover_texture_and_lighting.py"
    args = ["--out", str(tmp_path), "--steps", "3", "--size", "16", "--views", "2", "--texture-size", "8"]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True)
    assert "texture PSNR" in done.stdout
    assert (tmp_path / "texture.png").stat().st_size > 50


def test_gaussian_image_fit_example_runs(tmp_path: Path) -> None:
    script = EXAMPLES / "fit_gaussians_to_an_image.py"
    args = ["--out", str(tmp_path), "--steps", "3", "--size", "16", "--gaussians", "20"]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True)
    assert "final PSNR" in done.stdout
    assert (tmp_path / "fit.png").stat().st_size > 50 and (tmp_path / "optimisation.gif").exists()


def test_voxel_grid_example_runs(tmp_path: Path) -> None:
    script = EXAMPLES / "fit_a_voxel_grid_to_spot.py"
    args = ["--out", str(tmp_path), "--steps", "3", "--size", "16", "--resolution", "8", "--rays", "64"]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True)
    assert "psnr_held_out" in done.stdout and "voxel_iou" in done.stdout
    assert (tmp_path / "held_out_views.png").stat().st_size > 50


def test_neural_sdf_example_runs(tmp_path: Path) -> None:
    script = EXAMPLES / "fit_a_neural_sdf_to_spot.py"
    args = ["--out", str(tmp_path), "--steps", "3", "--size", "12", "--rays", "64", "--width", "16"]
    done = subprocess.run(
        [sys.executable, str(script), *args, "--resolution", "16"], capture_output=True, text=True, check=True
    )
    assert "f_score" in done.stdout and (tmp_path / "held_out_views.png").stat().st_size > 50
