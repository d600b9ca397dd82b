"""Stanford PLY files (ASCII, binary little- and big-endian) to and from ``Meshes`` and ``PointClouds``.

The header is read and validated first (at most ``MAX_HEADER_BYTES``): every element count must be at
most ``max_elements`` and, with the smallest possible row size, fit in the bytes that follow the header,
so a tiny file declaring 10^12 vertices is refused before anything is allocated. The data is then read
with numpy (one ``frombuffer`` per element when list lengths are constant, a row loop otherwise). The
parser is our own rather than trimesh's because trimesh reorders the triangles of quads, cannot read
binary files whose faces have different corner counts, and follows ``TextureFile`` comments to other
files.

What is read from the ``vertex`` element (other elements than ``vertex`` and ``face`` are ignored):

- ``x, y, z`` -> ``verts`` / ``points``; ``nx, ny, nz`` -> ``vert_normals`` / ``normals``;
- ``red, green, blue[, alpha]`` -> ``vert_colors`` / ``colors``, scaled to [0, 1] from ``uchar`` (/255)
  or ``ushort`` (/65535), float colours kept as stored;
- point clouds only: ``radius`` -> ``radii``, or, when there is no ``radius``, a scalar ``scale``
  (3D Gaussian files' ``scale_0..2`` are log-scales of an ellipsoid and are *not* radii: they stay
  features);
- meshes only: ``u, v`` / ``s, t`` / ``texture_u, texture_v`` -> per-vertex ``uvs`` with
  ``face_uvs = faces``; a face list ``texcoord`` with 2 numbers per corner gives per-corner UVs instead;
- every other scalar vertex property -> ``features[name]`` / ``vert_features[name]`` as ``(N, 1)``.

Faces (``vertex_indices`` or ``vertex_index`` lists) are fan-triangulated in file order, as in
``load_obj``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gradiance.core.meshes import Meshes
from gradiance.core.pointclouds import PointClouds

from .errors import MeshFileError
from .obj import DEFAULT_MAX_ELEMENTS, fan_triangles

MAX_HEADER_BYTES = 64 * 1024

_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}  # fmt: skip
_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
_COLORS = ("red", "green", "blue", "alpha")
_UV_NAMES = (("u", "v"), ("s", "t"), ("texture_u", "texture_v"))


@dataclass
class _Prop:
    name: str
    type: str  # numpy type code without byte order, e.g. "f4"
    count_type: str | None = None  # for list properties, the type of the length prefix


@dataclass
class _Element:
    name: str
    count: int
    props: list[_Prop] = field(default_factory=list)


@dataclass
class _Header:
    fmt: str  # "", "<" or ">"
    elements: list[_Element]
    size: int  # bytes up to and including the end_header line


def _read_header(path: Path, max_elements: int) -> _Header:
    """Parse and check the header without reading any data."""
    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER_BYTES)
    end = head.find(b"end_header")
    eol = head.find(b"\n", end)
    if end < 0 or eol < 0:
        raise MeshFileError(
            path, f"no 'end_header' line in the first {MAX_HEADER_BYTES} bytes: not a PLY file"
        )
    lines = head[:eol].decode("ascii", errors="replace").splitlines()
    if not lines or lines[0].strip() != "ply":
        raise MeshFileError(path, "does not start with 'ply': not a PLY file", 1)
    fmt, elements = None, []
    for no, line in enumerate(lines[1:], 2):
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info", "end_header"):
            continue
        if tok[0] == "format" and len(tok) == 3 and tok[1] in _FORMATS:
            fmt = _FORMATS[tok[1]]
        elif tok[0] == "element" and len(tok) == 3:
            if not tok[2].isdigit():
                raise MeshFileError(path, f"element count {tok[2]!r} is not a non-negative integer", no)
            if int(tok[2]) > max_elements:
                raise MeshFileError(
                    path,
                    f"element {tok[1]!r} declares {int(tok[2])} rows, more than max_elements={max_elements}",
                    no,
                )
            elements.append(_Element(tok[1], int(tok[2])))
        elif tok[0] == "property" and elements and len(tok) == 3 and tok[1] in _TYPES:
            elements[-1].props.append(_Prop(tok[2], _TYPES[tok[1]]))
        elif tok[0] == "property" and elements and len(tok) == 5 and tok[1] == "list":
            if tok[2] not in _TYPES or tok[3] not in _TYPES or _TYPES[tok[2]][0] == "f":
                raise MeshFileError(path, f"bad list property types in {line.strip()!r}", no)
            elements[-1].props.append(_Prop(tok[4], _TYPES[tok[3]], _TYPES[tok[2]]))
        else:
            raise MeshFileError(path, f"unexpected header line {line.strip()!r}", no)
    if fmt is None:
        raise MeshFileError(path, "the header has no valid 'format' line")
    header = _Header(fmt, elements, eol + 1)
    _check_sizes(path, header)
    return header


def _check_sizes(path: Path, h: _Header) -> None:
    """Refuse counts that cannot fit in the file: each row takes at least its scalar bytes plus its list
    length prefixes (binary), or two characters per value (ASCII)."""
    available = path.stat().st_size - h.size
    need = 0
    for el in h.elements:
        row = sum(np.dtype(p.count_type or p.type).itemsize for p in el.props) if h.fmt else 2 * len(el.props)
        need += el.count * row
        if need > available + 1:
            raise MeshFileError(
                path,
                f"the header declares {el.count} {el.name!r} rows, which need at least {need} bytes, but "
                f"only {available} bytes follow the header (truncated or hostile file)",
            )


class _Cursor:
    """Reads typed values in order from the data after the header: bytes (binary) or tokens (ASCII)."""

    def __init__(self, path: Path, data: bytes, fmt: str) -> None:
        self.path, self.fmt, self.pos, self.buf = path, fmt, 0, data
        self.tokens = [] if fmt else data.decode("ascii", errors="replace").split()

    def take(self, type_: str, n: int, element: str) -> np.ndarray:
        """The next ``n`` values of numpy type ``type_`` (``(n,)``)."""
        size = n * np.dtype(type_).itemsize if self.fmt else n
        if n < 0 or self.pos + size > (len(self.buf) if self.fmt else len(self.tokens)):
            raise MeshFileError(self.path, f"the data ends inside element {element!r}")
        if self.fmt:
            out = np.frombuffer(self.buf, self.fmt + type_, n, self.pos)
        else:
            try:
                out = np.fromstring(" ".join(self.tokens[self.pos : self.pos + n]), dtype=np.float64, sep=" ")
            except ValueError:
                raise MeshFileError(self.path, f"non-numeric value in element {element!r}") from None
            out = out.astype(type_)
        self.pos += size
        return out


def _read_rows(cur: _Cursor, el: _Element, rows: int) -> dict:
    """``rows`` rows of ``el`` one by one: ``{name: column}``, a scalar property's column ``(rows,)``, a
    list property's ``(values, lengths)`` with the lists concatenated and ``lengths`` ``(rows,)``."""
    cols: dict[str, list[np.ndarray]] = {p.name: [] for p in el.props}
    lens: dict[str, list[int]] = {p.name: [] for p in el.props}
    for _ in range(rows):
        for p in el.props:
            n = 1
            if p.count_type is not None:
                n = int(cur.take(p.count_type, 1, el.name)[0])
                lens[p.name].append(n)
            cols[p.name].append(cur.take(p.type, n, el.name))
    return {
        p.name: (
            np.concatenate(cols[p.name]) if cols[p.name] else np.zeros(0, p.type),
            np.asarray(lens[p.name], dtype=np.int64),
        )
        if p.count_type
        else (np.concatenate(cols[p.name]) if cols[p.name] else np.zeros(0, p.type))
        for p in el.props
    }


