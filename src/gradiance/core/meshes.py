"""Packed batches of triangle meshes with per-vertex attributes, UVs and materials.

A ``Meshes`` of ``N`` meshes stores every mesh's vertices and faces concatenated ("packed"):

- ``verts[v]`` is vertex ``v``; mesh ``n`` owns ``verts[vert_offsets[n]:vert_offsets[n+1]]``.
- ``faces[f] = (a, b, c)`` are *packed* vertex indices, all inside the face's own mesh; mesh ``n`` owns
  ``faces[face_offsets[n]:face_offsets[n+1]]``. A face is front-facing when ``(b-a) x (c-a)`` points
  towards the camera (DESIGN.md section 2).
- UVs have their own indices, as OBJ files have them: ``face_uvs[f, k]`` is a packed row of ``uvs`` for
  corner ``k`` of face ``f``; mesh ``n`` owns ``uvs[uv_offsets[n]:uv_offsets[n+1]]``.
- ``materials[n]`` is the tuple of ``SurfaceMaterial`` of mesh ``n`` and ``face_materials[f]`` the index of
  face ``f``'s material within its own mesh's tuple.

Meshes are immutable: ``with_verts`` returns a mesh with new vertex positions and the same topology, which
is how an optimisation loop deforms a mesh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace

import torch
from torch import Tensor

from .checks import check_index_range, check_same_device, check_tensor
from .packing import (
    gather_rows,
    item_index,
    normalize_items,
    offsets_from_sizes,
    select_items,
    sizes_from_offsets,
)
from .vectors import safe_normalize


@dataclass(frozen=True, eq=False)
class SurfaceMaterial:
    """One surface material of a mesh, as an OBJ/MTL file describes it.

    Attributes:
        name: the material's name (``newmtl`` in MTL files).
        diffuse: ``(3,)`` diffuse colour (MTL ``Kd``), linear RGB in [0, 1].
        specular: ``(3,)`` specular colour (MTL ``Ks``).
        shininess: ``()`` Phong exponent (MTL ``Ns``).
        diffuse_map: ``(H, W, C)`` texture (MTL ``map_Kd``), float in [0, 1], row 0 at the top of the
            image (UV v = 1); or None for a constant colour.
    """

    name: str = "default"
    diffuse: Tensor = field(default_factory=lambda: torch.ones(3))
    specular: Tensor = field(default_factory=lambda: torch.zeros(3))
    shininess: Tensor = field(default_factory=lambda: torch.tensor(1.0))
    diffuse_map: Tensor | None = None

    def __post_init__(self) -> None:
        check_tensor(self.diffuse, f"material {self.name!r} diffuse", (3,))
        check_tensor(self.specular, f"material {self.name!r} specular", (3,))
        check_tensor(self.shininess, f"material {self.name!r} shininess", ())
        if self.diffuse_map is not None:
            check_tensor(self.diffuse_map, f"material {self.name!r} diffuse_map", (None, None, None))

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> SurfaceMaterial:
        """The same material with every tensor moved/cast."""
        dm = self.diffuse_map
        return SurfaceMaterial(
            name=self.name,
            diffuse=self.diffuse.to(device=device, dtype=dtype),
            specular=self.specular.to(device=device, dtype=dtype),
            shininess=self.shininess.to(device=device, dtype=dtype),
            diffuse_map=None if dm is None else dm.to(device=device, dtype=dtype),
        )


@dataclass(frozen=True, eq=False)
class Meshes:
    """A packed batch of triangle meshes (see the module docstring for the index equations).

    Attributes:
        verts: ``(V, 3)`` float vertex positions of all meshes, packed.
        faces: ``(F, 3)`` int64 packed vertex indices.
        vert_offsets: ``(N + 1,)`` int64 vertex offsets per mesh.
        face_offsets: ``(N + 1,)`` int64 face offsets per mesh.
        vert_colors: ``(V, C)`` per-vertex colours, or None.
        vert_normals: ``(V, 3)`` given per-vertex normals (e.g. from a file), or None;
            ``compute_vert_normals`` derives them from the geometry.
        vert_features: named ``(V, D)`` per-vertex features (any number).
        uvs: ``(T, 2)`` texture coordinates (u right, v up, [0, 1] over the map), or None.
        face_uvs: ``(F, 3)`` int64 packed rows of ``uvs`` per face corner, or None.
        uv_offsets: ``(N + 1,)`` int64 UV offsets per mesh, or None.
        materials: one tuple of ``SurfaceMaterial`` per mesh (empty tuples when there are none).
        face_materials: ``(F,)`` int64 material index of each face within its mesh, or None.

    Build with ``Meshes.from_list`` (per-mesh tensors with local indices) or ``Meshes.single``.
    The constructor validates shapes, dtypes, devices, index ranges and finiteness of the vertices
    (``validate=False`` skips the checks that synchronise with the device).
    """

    verts: Tensor
    faces: Tensor
    vert_offsets: Tensor
    face_offsets: Tensor
    vert_colors: Tensor | None = None
    vert_normals: Tensor | None = None
    vert_features: Mapping[str, Tensor] = field(default_factory=dict)
    uvs: Tensor | None = None
    face_uvs: Tensor | None = None
    uv_offsets: Tensor | None = None
    materials: tuple[tuple[SurfaceMaterial, ...], ...] = ()
    face_materials: Tensor | None = None
    validate: bool = True

    def __post_init__(self) -> None:
        if not self.materials:
            object.__setattr__(self, "materials", tuple(() for _ in range(len(self))))
        self._check_shapes()
        if self.validate:
            self._check_values()

    # ----------------------------------------------------------------------------------------- build
    @staticmethod
    def from_list(
        verts: Sequence[Tensor],
        faces: Sequence[Tensor],
        *,
        vert_colors: Sequence[Tensor] | None = None,
        vert_normals: Sequence[Tensor] | None = None,
        vert_features: Mapping[str, Sequence[Tensor]] | None = None,
        uvs: Sequence[Tensor] | None = None,
        face_uvs: Sequence[Tensor] | None = None,
        materials: Sequence[Sequence[SurfaceMaterial]] | None = None,
        face_materials: Sequence[Tensor] | None = None,
    ) -> Meshes:
        """Pack per-mesh tensors whose face indices are local to each mesh.

        ``verts[n]`` is ``(V_n, 3)``, ``faces[n]`` ``(F_n, 3)`` with indices in ``[0, V_n)``; every
        optional argument, when given, has one entry per mesh with the matching first dimension
        (``uvs[n]`` is ``(T_n, 2)`` and ``face_uvs[n]`` ``(F_n, 3)`` indexes it).
        """
        if len(verts) != len(faces):
            raise ValueError(
                f"verts and faces must list the same number of meshes, got {len(verts)} and {len(faces)}"
            )
        n = len(verts)
        for name, seq in (
            ("vert_colors", vert_colors),
            ("vert_normals", vert_normals),
            ("uvs", uvs),
            ("face_uvs", face_uvs),
            ("materials", materials),
            ("face_materials", face_materials),
        ):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} must have one entry per mesh ({n}), got {len(seq)}")
        if (uvs is None) != (face_uvs is None):
            raise ValueError("uvs and face_uvs must be given together")
        if (materials is None) != (face_materials is None):
            raise ValueError("materials and face_materials must be given together")
        for i in range(n):
            check_tensor(verts[i], f"verts[{i}]", (None, 3))
            check_tensor(faces[i], f"faces[{i}]", (None, 3), dtype="index")
        device = verts[0].device if n else torch.device("cpu")
        vo = offsets_from_sizes([v.shape[0] for v in verts], device)
        fo = offsets_from_sizes([f.shape[0] for f in faces], device)
        shift = torch.repeat_interleave(vo[:-1], fo[1:] - fo[:-1])[:, None]
        packed_faces = _cat([f.long() for f in faces], (0, 3), torch.int64, device) + shift
        packed_uvs, packed_face_uvs, uo = None, None, None
        if uvs is not None and face_uvs is not None:
            for i in range(n):
                check_tensor(face_uvs[i], f"face_uvs[{i}]", (None, 3), dtype="index")
            uo = offsets_from_sizes([u.shape[0] for u in uvs], device)
            packed_uvs = _cat(list(uvs), (0, 2), verts[0].dtype if n else torch.float32, device)
            uv_shift = torch.repeat_interleave(uo[:-1], fo[1:] - fo[:-1])[:, None]
            packed_face_uvs = _cat([f.long() for f in face_uvs], (0, 3), torch.int64, device) + uv_shift
        features = {k: torch.cat(list(v)) for k, v in (vert_features or {}).items()}
        return Meshes(
            verts=_cat(list(verts), (0, 3), torch.float32, device),
            faces=packed_faces,
            vert_offsets=vo,
            face_offsets=fo,
            vert_colors=None if vert_colors is None else torch.cat(list(vert_colors)),
            vert_normals=None if vert_normals is None else torch.cat(list(vert_normals)),
            vert_features=features,
            uvs=packed_uvs,
            face_uvs=packed_face_uvs,
            uv_offsets=uo,
            materials=tuple(tuple(m) for m in materials) if materials is not None else (),
            face_materials=None if face_materials is None else torch.cat([f.long() for f in face_materials]),
        )

    @staticmethod
    def single(
        verts: Tensor,
        faces: Tensor,
        **kwargs: Tensor | Sequence[SurfaceMaterial] | Mapping[str, Tensor] | None,
    ) -> Meshes:
        """One mesh from ``(V, 3)`` verts and ``(F, 3)`` faces; keyword arguments as ``from_list``
        but without the per-mesh list (``vert_colors=(V, C)``, ``uvs=(T, 2)``, ``materials=[...]``,
        ``vert_features={"name": (V, D)}``...)."""
        wrapped: dict[str, object] = {}
        for k, v in kwargs.items():
            if k == "vert_features" and isinstance(v, Mapping):
                wrapped[k] = {name: [t] for name, t in v.items()}
            else:
                wrapped[k] = None if v is None else [v]
        return Meshes.from_list([verts], [faces], **wrapped)  # type: ignore[arg-type]

    @staticmethod
    def join(meshes: Sequence[Meshes]) -> Meshes:
        """Concatenate several batches into one, keeping their order."""
        if not meshes:
            raise ValueError("meshes must contain at least one Meshes to join")
        parts = [m.split() for m in meshes]
        flat = [p for ps in parts for p in ps]
        return _join_singles(flat)

    # ------------------------------------------------------------------------------------ checks
    def _check_shapes(self) -> None:
        sizes: dict[str, int] = {}
        check_tensor(self.verts, "verts", ("V", 3), sizes=sizes)
        check_tensor(self.faces, "faces", ("F", 3), dtype=torch.int64, sizes=sizes)
        check_tensor(self.vert_offsets, "vert_offsets", ("N+1",), dtype=torch.int64, sizes=sizes)
        check_tensor(self.face_offsets, "face_offsets", ("N+1",), dtype=torch.int64, sizes=sizes)
        if self.vert_colors is not None:
            check_tensor(self.vert_colors, "vert_colors", ("V", None), sizes=sizes)
        if self.vert_normals is not None:
            check_tensor(self.vert_normals, "vert_normals", ("V", 3), sizes=sizes)
        for k, v in self.vert_features.items():
            check_tensor(v, f"vert_features[{k!r}]", ("V", None), dtype=None, sizes=sizes)
        if (self.uvs is None) != (self.face_uvs is None) or (self.uvs is None) != (self.uv_offsets is None):
            raise ValueError("uvs, face_uvs and uv_offsets must be given together")
        if self.uvs is not None and self.face_uvs is not None and self.uv_offsets is not None:
            check_tensor(self.uvs, "uvs", ("T", 2), sizes=sizes)
            check_tensor(self.face_uvs, "face_uvs", ("F", 3), dtype=torch.int64, sizes=sizes)
            check_tensor(self.uv_offsets, "uv_offsets", ("N+1",), dtype=torch.int64, sizes=sizes)
        if len(self.materials) != len(self):
            raise ValueError(
                f"materials must have one tuple per mesh ({len(self)}), got {len(self.materials)}"
            )
        if self.face_materials is not None:
            check_tensor(self.face_materials, "face_materials", ("F",), dtype=torch.int64, sizes=sizes)
        elif any(self.materials):
            raise ValueError("face_materials must be given when meshes have materials")
        tensors = {
            "verts": self.verts,
            "faces": self.faces,
            "vert_offsets": self.vert_offsets,
            "face_offsets": self.face_offsets,
            "vert_colors": self.vert_colors,
            "vert_normals": self.vert_normals,
            "uvs": self.uvs,
            "face_uvs": self.face_uvs,
            "uv_offsets": self.uv_offsets,
            "face_materials": self.face_materials,
        }
        tensors.update({f"vert_features[{k!r}]": v for k, v in self.vert_features.items()})
        check_same_device(**tensors)

    def _check_values(self) -> None:
        for name, off, total in (
            ("vert_offsets", self.vert_offsets, self.verts.shape[0]),
            ("face_offsets", self.face_offsets, self.faces.shape[0]),
            ("uv_offsets", self.uv_offsets, None if self.uvs is None else self.uvs.shape[0]),
        ):
            if off is None:
                continue
            if int(off[0]) != 0 or bool((off[1:] < off[:-1]).any()) or int(off[-1]) != total:
                raise ValueError(
                    f"{name} must start at 0, never decrease and end at {total}, got {off.tolist()}"
                )
        if not bool(torch.isfinite(self.verts).all()):
            raise ValueError("verts contains NaN or infinite values")
        fm = self.face_to_mesh
        check_index_range(
            self.faces - self.vert_offsets[fm][:, None],
            "faces",
            (self.vert_offsets[1:] - self.vert_offsets[:-1])[fm][:, None],
            "its mesh's vertices",
        )
        if self.face_uvs is not None and self.uv_offsets is not None:
            check_index_range(
                self.face_uvs - self.uv_offsets[fm][:, None],
                "face_uvs",
                (self.uv_offsets[1:] - self.uv_offsets[:-1])[fm][:, None],
                "its mesh's uvs",
            )
        if self.face_materials is not None:
            counts = torch.tensor(
                [len(m) for m in self.materials], device=self.faces.device, dtype=torch.int64
            )
            check_index_range(self.face_materials, "face_materials", counts[fm], "its mesh's materials")

    # -------------------------------------------------------------------------------- properties
    def __len__(self) -> int:
        return int(self.vert_offsets.shape[0]) - 1

    @property
    def device(self) -> torch.device:
        return self.verts.device

    @property
    def dtype(self) -> torch.dtype:
        return self.verts.dtype

    @property
    def num_verts_per_mesh(self) -> list[int]:
        return sizes_from_offsets(self.vert_offsets)

    @property
    def num_faces_per_mesh(self) -> list[int]:
        return sizes_from_offsets(self.face_offsets)

    @property
    def vert_to_mesh(self) -> Tensor:
        """``(V,)`` int64: ``vert_to_mesh[v] = n`` when vertex ``v`` belongs to mesh ``n``."""
        return item_index(self.vert_offsets)

    @property
    def face_to_mesh(self) -> Tensor:
        """``(F,)`` int64: ``face_to_mesh[f] = n`` when face ``f`` belongs to mesh ``n``."""
        return item_index(self.face_offsets)

    # ------------------------------------------------------------------------------- geometry
    def face_verts(self) -> Tensor:
        """``(F, 3, 3)``: ``face_verts()[f, k]`` is the position of corner ``k`` of face ``f``."""
        return gather_rows(self.verts, self.faces)

    def face_normals(self, normalize: bool = True) -> Tensor:
        """``(F, 3)`` right-hand-rule normals ``(v1 - v0) x (v2 - v0)``; unit length when ``normalize``
        (zero-area faces give zero, never NaN); otherwise their length is twice the face's area."""
        fv = self.face_verts()
        n = torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0], dim=-1)
        return safe_normalize(n) if normalize else n

    def face_areas(self) -> Tensor:
        """``(F,)`` triangle areas."""
        return 0.5 * torch.linalg.vector_norm(self.face_normals(normalize=False), dim=-1)

    def compute_vert_normals(self) -> Tensor:
        """``(V, 3)`` unit vertex normals: the area-weighted sum of the adjacent faces' normals.
        A vertex with no non-degenerate face gets zero."""
        fn = self.face_normals(normalize=False)
        # one index_add per corner: on CPU a single one over the (3F, 3) repeated rows costs ~4x more
        acc = torch.zeros_like(self.verts)
        for k in range(3):
            acc = acc.index_add(0, self.faces[:, k], fn)
        return safe_normalize(acc)

    def edges(self) -> tuple[Tensor, Tensor]:
        """Unique undirected edges.

        Returns ``(edges, face_edges)``: ``edges`` is ``(E, 2)`` int64 packed vertex indices with
        ``edges[e, 0] < edges[e, 1]``, sorted; ``face_edges`` is ``(F, 3)`` with ``face_edges[f, k]`` the
        edge opposite corner ``k`` of face ``f`` (from corner ``k+1`` to ``k+2``).
        """
        f = self.faces
        pairs = torch.stack([f[:, [1, 2]], f[:, [2, 0]], f[:, [0, 1]]], dim=1).reshape(-1, 2)
        pairs, _ = pairs.sort(dim=1)
        n = max(int(self.verts.shape[0]), 1)
        keys, inverse = torch.unique(pairs[:, 0] * n + pairs[:, 1], return_inverse=True)  # 1D: fast
        edges = torch.stack([torch.div(keys, n, rounding_mode="floor"), keys % n], 1)
        return edges, inverse.reshape(-1, 3)

    # ------------------------------------------------------------------------------- editing
    def with_verts(self, verts: Tensor) -> Meshes:
        """Same topology and attributes with new ``(V, 3)`` vertex positions (keeps autograd)."""
        check_tensor(verts, "verts", tuple(self.verts.shape))
        return dc_replace(self, verts=verts, validate=False)

    def offset_verts(self, offsets: Tensor) -> Meshes:
        """``with_verts(verts + offsets)`` for ``(V, 3)`` offsets."""
        check_tensor(offsets, "offsets", tuple(self.verts.shape))
        return self.with_verts(self.verts + offsets)

    def geometry(self) -> Meshes:
        """The same vertices and faces without any attribute, UVs or materials (keeps autograd)."""
        return Meshes(self.verts, self.faces, self.vert_offsets, self.face_offsets, validate=False)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Meshes:
        """Move every tensor to ``device`` and cast float tensors to ``dtype``."""

        def f(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        def i(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device=device)

        return Meshes(
            verts=self.verts.to(device=device, dtype=dtype),
            faces=self.faces.to(device),
            vert_offsets=self.vert_offsets.to(device),
            face_offsets=self.face_offsets.to(device),
            vert_colors=f(self.vert_colors),
            vert_normals=f(self.vert_normals),
            vert_features={
                k: v.to(device=device, dtype=dtype if v.is_floating_point() else None)
                for k, v in self.vert_features.items()
            },
            uvs=f(self.uvs),
            face_uvs=i(self.face_uvs),
            uv_offsets=i(self.uv_offsets),
            materials=tuple(tuple(m.to(device, dtype) for m in ms) for ms in self.materials),
            face_materials=i(self.face_materials),
            validate=False,
        )

    def detach(self) -> Meshes:
        """A copy whose float tensors do not require gradients."""
        return dc_replace(
            self,
            verts=self.verts.detach(),
            vert_colors=None if self.vert_colors is None else self.vert_colors.detach(),
            vert_normals=None if self.vert_normals is None else self.vert_normals.detach(),
            vert_features={k: v.detach() for k, v in self.vert_features.items()},
            uvs=None if self.uvs is None else self.uvs.detach(),
            validate=False,
        )

    # ------------------------------------------------------------------------------- batch
    def verts_list(self) -> list[Tensor]:
        """Per-mesh ``(V_n, 3)`` vertex tensors (views into ``verts``)."""
        return list(torch.split(self.verts, self.num_verts_per_mesh))

    def faces_list(self) -> list[Tensor]:
        """Per-mesh ``(F_n, 3)`` faces with indices local to each mesh."""
        return [
            f - o
            for f, o in zip(
                torch.split(self.faces, self.num_faces_per_mesh),
                self.vert_offsets[:-1].tolist(),
                strict=True,
            )
        ]

    def __getitem__(self, items: int | slice | Sequence[int] | Tensor) -> Meshes:
        """The meshes at the given batch indices, as a new packed batch (keeps autograd)."""
        idx = normalize_items(items, len(self), "Meshes")
        vrows, vo = select_items(self.vert_offsets, idx)
        frows, fo = select_items(self.face_offsets, idx)
        old_vstart = torch.repeat_interleave(self.vert_offsets[:-1][idx], fo[1:] - fo[:-1]) if idx else vo[:0]
        faces = (
            self.faces[frows]
            - old_vstart[:, None]
            + torch.repeat_interleave(vo[:-1], fo[1:] - fo[:-1])[:, None]
        )
        uvs = face_uvs = uo = None
        if self.uvs is not None and self.face_uvs is not None and self.uv_offsets is not None:
            urows, uo = select_items(self.uv_offsets, idx)
            old_ustart = (
                torch.repeat_interleave(self.uv_offsets[:-1][idx], fo[1:] - fo[:-1]) if idx else uo[:0]
            )
            uvs = self.uvs[urows]
            face_uvs = (
                self.face_uvs[frows]
                - old_ustart[:, None]
                + torch.repeat_interleave(uo[:-1], fo[1:] - fo[:-1])[:, None]
            )
        return Meshes(
            verts=self.verts[vrows],
            faces=faces,
            vert_offsets=vo,
            face_offsets=fo,
            vert_colors=None if self.vert_colors is None else self.vert_colors[vrows],
            vert_normals=None if self.vert_normals is None else self.vert_normals[vrows],
            vert_features={k: v[vrows] for k, v in self.vert_features.items()},
            uvs=uvs,
            face_uvs=face_uvs,
            uv_offsets=uo,
            materials=tuple(self.materials[i] for i in idx),
            face_materials=None if self.face_materials is None else self.face_materials[frows],
            validate=False,
        )

    def split(self) -> list[Meshes]:
        """One single-mesh ``Meshes`` per item."""
        return [self[i] for i in range(len(self))]


def _join_singles(items: Sequence[Meshes]) -> Meshes:
    """Pack single-mesh batches (the inverse of ``split``); optional fields must agree in presence."""

    def all_or_none(name: str) -> bool:
        present = [getattr(m, name) is not None for m in items]
        if any(present) and not all(present):
            raise ValueError(
                f"cannot join meshes where only some have {name}; join their .geometry() to keep only "
                "vertices and faces"
            )
        return all(present)

    keys = set(items[0].vert_features)
    if any(set(m.vert_features) != keys for m in items):
        raise ValueError("cannot join meshes with different vert_features names")
    has_uv = all_or_none("uvs")
    has_mat = all_or_none("face_materials")
    return Meshes.from_list(
        [m.verts for m in items],
        [m.faces for m in items],
        vert_colors=[m.vert_colors for m in items] if all_or_none("vert_colors") else None,  # type: ignore[misc]
        vert_normals=[m.vert_normals for m in items] if all_or_none("vert_normals") else None,  # type: ignore[misc]
        vert_features={k: [m.vert_features[k] for m in items] for k in keys},
        uvs=[m.uvs for m in items] if has_uv else None,  # type: ignore[misc]
        face_uvs=[m.face_uvs for m in items] if has_uv else None,  # type: ignore[misc]
        materials=[m.materials[0] for m in items] if has_mat else None,
        face_materials=[m.face_materials for m in items] if has_mat else None,  # type: ignore[misc]
    )


def _cat(
    tensors: list[Tensor], empty_shape: tuple[int, int], dtype: torch.dtype, device: torch.device
) -> Tensor:
    return torch.cat(tensors) if tensors else torch.zeros(empty_shape, dtype=dtype, device=device)
