"""glTF 2.0 (``.gltf`` + files, or binary ``.glb``) to and from a single ``Meshes``, through trimesh.

Loading joins the whole default scene into **one mesh**: every instance of every mesh primitive, with its
node's world transform applied, in the order of the file's meshes (then of the nodes that place them).
Primitive ``k`` contributes its vertices, its triangles (``face_materials == k``) and material ``k``
(``materials[0][k]``, named after the glTF material, or ``"primitive<k>"`` when it has no name):
``diffuse`` is the base-colour factor's RGB (as trimesh reads it: 8 bits) and ``diffuse_map`` the
base-colour texture times that factor (so that the texture alone renders the glTF colour; a factor of
white leaves it untouched). Metallic/roughness, normal, emissive and occlusion maps are not read. UVs are
per vertex in glTF: ``uvs`` has one row per vertex and ``face_uvs == faces``; a primitive without UVs
gets ``(0, 0)`` rows (with a warning) when others have them. Vertex colours (``COLOR_0``) become
``vert_colors (V, 3)`` when every primitive has them. Points and lines are skipped with a warning.

Before trimesh sees the file, its JSON is checked: buffer and image URIs must be embedded (``data:``)
or name files inside the file's folder (no absolute paths, ``..`` or symbolic links out of it, no remote
URLs), and no accessor may declare more than ``max_elements`` items.
"""

from __future__ import annotations

import json
import os
import re
import struct
import warnings
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import torch
import trimesh
from PIL import Image
from torch import Tensor

from gradiance.core.meshes import Meshes, SurfaceMaterial