def _read_fixed(cur: _Cursor, el: _Element) -> dict | None:
    """Fast path: all rows at once when every list has the first row's length (checked), else None
    (and the cursor is left where it was)."""
    start = cur.pos
    try:
        first = _read_rows(cur, el, min(el.count, 1))
    finally:
        cur.pos = start
    lengths = [int(first[p.name][1][0]) if p.count_type and el.count else 0 for p in el.props]
    fields: list[tuple] = []
    for i, (p, k) in enumerate(zip(el.props, lengths, strict=True)):
        fields += [(f"n{i}", p.count_type), (f"p{i}", p.type, (k,))] if p.count_type else [(f"p{i}", p.type)]
    if cur.fmt:
        dt = np.dtype([(f[0], cur.fmt + f[1], *f[2:]) for f in fields])
        if start + el.count * dt.itemsize > len(cur.buf):
            return None
        arr = np.frombuffer(cur.buf, dt, el.count, start)
        cur.pos += el.count * dt.itemsize
    else:
        width = sum(1 + k if p.count_type else 1 for p, k in zip(el.props, lengths, strict=True))
        if start + el.count * width > len(cur.tokens):
            return None
        flat = cur.take("f8", el.count * width, el.name).reshape(el.count, width)
        arr = np.zeros(el.count, dtype=np.dtype(fields))
        c = 0
        for i, (p, k) in enumerate(zip(el.props, lengths, strict=True)):
            if p.count_type:
                arr[f"n{i}"], arr[f"p{i}"], c = (
                    flat[:, c],
                    flat[:, c + 1 : c + 1 + k].reshape(el.count, k),
                    c + 1 + k,
                )
            else:
                arr[f"p{i}"], c = flat[:, c], c + 1
    if any(
        (arr[f"n{i}"] != k).any()
        for i, (p, k) in enumerate(zip(el.props, lengths, strict=True))
        if p.count_type
    ):
        cur.pos = start
        return None
    return {
        p.name: (arr[f"p{i}"].reshape(-1), np.full(el.count, k)) if p.count_type else arr[f"p{i}"]
        for i, (p, k) in enumerate(zip(el.props, lengths, strict=True))
    }


