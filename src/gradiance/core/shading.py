"""Per-point shading: Lambert, Phong and Blinn-Phong reflection of ambient, directional, point and SH lights.

These functions know nothing about renderers. A mesh renderer calls ``shade`` per pixel with positions,
normals and albedo interpolated at the pixels, shape ``(B, H, W, 3)``, or per vertex for Gouraud shading,
shape ``(B, V, 3)``; point, Gaussian and implicit renderers call it on their own points. Every per-point
tensor is ``(B, *, 3)`` with any middle dimensions, and batch-level parameters (lights, material, camera
centres) broadcast over them. Every batch dimension may be 1 (shared) or ``B``.

The outgoing radiance towards the camera at a point with unit normal ``n``, albedo ``a`` and unit
direction ``v`` to the camera is

    radiance = a * (ambient + sum_i c_i w_i max(n . l_i, 0) + E(n) / pi)
               + k_s * sum_i c_i w_i [n . l_i > 0] spec_i

summed over the directional and point lights ``i`` with colour ``c_i``, unit direction ``l_i`` towards
the light and attenuation ``w_i`` (1 for directional lights, ``1 / (c0 + c1 d + c2 d^2)`` for point lights
at distance ``d``); ``E(n)`` is the SH irradiance (``SHLighting``) and ``k_s`` the specular colour.
``spec_i`` is 0 for ``"lambert"``, ``max(r_i . v, 0) ** s`` with ``r_i = 2 (n . l_i) n - l_i`` for
``"phong"`` (Phong 1975, "Illumination for Computer Generated Pictures", CACM 18(6)), and
``max(n . h_i, 0) ** s`` with ``h_i = (l_i + v) / |l_i + v|`` for ``"blinn_phong"`` (Blinn 1977, "Models of
Light Reflection for Computer Synthesized Pictures", SIGGRAPH). SH lights contribute no specular term.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .checks import check_choice, check_same_device, check_tensor
from .lights import (
    AmbientLight,
    DirectionalLights,
    Lights,
    PointLights,
    SHLighting,
    common_batch_size,
)
from .materials import PhongMaterial
from .vectors import dot, safe_normalize

SHADING_MODELS = ("lambert", "phong", "blinn_phong")
LightsLike = Lights | AmbientLight | DirectionalLights | PointLights | SHLighting
# Smallest base of ``x ** s`` (keeps the gradients w.r.t. x and s finite where x is clamped to 0).
_POW_EPS = 1e-12


def shade(
    points: Tensor,
    normals: Tensor,
    albedo: Tensor,
    view_origins: Tensor | None,
    lights: LightsLike,
    material: PhongMaterial | None = None,
    model: str = "lambert",
) -> Tensor:
    """Radiance reflected towards the camera by surface points (the module docstring has the formula).

    Args:
        points: ``(B, *, 3)`` world positions (used by point lights and the view direction).
        normals: ``(B, *, 3)`` world normals, normalised here. Where a normal is zero the point has no
            orientation: the directional, point and SH terms are zero there (the ambient term remains)
            and gradients stay finite.
        albedo: ``(B, *, 3)`` diffuse albedo (linear RGB), e.g. interpolated vertex colours or texels.
        view_origins: ``(B, 3)`` camera centres (``Cameras.camera_centers()``), or ``(B, *, 3)`` one viewer
            position per point (several cameras shading one packed batch); required by ``"phong"`` and
            ``"blinn_phong"``, may be None for ``"lambert"``.
        lights: a ``Lights`` or a single light object.
        material: specular colour and shininess; None uses ``PhongMaterial()``'s defaults (specular 0.2,
            shininess 32) on the device of ``points``. Ignored by ``"lambert"``.
        model: ``"lambert"``, ``"phong"`` or ``"blinn_phong"``.

    Returns:
        ``(B, *, 3)`` radiance, ``out[b, ...]`` for point ``points[b, ...]``; ``B`` is the largest batch size
        of the inputs.
    """
    check_choice(model, "model", SHADING_MODELS)
    lights = _as_lights(lights)
    mid = _check_points(points, normals, albedo)
    if view_origins is not None:
        check_tensor(view_origins, "view_origins")
        if view_origins.dim() != 2 and tuple(view_origins.shape[1:]) != tuple(points.shape[1:]):
            raise ValueError(
                "view_origins must have shape (B, 3) or (B, *, 3) like points, "
                f"got {tuple(view_origins.shape)}"
            )
        if view_origins.shape[-1] != 3:
            raise ValueError(f"view_origins must have shape (B, 3), got {tuple(view_origins.shape)}")
    elif model != "lambert":
        raise ValueError(f"view_origins (B, 3) camera centres are required by model {model!r}")
    if material is None and model != "lambert":
        material = _default_material(points.device, points.dtype)
    elif material is not None and not isinstance(material, PhongMaterial):
        raise TypeError(f"material must be a PhongMaterial or None, got {type(material).__name__}")
    tensors = {"points": points, "normals": normals, "albedo": albedo, "view_origins": view_origins}
    check_same_device(**tensors, **{f"lights.{k}": v for k, v in lights.tensors().items()})
    if material is not None:
        check_same_device(points=points, **{f"material.{k}": v for k, v in material.tensors().items()})
    sizes = {k: int(v.shape[0]) for k, v in tensors.items() if v is not None}
    sizes["lights"] = lights.batch_size
    if material is not None and model != "lambert":
        sizes["material"] = material.batch_size
    B = common_batch_size(sizes)
    p, n_raw, a = (x.reshape(x.shape[0], -1, 3) for x in (points, normals, albedo))
    out = shade_unit_normals(p, safe_normalize(n_raw), a, view_origins, lights, material, model)
    return out.expand(B, *out.shape[1:]).reshape(B, *mid, 3)


def shade_unit_normals(
    points: Tensor,
    normals: Tensor,
    albedo: Tensor,
    view_origins: Tensor | None,
    lights: Lights,
    material: PhongMaterial | None,
    model: str,
) -> Tensor:
    """``shade`` for renderers that have checked their inputs and hold unit (or zero) normals already:
    ``(B, N, 3)`` points, normals and albedo, no checks and no second normalisation. ``material`` None
    means the default Phong material, as in ``shade``."""
    if material is None and model != "lambert":
        material = _default_material(points.device, points.dtype)
    diffuse, specular = _reflect_lights(points, normals, view_origins, lights, material, model)
    out = albedo * diffuse
    if specular is not None and material is not None:
        out = out + material.specular_color_t[:, None] * specular
    return out


@functools.lru_cache(maxsize=8)
def _default_material(device: torch.device, dtype: torch.dtype) -> PhongMaterial:
    """``PhongMaterial()`` on ``device`` in ``dtype``, built once (building it costs ~0.2 ms per call)."""
    return PhongMaterial().to(device, dtype)


def _reflect_lights(
    p: Tensor,
    n: Tensor,
    view_origins: Tensor | None,
    lights: Lights,
    material: PhongMaterial | None,
    model: str,
) -> tuple[Tensor, Tensor | None]:
    """Irradiance ``(B, N, 3)`` multiplying the albedo and specular sum ``(B, N, 3)`` (or None)."""
    diffuse = torch.zeros_like(n[..., :1])
    specular: Tensor | None = None
    v = nv = s = None
    if model != "lambert" and view_origins is not None and material is not None:
        per_point = view_origins.dim() > 2
        v = safe_normalize((view_origins.reshape(p.shape) if per_point else view_origins[:, None]) - p)
        nv = dot(n, v)
        s = material.shininess_t[:, None, None]
    if lights.ambient is not None:
        diffuse = diffuse + lights.ambient.color[:, None]
    groups: list[tuple[Tensor, Tensor, Tensor | None]] = []
    if lights.directional is not None:
        groups.append(
            (safe_normalize(lights.directional.directions)[:, None], lights.directional.colors, None)
        )
    if lights.point is not None:
        groups.append(_point_light_terms(p, lights.point))
    for ldir, colors, weight in groups:
        cos = _dots(ldir, n)
        lam = cos.clamp_min(0)
        diffuse = diffuse + _mix(lam if weight is None else lam * weight, colors)
        if v is not None and nv is not None and s is not None:
            spec = _specular(cos, _dots(ldir, v), nv, s, model)
            spec = spec if weight is None else spec * weight
            specular = _mix(spec, colors) if specular is None else specular + _mix(spec, colors)
    if lights.sh is not None:
        valid = ((n * n).sum(-1, keepdim=True) > 0).to(n.dtype)
        diffuse = diffuse + lights.sh.irradiance(n) * valid / math.pi
    return diffuse, specular


def _point_light_terms(p: Tensor, lights: PointLights) -> tuple[Tensor, Tensor, Tensor | None]:
    """Unit directions ``(B, N, L, 3)`` to the lights, colours ``(B, L, 3)`` and attenuation ``(B, N, L)``."""
    to_light = lights.positions[:, None] - p[:, :, None]
    ldir = safe_normalize(to_light)
    if lights.attenuation is None:
        return ldir, lights.colors, None
    d = (to_light * to_light).sum(-1).clamp_min(_POW_EPS**2).sqrt()
    c0, c1, c2 = (c[:, None] for c in lights.attenuation.unbind(-1))
    return ldir, lights.colors, 1.0 / (c0 + c1 * d + c2 * d * d).clamp_min(_POW_EPS)


def _specular(cos: Tensor, lv: Tensor, nv: Tensor, s: Tensor, model: str) -> Tensor:
    """``[n . l > 0] max(x, 0) ** s`` with ``x = r . v`` (Phong) or ``n . h`` (Blinn-Phong), ``(B, N, L)``.

    ``cos = n . l``, ``lv = l . v`` are ``(B, N, L)``, ``nv = n . v`` is ``(B, N)``, ``s`` is ``(B, 1, 1)``.
    Uses ``r . v = 2 (n . l)(n . v) - l . v`` and ``|l + v|^2 = 2 + 2 l . v`` for unit ``l``, ``v``.
    """
    if model == "phong":
        x = 2 * cos * nv[..., None] - lv
    else:
        x = (cos + nv[..., None]) / (2 + 2 * lv).clamp_min(_POW_EPS**2).sqrt()
    spec = torch.where(x > 0, x.clamp_min(_POW_EPS) ** s, torch.zeros_like(x))
    return spec * (cos > 0).to(x.dtype)


def _dots(ldir: Tensor, x: Tensor) -> Tensor:
    """``(B, N, L)`` dot products of light directions ``(B, 1 or N, L, 3)`` with vectors ``(B, N, 3)``."""
    if ldir.shape[1] == 1:
        return x @ ldir[:, 0].transpose(-1, -2)
    return dot(ldir, x[:, :, None])  # elementwise: a batched matmul of 1x3 blocks is far slower


def _mix(weights: Tensor, colors: Tensor) -> Tensor:
    """``(B, N, 3)`` sums over lights of ``weights`` ``(B, N, L)`` times ``colors`` ``(B, L, 3)``."""
    if weights.shape[-1] == 1:  # one light: a broadcast product beats a matmul with an inner size of 1
        return weights * colors
    return weights @ colors


def _as_lights(lights: object) -> Lights:
    if isinstance(lights, Lights):
        return lights
    for name, kind in (
        ("ambient", AmbientLight),
        ("directional", DirectionalLights),
        ("point", PointLights),
        ("sh", SHLighting),
    ):
        if isinstance(lights, kind):
            return Lights(**{name: lights})  # type: ignore[arg-type]
    raise TypeError(f"lights must be a Lights or a single light object, got {type(lights).__name__}")


def _check_points(points: Tensor, normals: Tensor, albedo: Tensor) -> tuple[int, ...]:
    """Check the per-point inputs; return their common middle dimensions."""
    for name, x in (("points", points), ("normals", normals), ("albedo", albedo)):
        check_tensor(x, name)
        if x.dim() < 2 or x.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (B, *, 3), got {tuple(x.shape)}")
    mid = tuple(points.shape[1:-1])
    for name, x in (("normals", normals), ("albedo", albedo)):
        if tuple(x.shape[1:-1]) != mid:
            want = "(B, " + "".join(f"{m}, " for m in mid) + "3)"
            raise ValueError(f"{name} must have shape {want} like points, got {tuple(x.shape)}")
    return mid
