"""``render``: the mesh pipeline in one call, with one entry point for every mesh method.

``render(meshes, cameras, lights, material, method=...)`` rasterises, interpolates, textures, shades and
(for ``method="antialias"``) antialiases, and returns a frozen ``RenderOutput``. Methods are registered by
name (``register_method``) so that soft and approximated-gradient renderers plug into the same call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from ..backends.numba import use_numba
from ..core.cameras import Cameras
from ..core.checks import check_choice
from ..core.lights import Lights
from ..core.materials import PhongMaterial
from ..core.meshes import Meshes
from ..core.packing import gather_rows
from . import softras_compiled
from .antialias import antialias, cached_edge_neighbors
from .dibr import DIBRSettings, soft_silhouette
from .instances import FaceInstances, check_scene
from .nmr import NMRSettings, nmr_visibility
from .opendr import boundary_instances, boundary_pixels, opendr_visibility
from .pixel_shading import (
    PixelSamples,
    face_the_viewer,
    gouraud_light,
    pixel_albedo,
    shade_pixels,
    surface_points_and_normals,
    vertex_normals,
    view_directions,
)
from .rasterize import Fragments, RasterSettings, rasterize
from .softras import (
    SoftRasSettings,
    aggregate_alpha,
    aggregate_rgb,
    colour_pairs,
    select_pairs,
    soft_pairs,
    with_surface,
)
from .texture import TextureFilter, TextureWrap
from .visibility import visibility_scene


@dataclass(frozen=True)
class RenderSettings:
    """Rarely changed knobs of ``render``.

    Attributes:
        shading: "smooth" (per-pixel normals interpolated from vertex normals), "flat" (face normals) or
            "gouraud" (lighting computed at vertices and interpolated, then multiplied by the albedo).
        model: reflection model, "lambert", "phong" or "blinn_phong".
        texture_filter: "nearest", "bilinear" or "trilinear" (mipmapped, uses screen-space derivatives).
        texture_wrap: "repeat" or "clamp".
        background: RGB of uncovered pixels.
        two_sided: light back faces as if their normal faced the camera (for open meshes).
        raster: settings of the rasterisation stage.
        softras: parameters of the "softras" method (sigma, gamma, epsilon, distance, aggregation).
        dibr: parameters of the "dibr" method (delta, neighbourhood).
        nmr: parameters of the "nmr" method (search distance, memory budget).
        backend: the z-buffer of the hard rasterisation, "auto", "torch" or "numba" (``rasterize``).
    """

    shading: str = "smooth"
    model: str = "lambert"
    texture_filter: TextureFilter = "bilinear"
    texture_wrap: TextureWrap = "repeat"
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    two_sided: bool = True
    raster: RasterSettings = field(default_factory=RasterSettings)
    softras: SoftRasSettings = field(default_factory=SoftRasSettings)
    dibr: DIBRSettings = field(default_factory=DIBRSettings)
    nmr: NMRSettings = field(default_factory=NMRSettings)
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_choice(self.backend, "backend", ("auto", "torch", "numba"))
        check_choice(self.shading, "shading", ("smooth", "flat", "gouraud"))
        check_choice(self.model, "model", ("lambert", "phong", "blinn_phong"))
        check_choice(self.texture_filter, "texture_filter", ("nearest", "bilinear", "trilinear"))
        check_choice(self.texture_wrap, "texture_wrap", ("repeat", "clamp"))
        if len(self.background) != 3:
            raise ValueError(f"background must be three floats (RGB), got {self.background!r}")


@dataclass(frozen=True)
class RenderOutput:
    """What ``render`` returns for ``B`` cameras and ``H x W`` pixels.

    Attributes:
        image: ``(B, H, W, 3)`` linear RGB, background where nothing is covered.
        alpha: ``(B, H, W, 1)`` coverage (0 or 1 for "hard", fractional at silhouettes for "antialias").
        depth: ``(B, H, W, 1)`` camera-space depth of the nearest surface, 0 where uncovered.
        normals: ``(B, H, W, 3)`` unit world-space shading normals, 0 where uncovered.
        face_id: ``(B, H, W, 1)`` packed id of the nearest face, -1 where uncovered.
        fragments: the rasteriser's output, for further stages.
    """

    image: Tensor
    alpha: Tensor
    depth: Tensor
    normals: Tensor
    face_id: Tensor
    fragments: Fragments


RenderMethod = Callable[
    [Meshes, Cameras, "Lights | None", "PhongMaterial | None", RenderSettings], RenderOutput
]
_METHODS: dict[str, RenderMethod] = {}


def register_method(name: str, fn: RenderMethod) -> None:
    """Make ``render(..., method=name)`` call ``fn(meshes, cameras, lights, material, settings)``."""
    _METHODS[name] = fn


def available_methods() -> list[str]:
    """Names accepted by ``render``'s ``method``."""
    return sorted(_METHODS)


