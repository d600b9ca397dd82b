"""Shading of rasterised pixels, computed on the covered pixels only (packed), then scattered to images.

A ``PixelSamples`` lists ``M`` surface samples seen through pixels: the covered pixels of the nearest layer
(``from_fragments``), or the pixel-face pairs of a soft renderer (a pixel may then hold several). Each has
a flat pixel index ``b * H * W + i * W + j``, a camera, a face and barycentrics. Every quantity below is
``(M, C)``; memory and time grow with the samples, not with the image size.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from typing import TypeVar

import torch
from torch import Tensor

from ..backends.numba import use_numba
from ..core.cameras import Cameras
from ..core.lights import Lights
from ..core.materials import PhongMaterial
from ..core.meshes import Meshes
from ..core.packing import gather_rows, scatter_rows
from ..core.shading import shade_unit_normals
from ..core.vectors import dot, safe_normalize
from .rasterize import Fragments
from .texture import TextureFilter, TextureWrap, texture_by_material


class _Interpolate(torch.autograd.Function):
    """``out[m] = sum_k bary[m, k] * attrs[rows[m, k]]`` with a written-out backward:
    ``v_attrs[rows[m, k]] += bary[m, k] * grad[m]`` (one ``index_add`` per corner) and
    ``v_bary[m, k] = grad[m] . attrs[rows[m, k]]``. Autograd's version slices ``bary`` per corner, and each
    slice's backward zero-fills a full ``(M, 3)`` tensor; on CPU this costs several times more. The corner
    values are gathered again in the backward rather than kept (three ``(M, C)`` tensors: a fifth of what
    SoftRas on the bunny held for its backward)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, attrs: Tensor, rows: Tensor, bary: Tensor
    ) -> Tensor:
        b = bary.detach().T.contiguous()
        v = [gather_rows(attrs, rows[:, k]) for k in range(3)]
        ctx.save_for_backward(attrs, rows, b)
        out = v[0] * b[0][:, None]
        for k in (1, 2):
            out = torch.addcmul(out, v[k], b[k][:, None])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, None, Tensor | None]:
        attrs, rows, b = ctx.saved_tensors  # type: ignore[attr-defined]
        need_attrs, _, need_bary = ctx.needs_input_grad  # type: ignore[attr-defined]
        grad = grad.contiguous()
        v_attrs = v_bary = None
        if need_attrs:
            v_attrs = torch.zeros_like(attrs)
            for k in range(3):
                v_attrs.index_add_(0, rows[:, k], grad * b[k][:, None])
        if need_bary:
            v_bary = torch.stack([(grad * gather_rows(attrs, rows[:, k])).sum(-1) for k in range(3)], 1)
        return v_attrs, None, v_bary


@dataclass(frozen=True)
class PixelSamples:
    """Surface samples seen through pixels (see the module docstring).

    Attributes:
        index: ``(M,)`` flat pixel index ``b * H * W + i * W + j``.
        camera: ``(M,)`` camera ``b`` of each pixel.
        face: ``(M,)`` packed face id.
        bary: ``(M, 3)`` barycentrics (autograd flows through them).
        bary_derivs: ``(M, 3, 2)`` screen-space derivatives of ``bary``, or None.
        backend: who interpolates: "torch", "numba" (compiled, CPU) or "auto" (numba on CPU when
            installed); the results agree up to the order of float additions.
    """

    index: Tensor
    camera: Tensor
    face: Tensor
    bary: Tensor
    bary_derivs: Tensor | None
    backend: str = "auto"

    @staticmethod
    def from_fragments(fr: Fragments, backend: str = "auto") -> PixelSamples:
        _, H, W, _ = fr.face_id.shape
        near = fr.nearest
        if near is not None and near.source is fr.bary:
            return PixelSamples(
                index=near.index,
                camera=torch.div(near.index, H * W, rounding_mode="floor"),
                face=near.face,
                bary=near.bary,
                bary_derivs=near.bary_derivs if fr.bary_derivs is not None else None,
                backend=backend,
            )
        face_all = fr.face_id[..., 0].reshape(-1)
        index = torch.nonzero(face_all >= 0).flatten()
        derivs = None if fr.bary_derivs is None else fr.bary_derivs[..., 0, :, :].reshape(-1, 3, 2)[index]
        return PixelSamples(
            index=index,
            camera=torch.div(index, H * W, rounding_mode="floor"),
            face=gather_rows(face_all, index),
            bary=gather_rows(fr.bary[..., 0, :].reshape(-1, 3), index),
            bary_derivs=derivs,
            backend=backend,
        )

    def interpolate(self, attrs: Tensor, faces: Tensor) -> Tensor:
        """``(M, C)``: ``sum_c bary[m, c] * attrs[faces[face[m], c]]``; ``attrs`` ``(A, C)`` or, per camera,
        ``(B, A, C)``."""
        rows = gather_rows(faces, self.face)
        if attrs.dim() == 3:  # one set of attributes per camera: flatten (B, A) into rows
            rows = rows + (self.camera * attrs.shape[1])[:, None]
            attrs = attrs.reshape(-1, attrs.shape[-1])
        if attrs.dtype == self.bary.dtype and use_numba(self.backend, attrs.device):
            from ..backends.numba.interpolate import CompiledInterpolate

            compiled: Tensor = CompiledInterpolate.apply(attrs, rows, self.bary)
            return compiled
        out: Tensor = _Interpolate.apply(attrs, rows, self.bary)
        return out

    def derivatives(self, attrs: Tensor, faces: Tensor) -> Tensor:
        """``(M, C, 2)`` screen-space derivatives ``d/du``, ``d/dv`` of ``interpolate(attrs, faces)``."""
        if self.bary_derivs is None:
            raise ValueError("screen-space derivatives need RasterSettings(bary_derivatives=True)")
        vals = gather_rows(attrs, gather_rows(faces, self.face))  # (M, 3, C)
        return (self.bary_derivs[:, :, None, :] * vals[..., None]).sum(1)

    def scatter(self, values: Tensor, num_pixels: int, fill: Tensor | None = None) -> Tensor:
        """``(num_pixels, C)``: ``values`` at the covered pixels, ``fill`` ``(C,)`` (zeros when None)
        elsewhere."""
        return scatter_rows(values, self.index, num_pixels, fill)


