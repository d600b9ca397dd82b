"""The error every loader raises for a malformed or hostile file, and the path check behind it.

``MeshFileError`` is a ``ValueError`` whose message always starts with the file's path (and the line number
when one is known), then says what is wrong, e.g. ``"scene.obj, line 12: face index 40 is out of range
(30 vertices)"``. Catching ``ValueError`` therefore also catches it.
"""

from __future__ import annotations

import os
from pathlib import Path


class MeshFileError(ValueError):
    """A mesh, material, point-cloud or image file that cannot be read safely.

    Attributes:
        path: the file at fault.
        line: the 1-based line number in that file, or None when the fault has no single line.
        reason: what is wrong, without the location.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}" if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {reason}")


def resolve_inside(
    folder: Path,
    reference: str,
    *,
    source: str | os.PathLike[str],
    line: int | None = None,
    what: str = "file",
    must_exist: bool = True,
) -> Path:
    """Resolve a file name written inside ``source`` (an OBJ's ``mtllib``, an MTL's ``map_Kd``, a glTF
    ``uri``) against ``folder``, refusing anything that leaves ``folder``.

    Absolute paths, drive letters, ``..`` components that climb out of ``folder`` and symbolic links whose
    target lies outside it are all refused with ``MeshFileError`` naming ``source`` and ``line``. Backslashes
    (written by Windows exporters) are read as folder separators.

    Returns:
        the resolved absolute path, which lies inside ``folder.resolve()``.
    """
    ref = reference.strip().replace("\\", "/")
    if not ref:
        raise MeshFileError(source, f"empty {what} name", line)
    if "\x00" in ref:
        raise MeshFileError(source, f"{what} name {reference!r} contains a NUL character", line)
    if ref.startswith("/") or Path(ref).is_absolute() or (len(ref) > 1 and ref[1] == ":"):
        raise MeshFileError(
            source,
            f"refusing absolute {what} path {reference!r}: referenced files must lie in {folder}",
            line,
        )
    base = folder.resolve()
    target = (base / ref).resolve()
    if not target.is_relative_to(base):
        raise MeshFileError(
            source,
            f"refusing {what} path {reference!r}: it resolves to {target}, outside {base} "
            "(via '..' or a symbolic link)",
            line,
        )
    if must_exist and not target.is_file():
        raise MeshFileError(source, f"{what} {reference!r} not found (looked for {target})", line)
    return target