def render(
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None = None,
    material: PhongMaterial | None = None,
    *,
    method: str = "hard",
    settings: RenderSettings | None = None,
) -> RenderOutput:
    """Render meshes with a registered method.

    Args:
        meshes: 1 mesh (broadcast to every camera) or one per camera. The albedo is the material's
            texture (``diffuse_map``, sampled by UV) or else its ``diffuse`` colour, times the vertex
            colours when present; white when the mesh has neither.
        cameras: ``B`` cameras.
        lights: None renders the albedo unlit; otherwise shaded by ``settings.model``.
        material: specular colour and shininess for "phong" and "blinn_phong".
        method: "hard" (z-buffer, no visibility gradients), "antialias" (analytic edge antialiasing,
            Laine et al. 2020), "softras" (Soft Rasterizer, Liu et al. 2019), "dibr" (Chen et al. 2019),
            "nmr" (the hard render with Kato et al. 2018's approximate visibility gradient) or "opendr"
            (the hard render with Loper and Black 2014's boundary derivatives);
            further methods register themselves (``available_methods()``).
        settings: see ``RenderSettings``.
    """
    check_choice(method, "method", available_methods())
    return _METHODS[method](meshes, cameras, lights, material, settings or RenderSettings())


def render_hard(
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
) -> RenderOutput:
    """The "hard" method: rasterise, then ``shade_fragments``."""
    raster = replace(settings.raster, bary_derivatives=settings.texture_filter == "trilinear")
    fr = rasterize(meshes, cameras, raster, backend=settings.backend)
    return shade_fragments(fr, meshes, cameras, lights, material, settings)


def render_antialias(
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
) -> RenderOutput:
    """The "antialias" method: the hard render with colour and alpha antialiased together."""
    nb = cached_edge_neighbors(meshes)
    return _hard_then(
        lambda rgba, fr: antialias(rgba, fr, meshes, cameras, neighbors=nb),
        meshes,
        cameras,
        lights,
        material,
        settings,
    )


def _hard_then(
    post: Callable[[Tensor, Fragments], Tensor],
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
) -> RenderOutput:
    """The hard render with ``post(rgba, fragments)`` applied to its colour and alpha together (the methods
    that keep the hard render and change its edges or its visibility gradient)."""
    out = render_hard(meshes, cameras, lights, material, settings)
    rgba = post(torch.cat([out.image, out.alpha], -1), out.fragments)
    return replace(out, image=rgba[..., :3], alpha=rgba[..., 3:])


register_method("hard", render_hard)
register_method("antialias", render_antialias)