def vertex_normals(meshes: Meshes, backend: str = "auto") -> Tensor:
    """The mesh's given vertex normals, or area-weighted ones computed from the geometry
    (``Meshes.compute_vert_normals``, or its compiled twin where ``backend`` picks numba)."""
    if meshes.vert_normals is not None:
        return meshes.vert_normals
    if use_numba(backend, meshes.device):
        from ..backends.numba.normals import CompiledVertexNormals

        normals: Tensor = CompiledVertexNormals.apply(meshes.verts, meshes.faces)
        return normals
    return meshes.compute_vert_normals()


def surface_points_and_normals(px: PixelSamples, meshes: Meshes, shading: str) -> tuple[Tensor, Tensor]:
    """``(points, normals)``, each ``(M, 3)``: the surface points seen and their unit normals, face normals
    for "flat" shading, else interpolated vertex normals (interpolated together with the positions: one
    gather per corner instead of two)."""
    if shading == "flat":
        return px.interpolate(meshes.verts, meshes.faces), gather_rows(meshes.face_normals(), px.face)
    both = px.interpolate(torch.cat([meshes.verts, vertex_normals(meshes, px.backend)], -1), meshes.faces)
    return both[:, :3], safe_normalize(both[:, 3:])


def view_directions(points: Tensor, cameras: Cameras, camera: Tensor) -> Tensor:
    """``(M, 3)`` directions from camera ``camera[m]`` towards ``points[m]``."""
    if cameras.projection == "perspective":
        return points - gather_rows(cameras.camera_centers(), camera)
    return gather_rows(cameras.R[:, 2], camera)


def face_the_viewer(normals: Tensor, view: Tensor) -> Tensor:
    """Flip the normals that point away from the viewer (two-sided lighting)."""
    return torch.where(dot(normals, view)[:, None] > 0, -normals, normals)


def pixel_albedo(px: PixelSamples, meshes: Meshes, filter: TextureFilter, wrap: TextureWrap) -> Tensor:
    """``(M, 3)`` albedo: the face's material texture (or diffuse colour) times the vertex colours; white
    when the mesh has neither."""
    albedo = meshes.verts.new_ones(px.face.shape[0], 3)
    if meshes.vert_colors is not None:
        albedo = px.interpolate(meshes.vert_colors[:, :3], meshes.faces)
    if meshes.face_materials is None or not any(meshes.materials):
        return albedo
    flat = [m for ms in meshes.materials for m in ms]
    counts = torch.tensor([len(ms) for ms in meshes.materials], device=meshes.device)
    first = torch.cumsum(counts, 0) - counts
    gm = (first[meshes.face_to_mesh] + meshes.face_materials)[px.face]  # global material id per pixel
    mat_albedo = torch.stack([m.diffuse.to(albedo) for m in flat])[gm]
    textured = [i for i, m in enumerate(flat) if m.diffuse_map is not None]
    if textured:
        if meshes.uvs is None or meshes.face_uvs is None:
            raise ValueError("meshes have texture maps but no uvs/face_uvs to sample them with")
        lookup = torch.full((len(flat),), -1, dtype=torch.int64, device=meshes.device)
        lookup[textured] = torch.arange(len(textured), device=meshes.device)
        map_id = lookup[gm]
        uv = px.interpolate(meshes.uvs, meshes.face_uvs)
        uv_da = px.derivatives(meshes.uvs, meshes.face_uvs).reshape(-1, 4) if filter == "trilinear" else None
        maps = [m[..., :3].to(albedo) for m in (flat[i].diffuse_map for i in textured) if m is not None]
        tex = texture_by_material(
            maps, map_id[None], uv[None], None if uv_da is None else uv_da[None], filter=filter, wrap=wrap
        )[0]
        mat_albedo = torch.where((map_id >= 0)[:, None], tex, mat_albedo)
    return albedo * mat_albedo


