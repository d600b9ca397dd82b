"""Wavefront OBJ + MTL files to and from single-mesh ``Meshes``.

Reading (``load_obj``) is a small parser of its own: one pass splits lines, then numpy converts whole
columns at once, so a 70k-face file loads in a fraction of a second. What it reads:

- ``v x y z [w]`` and ``v x y z r g b`` (colours go to ``vert_colors`` when *every* vertex has them),
  ``vt u [v [w]]``, ``vn x y z``;
- ``f`` with corners ``v``, ``v/vt``, ``v//vn``, ``v/vt/vn``, 1-based or negative (relative) indices;
  polygons are fan-triangulated (corner 0 with each consecutive pair), so a quad ``a b c d`` gives
  ``(a, b, c), (a, c, d)``;
- ``mtllib`` (several files, each resolved inside the OBJ's folder) and ``usemtl``; ``o``, ``g``, ``s``,
  ``l``, ``p`` and other statements are ignored.

Materials: ``materials[0]`` lists every MTL material in definition order (the first definition of a name
wins); faces before any ``usemtl``, or whose ``usemtl`` names no known material (a warning says so), use a
``SurfaceMaterial`` named ``"default"`` (white diffuse, black specular, shininess 1) appended at the end
when some face needs it. A file with neither ``usemtl`` nor ``mtllib`` has no materials and
``face_materials`` is None.

UVs keep the file's own indexing: ``uvs`` holds every ``vt`` and ``face_uvs[f, k]`` is the ``vt`` of
corner ``k`` of triangle ``f``. A face whose corners mix with and without ``vt`` is an error; when only
some faces have ``vt``, the others get index of an extra ``(0, 0)`` row, with a warning.

Vertex normals go to ``vert_normals`` when every referenced vertex is used with one consistent normal
(equal ``vn`` values); vertices no face uses get a zero normal. Otherwise the ``vn`` data is ignored with
a warning.

Limits: malformed input raises ``MeshFileError`` with the file and line; ``max_elements`` caps the count
of each of ``v``/``vt``/``vn``/``f`` and of face corners, checked every 4 MB of text while reading, and
lines longer than ``MAX_LINE_BYTES`` are refused, so memory stays bounded whatever the file declares.
``mtllib`` and ``map_Kd`` files must lie inside the OBJ's (respectively the MTL's) folder: absolute paths,
``..`` and symbolic links that lead out of it are refused.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gradiance.core.meshes import Meshes, SurfaceMaterial

from .errors import MeshFileError
from .mtl import Mtl, check_writable, parse_mtl, write_mtl

DEFAULT_MAX_ELEMENTS = 50_000_000
MAX_LINE_BYTES = 16 * 1024 * 1024  # longer lines are refused (a polygon of ~500k corners)
_ABSENT = np.iinfo(np.int64).min  # marks a corner without vt or vn while parsing


@dataclass
class _ObjRecords:
    """Raw statements of an OBJ file, grouped by kind, with their 1-based line numbers."""

    v: list[list[str]] = field(default_factory=list)
    v_line: list[int] = field(default_factory=list)
    vt: list[list[str]] = field(default_factory=list)
    vt_line: list[int] = field(default_factory=list)
    vn: list[list[str]] = field(default_factory=list)
    vn_line: list[int] = field(default_factory=list)
    f: list[list[str]] = field(default_factory=list)
    f_line: list[int] = field(default_factory=list)
    usemtl: list[tuple[int, str, int]] = field(default_factory=list)  # (first face, name, line)
    mtllib: list[tuple[str, int]] = field(default_factory=list)  # (rest of line, line)


def _lines(path: Path) -> Iterator[list[str]]:
    """The file's lines in batches of about 4 MB, never holding a line longer than ``MAX_LINE_BYTES``."""
    with open(path, "rb") as fh:
        carry = b""
        while block := fh.read(1 << 22):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            if len(carry) > MAX_LINE_BYTES:
                raise MeshFileError(path, f"a line is longer than {MAX_LINE_BYTES} bytes")
            if cut:
                lines = block[:cut].decode("utf-8", errors="replace").split("\n")[:-1]
                if max(map(len, lines)) > MAX_LINE_BYTES:  # characters <= bytes
                    raise MeshFileError(path, f"a line is longer than {MAX_LINE_BYTES} bytes")
                yield lines
        if carry:
            yield [carry.decode("utf-8", errors="replace")]