def _read_data(path: Path, h: _Header) -> dict[str, dict]:
    """Every element's columns (see ``_read_rows``), by element name."""
    cur = _Cursor(path, path.read_bytes()[h.size :], h.fmt)
    out: dict[str, dict] = {}
    for el in h.elements:
        fixed = _read_fixed(cur, el)
        out[el.name] = fixed if fixed is not None else _read_rows(cur, el, el.count)
    return out


def _scaled_colors(cols: list[np.ndarray]) -> np.ndarray:
    """Colour columns to floats: unsigned integer types are divided by their maximum, floats kept."""
    out = np.stack(cols, axis=1)
    if out.dtype.kind == "u":
        return out / float(np.iinfo(out.dtype).max)
    return out.astype(np.float64)


def _faces(path: Path, data: dict, n_verts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(faces (F, 3), corner (F, 3) indices into the flat corner list, per-corner uvs (K, 2) or None)``."""
    face = data["face"]
    key = next((k for k in ("vertex_indices", "vertex_index") if isinstance(face.get(k), tuple)), None)
    if key is None:
        raise MeshFileError(path, "the 'face' element has no 'vertex_indices' list property")
    values, lengths = face[key]
    if (lengths < 3).any():
        raise MeshFileError(path, f"face {int(np.argmax(lengths < 3))} has fewer than 3 corners")
    values = values.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() >= n_verts):
        bad = values[(values < 0) | (values >= n_verts)][0]
        raise MeshFileError(path, f"face vertex index {int(bad)} is out of range ({n_verts} vertices)")
    corner = fan_triangles(lengths)
    uv = None
    tc = face.get("texcoord")
    if isinstance(tc, tuple) and (tc[1] == 2 * lengths).all():
        uv = tc[0].astype(np.float64).reshape(-1, 2)
    return values[corner], corner, uv


@dataclass
class _Vertices:
    """What points and meshes share: positions and the optional per-vertex tensors."""

    xyz: Tensor
    normals: Tensor | None
    colors: Tensor | None
    unused: set[str]  # scalar vertex properties not consumed yet


def _read(
    path: str | os.PathLike[str], max_elements: int, to: Callable[[np.ndarray], Tensor]
) -> tuple[Path, dict, int, _Vertices]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"PLY file {p} not found")
    header = _read_header(p, max_elements)
    data = _read_data(p, header)
    n_faces = next((e.count for e in header.elements if e.name == "face"), 0)
    vert = data.get("vertex")
    if vert is None or any(not isinstance(vert.get(c), np.ndarray) for c in "xyz"):
        raise MeshFileError(p, "no 'vertex' element with scalar x, y, z properties")
    xyz = np.stack([vert[c] for c in "xyz"], axis=1).astype(np.float64)
    if not np.isfinite(xyz).all():
        raise MeshFileError(
            p, f"vertex {int(np.argmin(np.isfinite(xyz).all(1)))} has a non-finite coordinate"
        )
    unused = {k for k, v in vert.items() if isinstance(v, np.ndarray)} - {"x", "y", "z"}
    normals = colors = None
    if {"nx", "ny", "nz"} <= unused:
        normals = to(np.stack([vert[c] for c in ("nx", "ny", "nz")], 1))
        unused -= {"nx", "ny", "nz"}
    if {"red", "green", "blue"} <= unused:
        names = [c for c in _COLORS if c in unused]
        colors = to(_scaled_colors([vert[c] for c in names]))
        unused -= set(names)
    return p, data, n_faces, _Vertices(to(xyz), normals, colors, unused)


def _to(device: torch.device | str | None, dtype: torch.dtype) -> Callable[[np.ndarray], Tensor]:
    def t(a: np.ndarray) -> Tensor:
        d = dtype if a.dtype.kind == "f" else torch.int64
        return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=d)

    return t


def load_ply_points(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> PointClouds:
    """Read the vertices of a PLY file as a single-cloud ``PointClouds``; faces, if any, are ignored.

    Args:
        path: the ``.ply`` file (ASCII or binary, either byte order).
        device: where the tensors live (default CPU).
        dtype: float dtype of positions and every float attribute.
        max_elements: refuse headers that declare more rows than this in any element (checked, with the
            file size, before any data is read).

    Returns:
        ``points (P, 3)``; optional ``colors (P, 3 | 4)`` in [0, 1] (from ``uchar``: divided by 255),
        ``normals (P, 3)``, ``radii (P,)`` (from ``radius``, else from a scalar ``scale``), and
        ``features[name] (P, 1)`` for every other scalar vertex property.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MeshFileError: malformed header or data, counts that do not fit the file, non-positive radii.
    """
    to = _to(device, dtype)
    p, data, _, v = _read(path, max_elements, to)
    vert = data["vertex"]
    radius = next((r for r in ("radius", "scale") if r in v.unused), None)
    radii = None
    if radius is not None:
        v.unused.discard(radius)
        if not (vert[radius] > 0).all():
            raise MeshFileError(p, f"vertex property {radius!r} must be positive to be used as radii")
        radii = [to(vert[radius].astype(np.float64))]
    return PointClouds.from_list(
        [v.xyz],
        colors=None if v.colors is None else [v.colors],
        normals=None if v.normals is None else [v.normals],
        radii=radii,
        features={k: [to(vert[k].astype(np.float64)[:, None])] for k in sorted(v.unused)},
    )


def load_ply_mesh(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Meshes:
    """Read a PLY file with faces as a single-mesh ``Meshes`` (arguments as ``load_ply_points``).

    Returns:
        ``verts (V, 3)``, ``faces (F, 3)`` (fan-triangulated in file order); optional
        ``vert_colors (V, 3 | 4)``, ``vert_normals (V, 3)``, ``uvs``/``face_uvs`` (per-vertex ``u, v``,
        ``s, t`` or ``texture_u, texture_v``, or a per-corner face ``texcoord`` list) and
        ``vert_features[name] (V, 1)`` for every other scalar vertex property.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MeshFileError: as ``load_ply_points``, and when the file has no faces or a face index is out of
            range.
    """
    to = _to(device, dtype)
    p, data, n_faces, v = _read(path, max_elements, to)
    if n_faces == 0:
        raise MeshFileError(p, "has no faces; use load_ply_points to read it as a point cloud")
    vert = data["vertex"]
    faces, corner, corner_uv = _faces(p, data, v.xyz.shape[0])
    extra: dict[str, Tensor | None] = {"vert_colors": v.colors, "vert_normals": v.normals}
    uv_names = next((pair for pair in _UV_NAMES if set(pair) <= v.unused), None)
    if corner_uv is not None:
        extra["uvs"], extra["face_uvs"] = to(corner_uv), to(corner)
    elif uv_names is not None:
        v.unused -= set(uv_names)
        extra["uvs"] = to(np.stack([vert[c] for c in uv_names], axis=1).astype(np.float64))
        extra["face_uvs"] = to(faces)
    mesh = Meshes.single(v.xyz, to(faces), **extra)
    feats = {k: to(vert[k].astype(np.float64)[:, None]) for k in sorted(v.unused)}
    return dc_replace(mesh, vert_features=feats) if feats else mesh


def load_ply(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Meshes | PointClouds:
    """``load_ply_mesh(path)`` when the header declares faces, else ``load_ply_points(path)`` (same
    arguments). Use those two directly when the kind is known (their return types are precise)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"PLY file {p} not found")
    header = _read_header(p, max_elements)
    has_faces = any(e.name == "face" and e.count > 0 for e in header.elements)
    load = load_ply_mesh if has_faces else load_ply_points
    return load(p, device=device, dtype=dtype, max_elements=max_elements)


