"""Image files to and from float tensors: round trips, modes, bad values and hostile files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradiance.io import MeshFileError, load_image, save_image


def _grid(h: int, w: int, c: int, seed: int = 0) -> torch.Tensor:
    """Values on the 8-bit grid so that PNG round trips are exact."""
    return torch.randint(0, 256, (h, w, c), generator=torch.Generator().manual_seed(seed)).float() / 255


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_round_trip(tmp_path: Path, channels: int) -> None:
    image = _grid(5, 7, channels)
    save_image(tmp_path / "a.png", image)
    back = load_image(tmp_path / "a.png")
    assert back.shape == (5, 7, channels) and back.dtype == torch.float32
    assert torch.equal(back, image)


def test_shape_batched_and_dtype(tmp_path: Path) -> None:
    image = _grid(4, 3, 3).double()
    save_image(tmp_path / "b.png", image[None])
    back = load_image(tmp_path / "b.png", dtype=torch.float64)
    assert back.dtype == torch.float64 and torch.equal(back, image)
    # row 0 is the top of the image
    arr = np.zeros((2, 1, 3), dtype=np.uint8)
    arr[0] = 255
    Image.fromarray(arr).save(tmp_path / "top.png")
    assert load_image(tmp_path / "top.png")[:, 0, 0].tolist() == [1.0, 0.0]


def test_modes(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(tmp_path / "g16.png")
    assert load_image(tmp_path / "g16.png").flatten().tolist() == [0.0, 1.0]
    Image.fromarray(np.zeros((2, 2, 2), dtype=np.uint8), mode="LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").shape == (2, 2, 4)
    pal = Image.new("P", (2, 2))
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    assert load_image(tmp_path / "p.png").shape == (2, 2, 4)
    Image.new("RGB", (3, 2), (255, 0, 0)).save(tmp_path / "c.jpg")
    assert load_image(tmp_path / "c.jpg").shape == (2, 3, 3)


def test_exception_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"image values must lie in \[0, 1\]"):
        save_image(tmp_path / "x.png", torch.full((2, 2, 3), 1.5))
    with pytest.raises(ValueError, match="image values"):
        save_image(tmp_path / "x.png", torch.full((2, 2, 3), -0.1))
    with pytest.raises(ValueError, match="image contains NaN"):
        save_image(tmp_path / "x.png", torch.full((2, 2, 3), float("nan")), clamp=True)
    with pytest.raises(ValueError, match=r"image must have shape"):
        save_image(tmp_path / "x.png", torch.rand(2, 2, 2))
    with pytest.raises(ValueError, match=r"image must have shape"):
        save_image(tmp_path / "x.png", torch.rand(2, 2, 2, 3))
    with pytest.raises(TypeError, match="image must be a float tensor"):
        save_image(tmp_path / "x.png", torch.ones(2, 2, 3, dtype=torch.uint8))
    assert not (tmp_path / "x.png").exists()
    save_image(tmp_path / "x.png", torch.tensor([[[1.5, -0.5, 0.5]]]), clamp=True)
    assert load_image(tmp_path / "x.png").flatten().tolist() == pytest.approx([1.0, 0.0, 128 / 255])


def test_exception_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(MeshFileError, match="cannot read the image") as info:
        load_image(tmp_path / "junk.png")
    assert str(info.value).startswith(str(tmp_path / "junk.png"))
    Image.new("L", (64, 64)).save(tmp_path / "big.png")
    with pytest.raises(MeshFileError, match="more than max_pixels=1000"):
        load_image(tmp_path / "big.png", max_pixels=1000)
    # a truncated file
    data = (tmp_path / "big.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MeshFileError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png")
