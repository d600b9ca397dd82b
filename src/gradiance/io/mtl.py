"""Wavefront MTL material libraries (read by ``load_obj``, written by ``save_obj``).

Read: ``newmtl``, ``Kd``, ``Ks`` (1 or 3 numbers), ``Ns`` and ``map_Kd``; every other statement is
ignored. ``map_Kd`` options that only change filtering or blending (``-blendu``, ``-blendv``, ``-bm``,
``-boost``, ``-cc``, ``-clamp``, ``-imfchan``, ``-mm``, ``-texres``) are skipped with a warning; options
that move texture coordinates (``-o``, ``-s``, ``-t``) are accepted only with identity values and refused
otherwise, since ``SurfaceMaterial`` has no UV transform. Texture files must lie inside the MTL file's
folder.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from gradiance.core.meshes import SurfaceMaterial

from .errors import MeshFileError, resolve_inside
from .images import load_image, save_image


@dataclass
class Mtl:
    """One ``newmtl`` block: ``kd``/``ks`` RGB, ``ns`` Phong exponent, ``texture`` (H, W, C) or None."""

    name: str
    kd: tuple[float, ...] = (1.0, 1.0, 1.0)
    ks: tuple[float, ...] = (0.0, 0.0, 0.0)
    ns: float = 1.0
    texture: Tensor | None = None


# map_Kd options that are skipped, with the number of values after them.
_SKIPPED = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1,
            "-mm": 2, "-texres": 1}  # fmt: skip
# Options that move texture coordinates (1 to 3 values) and their identity value.
_UV_OPTIONS = {"-o": 0.0, "-s": 1.0, "-t": 0.0}


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def map_file_name(mtl: Path, args: list[str], line: int) -> str:
    """The file name of a ``map_Kd`` statement (``args`` after the keyword), skipping its options."""
    i, skipped = 0, []
    while i < len(args) - 1 and args[i].startswith("-"):
        opt = args[i]
        if opt in _UV_OPTIONS:
            n = 0
            while n < 3 and i + 1 + n < len(args) - 1 and _is_number(args[i + 1 + n]):
                n += 1
            if any(float(a) != _UV_OPTIONS[opt] for a in args[i + 1 : i + 1 + n]):
                raise MeshFileError(
                    mtl,
                    f"map_Kd option {' '.join(args[i : i + 1 + n])} changes texture coordinates, which "
                    "SurfaceMaterial cannot represent; bake it into the UVs or the image",
                    line,
                )
        elif opt in _SKIPPED:
            n = _SKIPPED[opt]
            skipped.append(" ".join(args[i : i + 1 + n]))
        else:
            raise MeshFileError(mtl, f"unknown map_Kd option {opt!r}", line)
        i += 1 + n
    if i >= len(args):
        raise MeshFileError(mtl, "map_Kd names no file", line)
    if skipped:
        warnings.warn(f"{mtl}, line {line}: ignoring map_Kd options {skipped}", stacklevel=5)
    return " ".join(args[i:])


def _numbers(mtl: Path, args: list[str], line: int, key: str, counts: tuple[int, ...]) -> list[float]:
    want = " or ".join(map(str, counts))
    if len(args) not in counts or not all(_is_number(a) for a in args):
        raise MeshFileError(mtl, f"{key} needs {want} numbers, got {args}", line)
    values = [float(a) for a in args]
    if not all(math.isfinite(x) for x in values):
        raise MeshFileError(mtl, f"{key} needs finite numbers, got {args}", line)
    return values


def parse_mtl(
    source: Path, ref: str, line: int, *, load_textures: bool, textures: dict[Path, Tensor]
) -> list[Mtl]:
    """Read the MTL file ``ref`` that ``mtllib`` names on ``line`` of ``source`` (resolved inside
    ``source``'s folder); ``textures`` caches images by resolved path across calls."""
    mtl = resolve_inside(source.parent, ref, source=source, line=line, what="material library")
    mats: list[Mtl] = []
    with open(mtl, encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            parts = raw.split("#", 1)[0].split() if "#" in raw else raw.split()
            if not parts or parts[0] not in ("newmtl", "Kd", "Ks", "Ns", "map_Kd"):
                continue
            key = parts[0]
            if key == "newmtl":
                if len(parts) < 2:
                    raise MeshFileError(mtl, "newmtl without a name", lineno)
                mats.append(Mtl(name=" ".join(parts[1:])))
                continue
            if not mats:
                raise MeshFileError(mtl, f"{key} before any newmtl", lineno)
            cur = mats[-1]
            if key in ("Kd", "Ks"):
                rgb = _numbers(mtl, parts[1:], lineno, key, (1, 3))
                if key == "Kd":
                    cur.kd = tuple(rgb * 3 if len(rgb) == 1 else rgb)
                else:
                    cur.ks = tuple(rgb * 3 if len(rgb) == 1 else rgb)
            elif key == "Ns":
                cur.ns = _numbers(mtl, parts[1:], lineno, key, (1,))[0]
            elif load_textures:
                name = map_file_name(mtl, parts[1:], lineno)
                img = resolve_inside(mtl.parent, name, source=mtl, line=lineno, what="texture")
                if img not in textures:
                    try:
                        textures[img] = load_image(img)
                    except MeshFileError as e:
                        raise MeshFileError(mtl, f"cannot load texture {name!r}: {e}", lineno) from e
                cur.texture = textures[img]
    return mats


def check_writable(mats: Sequence[SurfaceMaterial], save_textures: bool) -> None:
    """Raise ``ValueError`` before anything is written when ``mats`` cannot be saved to MTL."""
    names = [m.name for m in mats]
    for k, name in enumerate(names):
        if not name.strip() or name != name.strip() or any(c in name for c in "\n\r#"):
            raise ValueError(
                f"meshes.materials[0][{k}].name {name!r} cannot be written to MTL: it must be non-empty, "
                "without line breaks, '#' or leading/trailing spaces"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"material names must be unique to be saved as OBJ/MTL, got {names}")
    for k, m in enumerate(mats):
        dm = m.diffuse_map
        if save_textures and dm is not None:
            if dm.shape[-1] not in (1, 3, 4):
                raise ValueError(f"meshes.materials[0][{k}].diffuse_map must have 1, 3 or 4 channels")
            if not bool(((dm >= 0) & (dm <= 1)).all()):
                raise ValueError(f"meshes.materials[0][{k}].diffuse_map has values outside [0, 1]")


def write_mtl(obj: Path, mats: Sequence[SurfaceMaterial], save_textures: bool) -> None:
    """Write ``<obj stem>.mtl`` next to ``obj`` and, when ``save_textures``, ``<stem>_mat<k>.png`` for
    every material ``k`` with a ``diffuse_map``."""
    lines = ["# written by gradiance"]
    for k, m in enumerate(mats):
        lines.append(f"newmtl {m.name}")
        lines.append("Kd " + " ".join(f"{x:.9g}" for x in m.diffuse.tolist()))
        lines.append("Ks " + " ".join(f"{x:.9g}" for x in m.specular.tolist()))
        lines.append(f"Ns {float(m.shininess):.9g}")
        if save_textures and m.diffuse_map is not None:
            name = f"{obj.stem}_mat{k}.png"
            save_image(obj.parent / name, m.diffuse_map)
            lines.append(f"map_Kd {name}")
    (obj.parent / f"{obj.stem}.mtl").write_text("\n".join(lines) + "\n", encoding="utf-8")
