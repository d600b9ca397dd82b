"""The ``gradiance`` command: help, info, demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gradiance.cli import info_lines, main


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "info" in out and "demo" in out


def test_info_lists_versions_devices_and_backends() -> None:
    lines = info_lines()
    text = "\n".join(lines)
    assert lines[0].startswith("gradiance ")
    assert "torch" in text and "cuda" in text
    assert "backend  torch: available" in text
    assert "backend  triton:" in text


def test_console_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gradiance.cli", "info"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("gradiance ")


def test_unknown_command_fails() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_demo_writes_pictures_and_page(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path), "--size", "64", "--tiny"]) == 0
    index = tmp_path / "index.html"
    page = index.read_text()
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(pngs) == 18 and (tmp_path / "reconstruction.gif").stat().st_size > 100
    for name in pngs:
        assert f"src='{name}'" in page
        assert (tmp_path / name).stat().st_size > 100