from .errors import MeshFileError, resolve_inside
from .images import MAX_IMAGE_PIXELS, image_from_pil
from .obj import DEFAULT_MAX_ELEMENTS

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _gltf_json(path: Path) -> dict:
    """The JSON part of a ``.gltf`` or ``.glb`` file, with the binary container's lengths checked."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if fh.read(4) == b"glTF":
            _, length = struct.unpack("<II", fh.read(8))
            chunk, kind = struct.unpack("<I4s", fh.read(8))
            if kind != b"JSON" or length > size or chunk > size - 20:
                raise MeshFileError(path, "malformed GLB container (lengths do not fit the file)")
            text = fh.read(chunk)
        else:
            fh.seek(0)
            text = fh.read()
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise MeshFileError(path, f"invalid glTF JSON: {e}") from e
    if not isinstance(doc, dict):
        raise MeshFileError(path, "the glTF JSON is not an object")
    return doc


def _check_gltf(path: Path, doc: dict, max_elements: int) -> None:
    """Refuse external references that leave the folder and absurd accessor counts."""
    for kind in ("buffers", "images"):
        for i, item in enumerate(doc.get(kind) or []):
            uri = item.get("uri") if isinstance(item, dict) else None
            if not isinstance(uri, str) or uri.startswith("data:"):
                continue
            if _SCHEME.match(uri) and not re.match(r"^[A-Za-z]:[\\/]", uri):
                raise MeshFileError(path, f"refusing {kind}[{i}] URI {uri!r}: only local files are read")
            resolve_inside(path.parent, unquote(uri), source=path, what=f"glTF {kind}[{i}]")
    for i, acc in enumerate(doc.get("accessors") or []):
        count = acc.get("count") if isinstance(acc, dict) else None
        if not isinstance(count, int) or count < 0 or count > max_elements:
            raise MeshFileError(
                path, f"accessors[{i}] declares count {count!r}, not an integer in [0, {max_elements}]"
            )


def _instances(scene: trimesh.Scene) -> list[trimesh.Trimesh]:
    """Every triangle-mesh instance with its world transform applied, in file order."""
    order = {name: i for i, name in enumerate(scene.geometry)}
    nodes = {n: i for i, n in enumerate(scene.graph.nodes_geometry)}
    placed = sorted(nodes, key=lambda n: (order.get(scene.graph[n][1], len(order)), nodes[n]))
    out = []
    for node in placed:
        transform, name = scene.graph[node]
        geom = scene.geometry[name]
        if not isinstance(geom, trimesh.Trimesh):
            warnings.warn(f"load_gltf skips {type(geom).__name__} geometry {name!r}", stacklevel=3)
            continue
        geom = geom.copy()
        geom.apply_transform(transform)
        out.append(geom)
    return out


def _material(
    path: Path,
    geom: trimesh.Trimesh,
    k: int,
    load_textures: bool,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> SurfaceMaterial:
    mat = getattr(geom.visual, "material", None)
    name = getattr(mat, "name", None) or f"primitive{k}"
    factor = np.ones(4)
    image = None
    if isinstance(mat, trimesh.visual.material.PBRMaterial):
        if mat.baseColorFactor is not None:
            factor = np.asarray(mat.baseColorFactor, dtype=np.float64) / 255.0
        image = mat.baseColorTexture
    elif isinstance(mat, trimesh.visual.material.SimpleMaterial):
        factor = np.asarray(mat.diffuse, dtype=np.float64) / 255.0
        image = mat.image
    rgb = torch.tensor(factor[:3], device=device, dtype=dtype)
    diffuse_map = None
    if load_textures and isinstance(image, Image.Image):
        tex = image_from_pil(image, source=path, max_pixels=MAX_IMAGE_PIXELS, device=device, dtype=dtype)
        if tex.shape[-1] >= 3 and not bool((rgb == 1).all()):
            tex = torch.cat([tex[..., :3] * rgb, tex[..., 3:]], dim=-1)
        diffuse_map = tex
    return SurfaceMaterial(name=str(name), diffuse=rgb, diffuse_map=diffuse_map)


def load_gltf(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    load_textures: bool = True,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Meshes:
    """Read a ``.glb`` or ``.gltf`` scene as one mesh, one material per primitive (see module docstring).

    Args:
        path: the file; a ``.gltf`` may reference buffers and images inside its own folder.
        device: where the tensors live (default CPU).
        dtype: float dtype of positions, UVs, colours and materials.
        load_textures: read base-colour textures into ``diffuse_map``.
        max_elements: refuse accessors that declare more items than this.

    Returns:
        A single-mesh ``Meshes`` with ``verts (V, 3)``, ``faces (F, 3)``, ``materials`` (one per primitive
        instance) and ``face_materials (F,)``; ``uvs (V, 2)`` with ``face_uvs = faces`` when any primitive
        has UVs; ``vert_colors (V, 3)`` when every primitive has vertex colours.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MeshFileError: malformed file, unsafe references, too many elements, or no triangles.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"glTF file {p} not found")
    _check_gltf(p, _gltf_json(p), max_elements)
    try:
        scene = trimesh.load(p, force="scene", process=False)
        if not isinstance(scene, trimesh.Scene):
            raise MeshFileError(p, f"trimesh read a {type(scene).__name__}, not a scene")
        geoms = _instances(scene)
    except MeshFileError:
        raise
    except Exception as e:  # trimesh raises many kinds for malformed input
        raise MeshFileError(p, f"trimesh cannot read it: {type(e).__name__}: {e}") from e
    if not geoms:
        raise MeshFileError(p, "contains no triangle mesh")
    sizes = [len(g.vertices) for g in geoms]
    starts = np.cumsum([0, *sizes])[:-1]
    verts = np.concatenate([g.vertices for g in geoms])
    if not np.isfinite(verts).all():
        raise MeshFileError(p, "vertex positions contain NaN or infinite values")
    faces = np.concatenate([g.faces + s for g, s in zip(geoms, starts, strict=True)])
    uv_list = [getattr(g.visual, "uv", None) for g in geoms]

    def t(a: np.ndarray, floating: bool = True) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(
            device=device, dtype=dtype if floating else torch.int64
        )

    extra: dict[str, Tensor | list[SurfaceMaterial] | None] = {}
    if any(uv is not None for uv in uv_list):
        if any(uv is None for uv in uv_list):
            warnings.warn(f"{p}: some primitives have no UVs; they get uv (0, 0)", stacklevel=2)
        uvs = [
            np.zeros((n, 2)) if uv is None else np.asarray(uv)[:, :2]
            for uv, n in zip(uv_list, sizes, strict=True)
        ]
        extra["uvs"], extra["face_uvs"] = t(np.concatenate(uvs)), t(faces, False)
    vis = [g.visual for g in geoms]
    if all(isinstance(v, trimesh.visual.ColorVisuals) and v.kind == "vertex" for v in vis):
        extra["vert_colors"] = t(np.concatenate([v.vertex_colors[:, :3] for v in vis]) / 255.0)  # type: ignore[union-attr]
    extra["materials"] = [_material(p, g, k, load_textures, device, dtype) for k, g in enumerate(geoms)]
    extra["face_materials"] = t(np.repeat(np.arange(len(geoms)), [len(g.faces) for g in geoms]), False)
    return Meshes.single(t(verts), t(faces, False), **extra)


