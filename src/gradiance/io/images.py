"""Image files to and from float tensors, through Pillow.

Images are channels-last ``(H, W, C)`` float in [0, 1] with row 0 the top of the image (DESIGN.md
section 2); values are stored as they are in the file (no sRGB <-> linear conversion).

Safety: Pillow's decompression-bomb check stays on, and on top of it ``load_image`` refuses images of more
than ``MAX_IMAGE_PIXELS`` pixels (``max_pixels`` raises the cap per call) by reading only the header.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .errors import MeshFileError

#: The largest image ``load_image`` reads by default: 8192 x 8192 pixels (1 GiB as float32 RGBA).
MAX_IMAGE_PIXELS = 8192 * 8192

_BITS16 = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_array(img: Image.Image) -> np.ndarray:
    """``(H, W, C)`` float32 array in [0, 1] from any Pillow image mode; alpha is kept."""
    mode = img.mode
    if mode in _BITS16 or mode == "I":
        arr = np.asarray(img, dtype=np.float64) / 65535.0
        return arr[..., None].astype(np.float32)
    if mode == "F":
        return np.asarray(img, dtype=np.float32)[..., None]
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.float32)[..., None] / 255.0
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "RGBa", "PA"):
        img = img.convert("RGBA")
    elif mode not in ("RGB", "RGBA"):
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def load_image(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Tensor:
    """Read an image file as a float tensor.

    Args:
        path: any format Pillow reads (PNG, JPEG, TIFF, BMP, ...).
        device: where the result lives (default CPU).
        dtype: float dtype of the result.
        max_pixels: refuse images with more than this many pixels (checked from the header, before
            decoding). Pillow's own decompression-bomb limit applies as well.

    Returns:
        ``(H, W, C)`` tensor in [0, 1]; ``image[i, j]`` is the pixel at row ``i`` (0 = top), column ``j``.
        ``C`` is 1 (grey), 3 (RGB) or 4 (RGBA: alpha is kept; grey+alpha and palette images with
        transparency become RGBA). 16-bit grey is divided by 65535; 32-bit float images are returned
        as stored.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MeshFileError: the file is not a readable image, is too large, or is truncated.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file {p} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                return image_from_pil(img, source=p, max_pixels=max_pixels, device=device, dtype=dtype)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise MeshFileError(p, f"refusing a possible decompression bomb: {e}") from e
    except MeshFileError:
        raise
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's errors for unreadable/truncated files
        raise MeshFileError(p, f"cannot read the image: {e}") from e


def image_from_pil(
    img: Image.Image,
    *,
    source: str | os.PathLike[str],
    max_pixels: int = MAX_IMAGE_PIXELS,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``(H, W, C)`` float tensor in [0, 1] from an opened Pillow image (channels as ``load_image``);
    images of more than ``max_pixels`` pixels raise ``MeshFileError`` naming ``source`` before decoding."""
    w, h = img.size
    if w * h > max_pixels:
        raise MeshFileError(
            source,
            f"image is {w}x{h} = {w * h} pixels, more than max_pixels={max_pixels} "
            "(pass a larger max_pixels to load it)",
        )
    img.load()
    arr = _to_array(img)
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device=device, dtype=dtype)


def save_image(path: str | os.PathLike[str], image: Tensor, *, clamp: bool = False) -> None:
    """Write a float image to a file (format from the extension; PNG keeps alpha losslessly).

    Args:
        path: destination file.
        image: ``(H, W, C)`` or ``(1, H, W, C)`` float tensor with ``C`` in {1, 3, 4} (grey, RGB,
            RGBA) and values in [0, 1]; it is quantised to 8 bits by rounding ``image * 255``.
        clamp: when False (default) values outside [0, 1] raise ``ValueError``; when True they are
            clamped. NaN always raises.

    Raises:
        TypeError: ``image`` is not a float tensor.
        ValueError: wrong shape, NaN, or values outside [0, 1] without ``clamp``.
    """
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a float tensor with values in [0, 1], got {image.dtype}")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image must have shape (H, W, C) or (1, H, W, C) with C in 1, 3, 4, got {tuple(image.shape)}"
        )
    arr = image.detach().to("cpu", torch.float64).numpy()
    if np.isnan(arr).any():
        raise ValueError("image contains NaN values")
    if clamp:
        arr = np.clip(arr, 0.0, 1.0)
    elif arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(
            f"image values must lie in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}]; "
            "pass clamp=True to clamp them"
        )
    u8 = np.rint(arr * 255.0).astype(np.uint8)
    pil = Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)
    pil.save(Path(path))