def _read_records(path: Path, max_elements: int) -> _ObjRecords:
    rec = _ObjRecords()
    tables = {
        "v": (rec.v, rec.v_line),
        "vt": (rec.vt, rec.vt_line),
        "vn": (rec.vn, rec.vn_line),
        "f": (rec.f, rec.f_line),
    }
    lineno, corners, counted = 0, 0, 0
    for batch in _lines(path):
        for raw in batch:
            lineno += 1
            parts = (raw.split("#", 1)[0] if "#" in raw else raw).split()
            if not parts:
                continue
            table = tables.get(parts[0])
            if table is not None:
                table[0].append(parts[1:])
                table[1].append(lineno)
            elif parts[0] == "usemtl":
                rec.usemtl.append((len(rec.f), " ".join(parts[1:]), lineno))
            elif parts[0] == "mtllib":
                rec.mtllib.append((" ".join(parts[1:]), lineno))
        corners += sum(map(len, rec.f[counted:]))
        counted = len(rec.f)
        sizes = {f"'{k}' statements": len(rows) for k, (rows, _) in tables.items()}
        for what, n in {**sizes, "face corners": corners}.items():
            if n > max_elements:
                raise MeshFileError(
                    path, f"more than max_elements={max_elements} {what} (counted by line {lineno})"
                )
    return rec


def _bad_number(path: Path, rows: Sequence[Sequence[str]], lines: Sequence[int], what: str) -> MeshFileError:
    """The error for the first row that does not parse as floats (called only on failure)."""
    for row, line in zip(rows, lines, strict=True):
        for tok in row:
            try:
                float(tok)
            except ValueError:
                return MeshFileError(path, f"non-numeric value {tok!r} in a '{what}' statement", line)
    return MeshFileError(path, f"cannot parse the '{what}' statements")