def _vertex_columns(data: Meshes | PointClouds) -> list[tuple[str, np.ndarray]]:
    """``(property name, (N,) column)`` pairs in writing order; colours become ``uchar``."""
    if isinstance(data, Meshes):
        xyz, normals, colors, radii, feats = (
            data.verts,
            data.vert_normals,
            data.vert_colors,
            None,
            data.vert_features,
        )
    else:
        xyz, normals, colors, radii, feats = data.points, data.normals, data.colors, data.radii, data.features
    cols = [(c, xyz[:, i].numpy()) for i, c in enumerate("xyz")]
    if normals is not None:
        cols += [(c, normals[:, i].numpy()) for i, c in enumerate(("nx", "ny", "nz"))]
    if colors is not None:
        c = colors.numpy()
        if c.shape[1] not in (3, 4) or np.isnan(c).any() or c.min() < 0 or c.max() > 1:
            raise ValueError(
                "colours must have 3 or 4 channels with values in [0, 1] to be saved as PLY uchar"
            )
        cols += [(_COLORS[i], np.rint(c[:, i] * 255).astype(np.uint8)) for i in range(c.shape[1])]
    if radii is not None:
        cols.append(("radius", radii.numpy()))
    for name, f in feats.items():
        if not name or any(ch.isspace() for ch in name) or f.dim() != 2:
            raise ValueError(f"feature {name!r} cannot be saved as a PLY property")
        a = f.numpy().astype(np.float64) if f.dtype == torch.bool else f.numpy()
        cols += [(name if a.shape[1] == 1 else f"{name}_{k}", a[:, k]) for k in range(a.shape[1])]
    return cols