def sample_colors(
    px: PixelSamples,
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
    stop_geometry: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``(colors, normals)``, each ``(M, 3)``: the shaded colour and shading normal of every sample.

    ``stop_geometry`` ``(M,)`` bool stops the gradient of the sample's barycentrics, surface point and
    normal where True: its colour then still differentiates with respect to textures, colours, lights and
    materials, but not with respect to the vertex positions (except through Gouraud vertex lighting)."""
    if stop_geometry is not None:
        px = replace(px, bary=_stopped(px.bary, stop_geometry))
    points, normals = surface_points_and_normals(px, meshes, settings.shading)
    if stop_geometry is not None:
        points, normals = _stopped(points, stop_geometry), _stopped(normals, stop_geometry)
    if settings.two_sided:
        normals = face_the_viewer(normals, view_directions(points, cameras, px.camera))
    albedo = pixel_albedo(px, meshes, settings.texture_filter, settings.texture_wrap)
    if lights is None:
        return albedo, normals
    if settings.shading == "gouraud":
        diffuse, specular = gouraud_light(
            px, meshes, cameras, lights, material, settings.model, settings.two_sided
        )
        return albedo * diffuse + specular, normals
    return shade_pixels(
        px.camera, points, normals, albedo, cameras, lights, material, settings.model
    ), normals


def _stopped(x: Tensor, stop: Tensor) -> Tensor:
    """``x`` with its gradient stopped on the rows where ``stop`` is True."""
    return torch.where(stop[:, None], x.detach(), x)


def shade_fragments(
    fr: Fragments,
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
    stop_geometry: Tensor | None = None,
) -> RenderOutput:
    """Colour the nearest layer of ``fr`` (albedo, normals, lighting) on the covered pixels only;
    ``stop_geometry`` is an optional ``(B * H * W,)`` bool per pixel (see ``sample_colors``)."""
    B, H, W, _ = fr.face_id.shape
    px = PixelSamples.from_fragments(fr, settings.backend)
    stop = None if stop_geometry is None else gather_rows(stop_geometry, px.index)
    color, normals = sample_colors(px, meshes, cameras, lights, material, settings, stop)
    n = B * H * W
    bg = None if not any(settings.background) else color.new_tensor(settings.background)
    return RenderOutput(
        image=px.scatter(color, n, bg).reshape(B, H, W, 3),
        alpha=(fr.face_id[..., :1] >= 0).to(color.dtype),
        depth=fr.depth[..., :1],
        normals=px.scatter(normals, n).reshape(B, H, W, 3),
        face_id=fr.face_id[..., :1],
        fragments=fr,
    )


def render_softras(
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
) -> RenderOutput:
    """The "softras" method (``gradiance.mesh.softras``): soft colour and silhouette; depth, normals and
    face ids of the nearest face come from the hard render."""
    if settings.texture_filter == "trilinear":
        raise ValueError(
            "texture_filter='trilinear' needs screen-space derivatives, which 'softras' does not provide"
        )
    check_scene(meshes, cameras, "auto")
    s, (H, W), B = settings.softras, cameras.image_size, len(cameras)
    n = B * H * W
    inst = FaceInstances.build(meshes, cameras)
    bg = torch.tensor(settings.background, dtype=inst.hom.dtype, device=inst.hom.device)
    shaded = meshes
    if settings.shading == "smooth" and meshes.vert_normals is None:  # once, not per chunk of pairs
        shaded = replace(meshes, vert_normals=vertex_normals(meshes, settings.backend))

    def shade(pixel: Tensor, inst_id: Tensor, bary: Tensor) -> Tensor:
        cam, face = gather_rows(inst.camera, inst_id), gather_rows(inst.face, inst_id)
        px = PixelSamples(
            index=pixel, camera=cam, face=face, bary=bary, bary_derivs=None, backend=settings.backend
        )
        return sample_colors(px, shaded, cameras, lights, material, settings)[0]

    compiled = _compiled_softras(inst, cameras, settings)
    if compiled is not None and s.aggregate_rgb == "softmax":
        geo, owner = compiled
        style = (settings.shading, settings.model, settings.two_sided)
        fused = softras_compiled.fused_shading(shaded, cameras, lights, material, style)
        alpha, rgb = softras_compiled.compiled_softras(geo, owner, inst, cameras, s, fused or shade, bg)
    else:
        pairs = soft_pairs(inst, cameras, s, surface="none", backend=settings.backend)
        alpha = aggregate_alpha(pairs, n, s.aggregate_alpha)
        pairs = select_pairs(pairs, colour_pairs(pairs, n, cameras.near_t, cameras.far_t, s, (inst, (H, W))))
        pairs = with_surface(pairs, inst, (H, W))
        colors = shade(pairs.pixel, pairs.instance, pairs.surface()[0])
        rgb = aggregate_rgb(pairs, colors, bg, n, cameras.near_t, cameras.far_t, s)
    fr = rasterize(meshes, cameras, backend=settings.backend)
    hard = shade_fragments(fr, meshes, cameras, None, None, settings)
    return replace(hard, image=rgb.reshape(B, H, W, 3), alpha=alpha.reshape(B, H, W, 1))


register_method("softras", render_softras)


def render_silhouette(
    meshes: Meshes, cameras: Cameras, method: str = "softras", settings: RenderSettings | None = None
) -> Tensor:
    """``(B, H, W, 1)`` alpha of ``render(meshes, cameras, method=method, settings=settings)`` without its
    colour: for "softras" only the coverage pairs are computed (no barycentrics, depths or shading); other
    methods render and return their alpha."""
    check_choice(method, "method", available_methods())
    settings = settings or RenderSettings()
    if method != "softras":
        return render(meshes, cameras, method=method, settings=settings).alpha
    check_scene(meshes, cameras, "auto")
    (H, W), B = cameras.image_size, len(cameras)
    inst = FaceInstances.build(meshes, cameras)
    compiled = _compiled_softras(inst, cameras, settings)
    if compiled is not None:
        return softras_compiled.compiled_alpha(compiled[0]).reshape(B, H, W, 1)
    pairs = soft_pairs(inst, cameras, settings.softras, surface="none", backend=settings.backend)
    return aggregate_alpha(pairs, B * H * W, settings.softras.aggregate_alpha).reshape(B, H, W, 1)


def _compiled_softras(
    inst: FaceInstances, cameras: Cameras, settings: RenderSettings
) -> tuple[softras_compiled.SoftGeometry, Tensor] | None:
    """The compiled SoftRas kernels' geometry where the backend picks numba and they apply, else None."""
    if not use_numba(settings.backend, inst.hom.device):
        return None
    return softras_compiled.compiled_geometry(inst, cameras, settings.softras)


def render_dibr(
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
) -> RenderOutput:
    """The "dibr" method (``gradiance.mesh.dibr``): the hard render's interpolated colours with DIB-R's
    soft silhouette on background pixels."""
    out = render_hard(meshes, cameras, lights, material, settings)
    covered = out.face_id.reshape(-1) >= 0
    inst = FaceInstances.build(meshes, cameras)
    alpha = soft_silhouette(inst, cameras, covered, settings.dibr, settings.backend)
    return replace(out, alpha=alpha.reshape(out.alpha.shape))


register_method("dibr", render_dibr)


def render_nmr(
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
) -> RenderOutput:
    """The "nmr" method (``gradiance.mesh.nmr``): the hard render, with the Neural 3D Mesh Renderer's
    approximate visibility gradient for colour and alpha together."""
    return _hard_then(
        lambda rgba, fr: nmr_visibility(rgba, fr, meshes, cameras, settings.nmr),
        meshes,
        cameras,
        lights,
        material,
        settings,
    )


register_method("nmr", render_nmr)


def render_opendr(
    meshes: Meshes,
    cameras: Cameras,
    lights: Lights | None,
    material: PhongMaterial | None,
    settings: RenderSettings,
) -> RenderOutput:
    """The "opendr" method (``gradiance.mesh.opendr``): the hard render, with OpenDR's image-space
    derivatives at boundary pixels for colour and alpha together. At those pixels the geometric terms of
    the shading stop their gradient (the boundary term replaces them) while textures, colours, lights and
    materials keep theirs."""
    raster = replace(settings.raster, bary_derivatives=settings.texture_filter == "trilinear")
    fr = rasterize(meshes, cameras, raster, backend=settings.backend)
    prepared = visibility_scene(fr, meshes, cameras)
    boundary = boundary_instances(prepared[1], len(cameras))  # found once, for forward and backward
    stop = boundary_pixels(boundary, prepared[1])
    out = shade_fragments(fr, meshes, cameras, lights, material, settings, stop)
    rgba = opendr_visibility(
        torch.cat([out.image, out.alpha], -1),
        fr,
        meshes,
        cameras,
        prepared=prepared,
        geometry_stopped=True,
        boundary=boundary,
    )
    return replace(out, image=rgba[..., :3], alpha=rgba[..., 3:])


register_method("opendr", render_opendr)