def _floats(
    path: Path, rows: list[list[str]], lines: list[int], what: str, counts: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Parse rows of floats whose lengths must lie in ``counts``.

    Returns ``(values, lengths)``: ``values`` is ``(R, max(counts))`` float64 padded with 0, ``lengths``
    ``(R,)`` the number of values on each row.
    """
    width = max(counts)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad = ~np.isin(lengths, counts)
    if bad.any():
        i = int(np.argmax(bad))
        raise MeshFileError(
            path,
            f"'{what}' needs {' or '.join(map(str, counts))} numbers, got {lengths[i]}",
            lines[i],
        )
    out = np.zeros((len(rows), width))
    for n in np.unique(lengths).tolist():
        idx = np.flatnonzero(lengths == n)
        group = rows if len(idx) == len(rows) else [rows[i] for i in idx.tolist()]
        try:
            flat = np.fromstring(" ".join(itertools.chain.from_iterable(group)), dtype=np.float64, sep=" ")
        except ValueError:
            raise _bad_number(path, group, [lines[i] for i in idx.tolist()], what) from None
        out[idx, :n] = flat.reshape(len(idx), n)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        raise MeshFileError(path, f"non-finite value in a '{what}' statement", lines[int(np.argmin(finite))])
    return out, lengths


@dataclass
class _Corners:
    """Per-corner indices (0-based; -1 where absent) and per-face corner counts."""

    counts: np.ndarray  # (F_poly,) corners per polygon
    v: np.ndarray  # (K,)
    vt: np.ndarray  # (K,)
    vn: np.ndarray  # (K,)


def _resolve(
    path: Path, raw: np.ndarray, present: np.ndarray, face_of: np.ndarray, rec: _ObjRecords, what: str
) -> np.ndarray:
    """0-based indices from 1-based or negative (relative) OBJ indices ``raw`` (``(K,)``, one per corner);
    -1 where ``present`` is False. A negative index counts back from the last ``what`` statement before
    the face's line."""
    declared = {"v": rec.v_line, "vt": rec.vt_line, "vn": rec.vn_line}[what]
    f_line = np.asarray(rec.f_line, dtype=np.int64)[face_of]
    before = np.searchsorted(np.asarray(declared, dtype=np.int64), f_line)  # statements so far
    idx = np.where(raw > 0, raw - 1, before + raw)
    total = len(declared)
    bad = present & ((raw == 0) | (idx < 0) | (idx >= total))
    if bad.any():
        j = int(np.argmax(bad))
        if raw[j] == 0:
            raise MeshFileError(path, f"{what} index 0 in a face (OBJ indices start at 1)", int(f_line[j]))
        raise MeshFileError(
            path, f"{what} index {int(raw[j])} is out of range ({total} '{what}' statements)", int(f_line[j])
        )
    return np.where(present, idx, -1)


def _uniform_columns(corners: list[str]) -> list[np.ndarray | None] | None:
    """Fast path for files whose corners all share one layout (``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``):
    the raw ``(K,)`` int64 columns ``[v, vt, vn]`` (None where absent), or None for anything else, which
    the general path then parses (and reports, if it is malformed)."""
    n = len(corners)
    joined = " ".join(corners)
    slashes, doubles = joined.count("/"), joined.count("//")
    layouts = {(0, 0): (0,), (n, 0): (0, 1), (2 * n, 0): (0, 1, 2), (2 * n, n): (0, 2)}
    layout = layouts.get((slashes, doubles))
    if layout is None or not n:
        return None
    per = slashes // n
    if per and (np.fromiter(map(str.count, corners, itertools.repeat("/")), np.int64, n) != per).any():
        return None
    try:
        values = np.fromstring(joined.replace("/", " "), dtype=np.int64, sep=" ")
    except ValueError:
        return None
    if values.size != n * len(layout):
        return None
    values = values.reshape(n, len(layout))
    cols: list[np.ndarray | None] = [None, None, None]
    for j, k in enumerate(layout):
        cols[k] = values[:, j]
    return cols


def _general_columns(path: Path, corners: list[str], lines: np.ndarray) -> list[np.ndarray | None]:
    """Corner by corner: the raw int64 columns ``[v, vt, vn]`` with ``_ABSENT`` where a field is empty
    (None when no corner has the field); ``lines[k]`` is corner ``k``'s line, for errors."""
    parts = [c.split("/") for c in corners]
    for k, pk in enumerate(parts):
        if len(pk) > 3 or not pk[0]:
            raise MeshFileError(path, f"malformed face corner {corners[k]!r}", int(lines[k]))
    cols: list[np.ndarray | None] = []
    for j in range(3):
        col = [pk[j] if len(pk) > j else "" for pk in parts]
        present = [k for k, c in enumerate(col) if c]
        if not present:
            cols.append(None)
            continue
        out = np.full(len(col), _ABSENT, dtype=np.int64)
        try:
            out[present] = np.array([col[k] for k in present], dtype=np.int64)
        except (ValueError, OverflowError):
            for k in present:
                if not col[k].lstrip("+-").isdigit() or len(col[k]) > 18:
                    raise MeshFileError(path, f"bad index {col[k]!r} in a face", int(lines[k])) from None
            raise
        cols.append(out)
    return cols


def _parse_corners(path: Path, rec: _ObjRecords) -> _Corners:
    counts = np.fromiter(map(len, rec.f), dtype=np.int64, count=len(rec.f))
    if (counts < 3).any():
        i = int(np.argmax(counts < 3))
        raise MeshFileError(path, f"a face needs at least 3 corners, got {counts[i]}", rec.f_line[i])
    corners = list(itertools.chain.from_iterable(rec.f))
    face_of = np.repeat(np.arange(len(rec.f)), counts)
    cols = _uniform_columns(corners)
    if cols is None:
        cols = _general_columns(path, corners, np.asarray(rec.f_line, dtype=np.int64)[face_of])
    out = []
    for col, what in zip(cols, ("v", "vt", "vn"), strict=True):
        if col is None:
            out.append(np.full(len(corners), -1, dtype=np.int64))
        else:
            out.append(_resolve(path, col, col != _ABSENT, face_of, rec, what))
    return _Corners(counts=counts, v=out[0], vt=out[1], vn=out[2])


def fan_triangles(counts: np.ndarray) -> np.ndarray:
    """``(T, 3)`` corner indices of the fan triangulation of polygons with ``counts`` corners:
    triangle ``j`` of polygon ``p`` is corners ``(s, s + j + 1, s + j + 2)``, ``s`` its first corner."""
    starts = np.cumsum(counts) - counts
    ntri = counts - 2
    s = np.repeat(starts, ntri)
    j = np.arange(int(ntri.sum())) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    return np.stack([s, s + j + 1, s + j + 2], axis=1)


def _face_uvs(path: Path, rec: _ObjRecords, c: _Corners, n_vt: int) -> np.ndarray | None:
    """Per-corner vt index (``(K,)``), or None when no face has texture coordinates."""
    has = c.vt >= 0
    if not has.any():
        return None
    per_face = np.add.reduceat(has.astype(np.int64), np.cumsum(c.counts) - c.counts)
    mixed = (per_face > 0) & (per_face < c.counts)
    if mixed.any():
        i = int(np.argmax(mixed))
        raise MeshFileError(
            path, "a face mixes corners with and without texture coordinates (vt)", rec.f_line[i]
        )
    if not has.all():
        warnings.warn(
            f"{path}: {int((per_face == 0).sum())} of {len(per_face)} faces have no texture coordinates; "
            "they get uv (0, 0)",
            stacklevel=3,
        )
        return np.where(has, c.vt, n_vt)  # n_vt: an extra (0, 0) row appended to uvs
    return c.vt


def _vert_normals(path: Path, c: _Corners, normals: np.ndarray, n_verts: int) -> np.ndarray | None:
    """``(V, 3)`` normals when every referenced vertex has one consistent normal; else None + warning."""
    has = c.vn >= 0
    if not has.any():
        return None
    if not has.all():
        warnings.warn(f"{path}: only some face corners have normals (vn); ignoring vn", stacklevel=3)
        return None
    out = np.zeros((n_verts, 3))
    values = normals[c.vn]
    out[c.v] = values
    if not (out[c.v] == values).all():
        warnings.warn(
            f"{path}: some vertices are used with different normals (vn), which a per-vertex normal "
            "cannot represent; ignoring vn (use Meshes.compute_vert_normals)",
            stacklevel=3,
        )
        return None
    return out


def _load_mtllibs(obj: Path, rec: _ObjRecords, load_textures: bool) -> list[Mtl]:
    """Every material of every ``mtllib``, in definition order; the first definition of a name wins."""
    mats: list[Mtl] = []
    seen: set[str] = set()
    textures: dict[Path, Tensor] = {}
    for rest, line in rec.mtllib:
        whole = (obj.parent / rest.replace("\\", "/")).is_file()  # one file name with spaces
        for ref in [rest] if whole else rest.split():
            for m in parse_mtl(obj, ref, line, load_textures=load_textures, textures=textures):
                if m.name not in seen:
                    seen.add(m.name)
                    mats.append(m)
    return mats


def _face_materials(
    path: Path, rec: _ObjRecords, mats: list[Mtl], n_faces: int
) -> tuple[list[Mtl], np.ndarray | None]:
    """Materials (MTL order, plus a default when some face needs one) and the material per polygon."""
    if not rec.usemtl and not mats:
        return [], None
    index = {m.name: i for i, m in enumerate(mats)}
    default_name = "default"
    while default_name in index:
        default_name = "_" + default_name
    default = len(mats)
    starts, values = [0], [default]
    unknown: set[str] = set()
    for first, name, line in rec.usemtl:
        if name not in index and name not in unknown:
            unknown.add(name)
            warnings.warn(
                f"{path}, line {line}: usemtl {name!r} names no material of the MTL files; "
                "its faces use the default material",
                stacklevel=3,
            )
        starts.append(first)
        values.append(index.get(name, default))
    per_face = np.repeat(np.asarray(values, dtype=np.int64), np.diff(np.asarray([*starts, n_faces])))
    if (per_face == default).any():
        mats = [*mats, Mtl(name=default_name)]
    return mats, per_face


# ------------------------------------------------------------------------------------------------ load
def load_obj(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    load_textures: bool = True,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Meshes:
    """Read an OBJ file (and its MTL files and textures) as one mesh (see the module docstring).

    Args:
        path: the ``.obj`` file.
        device: where the tensors live (default CPU).
        dtype: float dtype of positions, colours, normals, UVs and material tensors.
        load_textures: read ``map_Kd`` images into ``SurfaceMaterial.diffuse_map`` (``(H, W, C)`` in
            [0, 1], row 0 = top of the image); when False the maps are not opened (``diffuse_map`` None).
        max_elements: refuse files with more ``v``, ``vt``, ``vn`` or ``f`` statements, or face corners,
            than this (checked while reading, before any array is built).

    Returns:
        A single-mesh ``Meshes``: ``verts (V, 3)``, ``faces (F, 3)`` (polygons fan-triangulated, in file
        order), optional ``vert_colors (V, 3)``, ``vert_normals (V, 3)``, ``uvs (T, 2)`` with
        ``face_uvs (F, 3)``, and ``materials`` with ``face_materials (F,)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MeshFileError: malformed content, indices out of range, unsafe or missing referenced files.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"OBJ file {p} not found")
    rec = _read_records(p, max_elements)
    v, v_len = _floats(p, rec.v, rec.v_line, "v", (3, 4, 6))
    colors = v[:, 3:6] if len(v_len) and (v_len == 6).all() else None
    if colors is None and (v_len == 6).any():
        warnings.warn(f"{p}: only some vertices have colours; ignoring vertex colours", stacklevel=2)
    vt, _ = _floats(p, rec.vt, rec.vt_line, "vt", (1, 2, 3))
    vn, _ = _floats(p, rec.vn, rec.vn_line, "vn", (3,))
    corners = _parse_corners(p, rec)
    tri = fan_triangles(corners.counts)
    corner_uv = _face_uvs(p, rec, corners, len(vt))
    normals = _vert_normals(p, corners, vn, len(v))
    mats, poly_mat = _face_materials(p, rec, _load_mtllibs(p, rec, load_textures), len(rec.f))

    def t(a: np.ndarray, floating: bool = True) -> Tensor:
        out = torch.from_numpy(np.ascontiguousarray(a))
        return out.to(device=device, dtype=dtype if floating else torch.int64)

    extra: dict[str, Tensor | list[SurfaceMaterial] | None] = {}
    if colors is not None:
        extra["vert_colors"] = t(colors)
    if normals is not None:
        extra["vert_normals"] = t(normals)
    if corner_uv is not None:
        uv = vt[:, :2] if (corner_uv < len(vt)).all() else np.concatenate([vt[:, :2], np.zeros((1, 2))])
        extra["uvs"], extra["face_uvs"] = t(uv), t(corner_uv[tri], False)
    if poly_mat is not None:
        extra["face_materials"] = t(np.repeat(poly_mat, corners.counts - 2), False)
        extra["materials"] = [
            SurfaceMaterial(
                name=m.name,
                diffuse=torch.tensor(m.kd, device=device, dtype=dtype),
                specular=torch.tensor(m.ks, device=device, dtype=dtype),
                shininess=torch.tensor(m.ns, device=device, dtype=dtype),
                diffuse_map=None if m.texture is None else m.texture.to(device=device, dtype=dtype),
            )
            for m in mats
        ]
    return Meshes.single(t(v[:, :3]), t(corners.v[tri], False), **extra)


# ------------------------------------------------------------------------------------------------ save
def _face_rows(m: Meshes) -> tuple[np.ndarray, str]:
    """``(F, 3 * k)`` 1-based corner indices and the ``f`` line format (``v``, ``v/vt``, ``v//vn`` or
    ``v/vt/vn`` corners; normals share the vertex's index)."""
    idx = [m.faces.numpy() + 1]
    corner = "%d"
    if m.face_uvs is not None:
        idx.append(m.face_uvs.numpy() + 1)
        corner = "%d/%d"
    if m.vert_normals is not None:
        idx.append(m.faces.numpy() + 1)
        corner = "%d/%d/%d" if corner == "%d/%d" else "%d//%d"
    return np.stack(idx, axis=2).reshape(len(m.faces), -1), "f " + " ".join([corner] * 3)


def save_obj(path: str | os.PathLike[str], meshes: Meshes, *, save_textures: bool = True) -> None:
    """Write a single mesh as OBJ, with an MTL file and PNG textures next to it when it has materials.

    Writes ``v`` (``x y z [r g b]`` when ``vert_colors`` has 3 channels), ``vt`` (from ``uvs``), ``vn`` (from
    ``vert_normals``, one per vertex), and ``f`` lines with ``v/vt/vn`` corners in face order, with a
    ``usemtl`` wherever the material changes. Materials go to ``<stem>.mtl`` (``Kd``, ``Ks``, ``Ns`` and,
    when ``save_textures``, ``map_Kd <stem>_mat<k>.png`` for material ``k`` with a ``diffuse_map``, saved
    beside the OBJ as 8-bit PNG). ``load_obj`` of the result gives back the same vertices, faces, UVs per
    corner, materials (textures to 1/255) and face materials. Numbers are written with 9 significant
    digits (17 for float64), which round-trips exactly.

    Args:
        path: destination ``.obj`` file; the MTL and PNG files go to the same folder.
        meshes: a ``Meshes`` holding exactly one mesh (index a batch with ``meshes[i]``).
        save_textures: write ``diffuse_map`` textures as PNG files and reference them with ``map_Kd``.

    Raises:
        ValueError: ``meshes`` is not a single mesh, material names are not unique or not writable, or a
            texture has values outside [0, 1] (checked before anything is written).
    """
    if not isinstance(meshes, Meshes):
        raise TypeError(f"meshes must be a Meshes, got {type(meshes).__name__}")
    if len(meshes) != 1:
        raise ValueError(
            f"meshes must hold exactly one mesh to save as OBJ, got {len(meshes)}; save meshes[i]"
        )
    p = Path(path)
    m = meshes.detach().to("cpu")
    mats = m.materials[0]
    check_writable(mats, save_textures)
    fmt = "%.17g" if m.dtype == torch.float64 else "%.9g"
    v = m.verts.numpy()
    if m.vert_colors is not None and m.vert_colors.shape[1] == 3:
        v = np.concatenate([v, m.vert_colors.numpy()], axis=1)
    elif m.vert_colors is not None:
        warnings.warn("save_obj writes only 3-channel vert_colors; skipping them", stacklevel=2)
    faces, face_fmt = _face_rows(m)
    fm = m.face_materials.numpy() if (mats and m.face_materials is not None) else np.zeros(0, np.int64)
    cuts = [0, *(np.flatnonzero(np.diff(fm)) + 1).tolist(), len(faces)] if len(fm) else [0, len(faces)]
    with open(p, "w", encoding="utf-8") as fh:
        fh.write("# written by gradiance\n" + (f"mtllib {p.stem}.mtl\n" if mats else ""))
        np.savetxt(fh, v, fmt=" ".join(["v"] + [fmt] * v.shape[1]))
        if m.uvs is not None:
            np.savetxt(fh, m.uvs.numpy(), fmt=f"vt {fmt} {fmt}")
        if m.vert_normals is not None:
            np.savetxt(fh, m.vert_normals.numpy(), fmt=f"vn {fmt} {fmt} {fmt}")
        for a, b in itertools.pairwise(cuts):
            if len(fm):
                fh.write(f"usemtl {mats[int(fm[a])].name}\n")
            if b > a:
                np.savetxt(fh, faces[a:b], fmt=face_fmt)
    if mats:
        write_mtl(p, mats, save_textures)