def save_ply(path: str | os.PathLike[str], data: Meshes | PointClouds, binary: bool = True) -> None:
    """Write a single mesh or point cloud as PLY (binary little-endian, or ASCII with ``binary=False``).

    Vertex properties: ``x y z`` (``float``, or ``double`` for float64 data), ``nx ny nz`` from normals,
    ``red green blue [alpha]`` as ``uchar`` (``round(255 * c)``, so colours come back to 1/255),
    ``radius`` from point radii, and every feature column (``name``, or ``name_k`` for ``D > 1``). Meshes
    add ``face`` with ``list uchar int vertex_indices``. UVs and materials are not written (a warning
    says so): use ``save_obj`` or ``save_gltf`` for textured meshes.

    Args:
        path: destination file.
        data: a ``Meshes`` or ``PointClouds`` holding exactly one item.
        binary: binary little-endian (default) or ASCII.

    Raises:
        TypeError: ``data`` is neither.
        ValueError: more than one item, colours outside [0, 1], or features that PLY cannot hold.
    """
    if not isinstance(data, Meshes | PointClouds):
        raise TypeError(f"data must be a Meshes or PointClouds, got {type(data).__name__}")
    if len(data) != 1:
        raise ValueError(f"data must hold exactly one item to save as PLY, got {len(data)}; save data[i]")
    d = data.detach().to("cpu")
    if isinstance(d, Meshes) and (d.uvs is not None or any(d.materials)):
        warnings.warn("save_ply does not write uvs or materials; use save_obj or save_gltf", stacklevel=2)
    cols = _vertex_columns(d)
    ply_type = {v: k for k, v in reversed(_TYPES.items())}  # first (classic) name per numpy code
    props = [f"property {ply_type[a.dtype.str[1:]]} {n}" for n, a in cols]
    faces = d.faces.numpy().astype(np.int32) if isinstance(d, Meshes) else None
    head = [
        "ply",
        f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
        "comment written by gradiance",
    ]
    head += [f"element vertex {len(cols[0][1])}", *props]
    if faces is not None:
        head += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    with open(path, "wb") as fh:
        fh.write(("\n".join([*head, "end_header"]) + "\n").encode("ascii"))
        if binary:
            rows = np.empty(
                len(cols[0][1]), dtype=[(f"p{i}", "<" + a.dtype.str[1:]) for i, (_, a) in enumerate(cols)]
            )
            for i, (_, a) in enumerate(cols):
                rows[f"p{i}"] = a
            fh.write(rows.tobytes())
            if faces is not None:
                frows = np.empty(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
                frows["n"], frows["i"] = 3, faces
                fh.write(frows.tobytes())
        else:
            fmts = [
                "%.17g" if a.dtype == np.float64 else "%.9g" if a.dtype.kind == "f" else "%d" for _, a in cols
            ]
            np.savetxt(fh, np.stack([a.astype(np.float64) for _, a in cols], 1), fmt=" ".join(fmts))
            if faces is not None:
                np.savetxt(fh, np.concatenate([np.full((len(faces), 1), 3), faces], 1), fmt="%d")