def save_gltf(path: str | os.PathLike[str], meshes: Meshes) -> None:
    """Write a single mesh as binary glTF (``.glb``), one primitive per material that has faces.

    Each primitive gets the faces of one material (in face order), its own copy of the vertices they
    use, split where a vertex has several UVs (glTF UVs are per vertex), and a PBR material whose
    base-colour texture is ``diffuse_map`` (8-bit) or, without a texture, whose base-colour factor is
    ``diffuse``. Meshes without materials are written as one primitive with vertex colours when
    ``vert_colors`` has 3 or 4 channels. ``load_gltf`` reads the result back with the same per-corner
    positions, UVs and textures (to 1/255), grouped by material.

    Args:
        path: destination; must end in ``.glb``.
        meshes: a ``Meshes`` holding exactly one mesh.

    Raises:
        ValueError: more than one mesh, or a path that does not end in ``.glb``.
    """
    p = Path(path)
    if p.suffix.lower() != ".glb":
        raise ValueError(f"path must end in .glb (binary glTF), got {p.name!r}")
    if len(meshes) != 1:
        raise ValueError(f"meshes must hold exactly one mesh to save as glTF, got {len(meshes)}")
    m = meshes.detach().to("cpu", torch.float64)
    scene = trimesh.Scene()
    mats = m.materials[0] or (SurfaceMaterial(),)
    fm = m.face_materials if m.face_materials is not None else torch.zeros(len(m.faces), dtype=torch.int64)
    for k, mat in enumerate(mats):
        sel = (fm == k).nonzero()[:, 0]
        if not len(sel):
            continue
        geom = _primitive(m, sel, mat, colors=not m.materials[0])
        scene.add_geometry(geom, geom_name=f"primitive{k}", node_name=f"node{k}")
    p.write_bytes(scene.export(file_type="glb"))


def _primitive(m: Meshes, sel: Tensor, mat: SurfaceMaterial, colors: bool) -> trimesh.Trimesh:
    """A trimesh of faces ``sel`` with vertices split by (vertex, uv) pairs and a PBR material."""
    faces = m.faces[sel].numpy()
    keys = faces.reshape(-1, 1)
    if m.uvs is not None and m.face_uvs is not None:
        keys = np.stack([faces.reshape(-1), m.face_uvs[sel].numpy().reshape(-1)], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    verts = m.verts.numpy()[uniq[:, 0]]
    geom = trimesh.Trimesh(verts, inverse.reshape(-1, 3), process=False)
    image = None
    if mat.diffuse_map is not None:
        tex = mat.diffuse_map.numpy()
        if tex.shape[-1] not in (1, 3, 4) or not ((tex >= 0) & (tex <= 1)).all():
            raise ValueError(f"material {mat.name!r} diffuse_map must have 1, 3 or 4 channels in [0, 1]")
        u8 = np.rint(tex * 255).astype(np.uint8)
        image = Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)
    factor = [1.0, 1.0, 1.0, 1.0] if image is not None else [*mat.diffuse.clamp(0, 1).tolist(), 1.0]
    material = trimesh.visual.material.PBRMaterial(
        name=mat.name, baseColorFactor=factor, baseColorTexture=image
    )
    uv = m.uvs.numpy()[uniq[:, 1]] if uniq.shape[1] == 2 and m.uvs is not None else None
    if colors and m.vert_colors is not None and m.vert_colors.shape[1] in (3, 4):
        vc = np.rint(m.vert_colors.clamp(0, 1).numpy()[uniq[:, 0]] * 255).astype(np.uint8)
        geom.visual = trimesh.visual.ColorVisuals(geom, vertex_colors=vc)
    else:
        geom.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return geom