_T = TypeVar("_T")


def select_batch(obj: _T, index: Tensor, batch: int) -> _T:
    """A copy of a batched dataclass (lights, materials) whose tensors with ``batch`` rows are indexed by
    ``index``; tensors with one row broadcast unchanged. Nested dataclasses are handled too."""
    if obj is None or not is_dataclass(obj) or batch == 1:
        return obj
    changes: dict[str, object] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch:
            changes[f.name] = gather_rows(value, index)
        elif is_dataclass(value):
            changes[f.name] = select_batch(value, index, batch)
    return replace(obj, **changes)  # type: ignore[type-var]


def view_origins(points: Tensor, cameras: Cameras, camera: Tensor) -> Tensor:
    """``(M, 3)`` points the surface sees the viewer from: camera centres, or for orthographic cameras a
    point one unit back along the viewing axis (so the view direction is exact for both)."""
    if cameras.projection == "perspective":
        return gather_rows(cameras.camera_centers(), camera)
    return points - gather_rows(cameras.R[:, 2], camera)


def shade_pixels(
    camera: Tensor,
    points: Tensor,
    normals: Tensor,
    albedo: Tensor,
    cameras: Cameras,
    lights: Lights,
    material: PhongMaterial | None,
    model: str,
) -> Tensor:
    """``(M, 3)`` radiance at ``M`` surface points with unit (or zero) ``normals``, seen by cameras
    ``camera`` (``(M,)``); the renderers' inputs are checked already, so ``shade_unit_normals`` skips
    ``shade``'s checks and normalisation.

    Lights and materials shared by all cameras shade the points as one batch item with a viewer per point;
    per-camera ones shade each point as its own batch item so that its camera's lights and material apply.
    """
    B = len(cameras)
    origins = view_origins(points, cameras, camera)
    shared = lights.batch_size == 1 and (material is None or material.batch_size == 1)
    if shared or B == 1:
        one = (points[None], normals[None], albedo[None], origins[None])
        return shade_unit_normals(*one, lights, material, model)[0]
    lights_px = select_batch(lights, camera, B)
    material_px = select_batch(material, camera, B)
    each = (points[:, None], normals[:, None], albedo[:, None], origins[:, None])
    return shade_unit_normals(*each, lights_px, material_px, model)[:, 0]


def gouraud_light(
    px: PixelSamples,
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights,
    material: PhongMaterial | None,
    model: str,
    two_sided: bool,
) -> tuple[Tensor, Tensor]:
    """Gouraud shading: ``(diffuse, specular)`` light computed per vertex and camera with unit albedo,
    interpolated to the covered pixels (``(M, 3)`` each); the colour is ``albedo * diffuse + specular``."""
    B, V = len(cameras), meshes.verts.shape[0]
    cam = torch.arange(B, device=meshes.device).repeat_interleave(V)
    pts = meshes.verts.repeat(B, 1)
    nrm = safe_normalize(vertex_normals(meshes)).repeat(B, 1)
    if two_sided:
        nrm = face_the_viewer(nrm, view_directions(pts, cameras, cam))
    ones = torch.ones_like(pts)
    no_specular = PhongMaterial(0.0).to(pts.device, pts.dtype)
    diffuse = shade_pixels(cam, pts, nrm, ones, cameras, lights, no_specular, model)
    specular = torch.zeros_like(diffuse)
    if model != "lambert":
        specular = shade_pixels(cam, pts, nrm, torch.zeros_like(pts), cameras, lights, material, model)
    light = px.interpolate(torch.cat([diffuse, specular], -1).reshape(B, V, 6), meshes.faces)
    return light[:, :3], light[:, 3:]
