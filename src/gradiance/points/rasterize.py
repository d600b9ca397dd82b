"""Point rasterisation: every point seen by a camera becomes a screen-space disk, and every pixel whose
centre lies inside that disk becomes one pixel-point fragment with a kernel weight.

1. Projection. Point ``p`` of cloud ``n`` is seen by camera ``b`` (one cloud broadcast over ``B`` cameras,
   or ``B`` clouds paired with ``B`` cameras, as ``FaceInstances`` pairs meshes with cameras) at camera
   coordinates ``(x, y, z) = R_b X_p + t_b`` and pixel coordinates ``(u, v) = (fx x / z + cx, fy y / z + cy)``
   (orthographic: ``(fx x + cx, fy y + cy)``). Points outside ``near <= z <= far`` are culled: for
   perspective cameras (``near > 0``) this culls every point behind the camera or exactly on it, so no
   division by ``z <= 0`` ever happens and culled points receive zero gradient.
2. Footprint. The radius in pixels is ``r_px = f r / z`` for world-space radii (``radius_mode="world"``;
   ``f = (fx + fy) / 2`` the camera's mean focal length in pixels, ``r_px = f r`` for orthographic
   cameras; a world-space sphere of radius ``r`` at depth ``z`` spans ``f r / z`` pixels to first order),
   or ``r_px = r`` for radii given in pixels (``radius_mode="pixel"``).
3. Kernel. Pixel ``(i, j)`` (centre ``(j + 0.5, i + 0.5)``) at squared distance
   ``d2 = (u - j - 0.5)^2 + (v - i - 0.5)^2`` from the projected centre forms a fragment when
   ``d2 < r_px^2`` (strictly), with weight

   - "disk": ``1`` (piecewise constant: no gradient to positions or radii through the weight);
   - "quadratic": ``1 - d2 / r_px^2``, the alpha falloff of PyTorch3D's point compositor
     (Wiles et al. 2020, "SynSin", and PyTorch3D's ``rasterize_points``);
   - "gaussian": ``exp(-d2 / (2 s^2))`` with ``s = r_px / 3``, truncated at ``d = r_px`` (where the weight is
     ``exp(-4.5) ~ 0.011``; the jump is the only non-smooth point), as in surface splatting
     (Zwicker et al. 2001, "Surface Splatting", eq. 4 with an isotropic reconstruction kernel).

Candidate pixels are the pixel centres in each disk's bounding box, expanded in chunks of at most
``max_pairs_per_chunk`` pairs, so memory grows with the pairs, never with pixels x points. The kept
fragments' distances and weights are then recomputed with autograd, differentiable with respect to point
positions, per-point radii and every camera parameter (``R``, ``t``, focal length, principal point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..backends.torch.rasterize import bounding_boxes, chunk_slices, expand_boxes
from ..core.cameras import Cameras
from ..core.checks import check_choice
from ..core.packing import gather_rows
from ..core.pointclouds import PointClouds

KERNELS = ("disk", "quadratic", "gaussian")
RADIUS_MODES = ("world", "pixel")
GAUSSIAN_SIGMAS = 3.0
"""The Gaussian kernel's standard deviation is ``r_px / GAUSSIAN_SIGMAS``; it is truncated at ``r_px``."""


@dataclass(frozen=True)
class PointRasterSettings:
    """Rarely changed knobs of point rasterisation (module docstring).

    Attributes:
        radius: None uses the cloud's per-point ``radii`` (which must then be present); a float overrides
            them with one radius for every point. Its unit is set by ``radius_mode``.
        radius_mode: "world" (radii are world-space lengths, scaled by ``f / z``) or "pixel" (radii are in
            pixels, the same at every depth).
        kernel: "disk", "quadratic" (PyTorch3D's falloff) or "gaussian" (truncated at the radius).
        points_per_pixel: None blends every point that covers a pixel; K keeps the K nearest per pixel.
        max_pairs_per_chunk: candidate pixel-point pairs processed at once (the memory budget).
    """

    radius: float | None = None
    radius_mode: str = "world"
    kernel: str = "quadratic"
    points_per_pixel: int | None = None
    max_pairs_per_chunk: int = 8_000_000

    def __post_init__(self) -> None:
        if self.radius is not None:
            if isinstance(self.radius, bool) or not isinstance(self.radius, (int, float)):
                raise TypeError(f"radius must be None or a float, got {type(self.radius).__name__}")
            if not (math.isfinite(self.radius) and self.radius > 0):
                raise ValueError(f"radius must be None or finite and > 0, got {self.radius}")
        check_choice(self.radius_mode, "radius_mode", RADIUS_MODES)
        check_choice(self.kernel, "kernel", KERNELS)
        if self.points_per_pixel is not None and (
            isinstance(self.points_per_pixel, bool)
            or not isinstance(self.points_per_pixel, int)
            or self.points_per_pixel < 1
        ):
            raise ValueError(
                f"points_per_pixel must be None or a positive int, got {self.points_per_pixel!r}"
            )
        if (
            isinstance(self.max_pairs_per_chunk, bool)
            or not isinstance(self.max_pairs_per_chunk, int)
            or self.max_pairs_per_chunk < 1
        ):
            raise ValueError(f"max_pairs_per_chunk must be a positive int, got {self.max_pairs_per_chunk!r}")


@dataclass(frozen=True)
class PointFragments:
    """The pixel-point fragments of a rasterisation, all ``(M,)`` and ordered by (camera, point, pixel).

    ``pixel[m] = (b * H + i) * W + j`` and ``point[m] = p`` mean that packed point ``p``, seen by camera
    ``camera[m] = b``, covers pixel ``(i, j)`` of image ``b`` with ``weight[m]`` (module docstring).

    Attributes:
        pixel: int64 flat pixel index.
        point: int64 packed point id.
        camera: int64 camera index.
        depth: camera-space depth ``z`` of the point (with autograd).
        weight: kernel weight in ``(0, 1]`` (with autograd).
        dist2: squared pixel distance ``d2`` from the pixel centre to the projected point (with autograd).
        radius: footprint radius ``r_px`` in pixels (with autograd).
    """

    pixel: Tensor
    point: Tensor
    camera: Tensor
    depth: Tensor
    weight: Tensor
    dist2: Tensor
    radius: Tensor


def check_points_scene(pointclouds: PointClouds, cameras: Cameras, settings: PointRasterSettings) -> None:
    """The checks of ``rasterize_points``, with errors naming the argument."""
    if not isinstance(pointclouds, PointClouds):
        raise TypeError(f"pointclouds must be a gradiance PointClouds, got {type(pointclouds).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be a gradiance Cameras, got {type(cameras).__name__}")
    if not isinstance(settings, PointRasterSettings):
        raise TypeError(f"settings must be a PointRasterSettings, got {type(settings).__name__}")
    if pointclouds.device != cameras.device:
        raise ValueError(
            f"pointclouds are on {pointclouds.device} but cameras are on {cameras.device}; move one of them"
        )
    if pointclouds.dtype != cameras.dtype:
        raise TypeError(
            f"pointclouds.points is {pointclouds.dtype} but cameras are {cameras.dtype}; "
            "cast one of them with .to(dtype=...)"
        )
    if len(pointclouds) not in (1, len(cameras)):
        raise ValueError(
            f"pointclouds must hold 1 cloud or one per camera ({len(cameras)}), got {len(pointclouds)}"
        )
    if cameras.distortion is not None:
        raise ValueError(
            "cameras have lens distortion, which the point renderer does not model; pass undistorted cameras"
        )
    if not bool(torch.isfinite(pointclouds.points).all()):
        raise ValueError("pointclouds.points contains NaN or infinite values")
    radii = pointclouds.radii
    if settings.radius is None:
        if radii is None:
            raise ValueError(
                "pointclouds has no radii: give the cloud per-point radii or set PointRasterSettings.radius"
            )
        if not bool(torch.isfinite(radii).all()):
            raise ValueError("pointclouds.radii contains NaN or infinite values")
        if not bool((radii > 0).all()):
            raise ValueError("pointclouds.radii must be positive (every radius > 0)")


def _camera_points(pointclouds: PointClouds, cameras: Cameras) -> tuple[Tensor, Tensor, Tensor]:
    """``(point, camera, cam_points)``: one row per point-camera instance, ``cam_points`` ``(I, 3)`` the
    camera-space position (one cloud broadcast over the cameras, or cloud ``n`` with camera ``n``)."""
    B, P, dev = len(cameras), pointclouds.points.shape[0], pointclouds.device
    if len(pointclouds) == 1 and B > 1:
        cam_points = (pointclouds.points[None] @ cameras.R.transpose(1, 2) + cameras.t[:, None]).reshape(
            -1, 3
        )
        point = torch.arange(P, device=dev).repeat(B)
        camera = torch.arange(B, device=dev).repeat_interleave(P)
    else:
        point, camera = torch.arange(P, device=dev), pointclouds.point_to_cloud
        rot = gather_rows(cameras.R, camera)
        cam_points = (rot @ pointclouds.points[..., None])[..., 0] + gather_rows(cameras.t, camera)
    return point, camera, cam_points


def project_points(
    pointclouds: PointClouds, cameras: Cameras, settings: PointRasterSettings
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The visible point-camera instances: ``(point, camera, uv, depth, radius)``, each ``(I, ...)``.

    ``uv`` ``(I, 2)`` are the projected pixel coordinates, ``depth`` ``(I,)`` the camera-space z and
    ``radius`` ``(I,)`` the footprint radius in pixels (steps 1-2 of the module docstring); instances
    outside ``[near, far]`` are dropped before any division.
    """
    point, camera, cam_points = _camera_points(pointclouds, cameras)
    z = cam_points[:, 2]
    with torch.no_grad():
        keep = (z >= gather_rows(cameras.near_t, camera)) & (z <= gather_rows(cameras.far_t, camera))
        idx = torch.nonzero(keep).flatten()
    point, camera, cam_points = (
        gather_rows(point, idx),
        gather_rows(camera, idx),
        gather_rows(cam_points, idx),
    )
    z = cam_points[:, 2]
    focal, principal = gather_rows(cameras.focal_t, camera), gather_rows(cameras.principal_t, camera)
    perspective = cameras.projection == "perspective"
    xy = cam_points[:, :2] / z[:, None] if perspective else cam_points[:, :2]
    uv = xy * focal + principal
    if settings.radius is not None:
        r = torch.full_like(z, float(settings.radius))
    else:
        assert pointclouds.radii is not None  # checked by check_points_scene
        r = gather_rows(pointclouds.radii, point)
    if settings.radius_mode == "world":
        r = r * focal.mean(-1)
        if perspective:
            r = r / z
    return point, camera, uv, z, r


def kernel_weight(dist2: Tensor, radius: Tensor, kernel: str) -> Tensor:
    """``(M,)`` weight of fragments at squared pixel distance ``dist2`` from points of pixel radius
    ``radius`` (``dist2 < radius^2``; module docstring, step 3)."""
    check_choice(kernel, "kernel", KERNELS)
    if kernel == "disk":
        return torch.ones_like(dist2)
    ratio = dist2 / (radius * radius)
    if kernel == "quadratic":
        return 1 - ratio
    return torch.exp(-0.5 * GAUSSIAN_SIGMAS**2 * ratio)


def _covered(
    uv: Tensor, radius: Tensor, image_size: tuple[int, int], max_pairs: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``(instance, col, row)`` of every pixel centre strictly inside an instance's disk, found by
    expanding bounding boxes in chunks of at most ``max_pairs`` candidates (no autograd)."""
    H, W = image_size
    with torch.no_grad():
        x0, y0, bw, bh = bounding_boxes(uv[:, None], H, W, pad=radius)
        sel = torch.nonzero((bw > 0) & (bh > 0)).flatten()
        counts = gather_rows(bw, sel) * gather_rows(bh, sel)
        x0, y0, bw = gather_rows(x0, sel), gather_rows(y0, sel), gather_rows(bw, sel)
        slices = chunk_slices(counts, max_pairs, "PointRasterSettings.max_pairs_per_chunk", "point")
        parts: list[tuple[Tensor, Tensor, Tensor]] = []
        for s in slices:
            item, col, row = expand_boxes(counts[s], x0[s], y0[s], bw[s])
            inst = gather_rows(sel[s], item)
            du = gather_rows(uv[:, 0], inst) - (col.to(uv.dtype) + 0.5)
            dv = gather_rows(uv[:, 1], inst) - (row.to(uv.dtype) + 0.5)
            r = gather_rows(radius, inst)
            inside = torch.nonzero(du * du + dv * dv < r * r).flatten()
            parts.append((gather_rows(inst, inside), gather_rows(col, inside), gather_rows(row, inside)))
        if not parts:
            empty = torch.zeros(0, dtype=torch.int64, device=uv.device)
            return empty, empty, empty
        inst, col, row = (torch.cat([p[k] for p in parts]) for k in range(3))
        return inst, col, row


def rasterize_points(
    pointclouds: PointClouds,
    cameras: Cameras,
    settings: PointRasterSettings | None = None,
    *,
    backend: str = "auto",
) -> PointFragments:
    """Every pixel-point fragment of ``pointclouds`` seen by ``cameras`` (module docstring).

    Args:
        pointclouds: 1 cloud (broadcast to every camera) or one per camera; ``radii`` ``(P,)`` are used
            unless ``settings.radius`` is set. Points must be finite and radii positive.
        cameras: ``B`` cameras without lens distortion, of the points' dtype and device.
        settings: see ``PointRasterSettings``.
        backend: "auto" or "torch" (the vectorised reference; the only backend so far).

    Returns:
        ``PointFragments`` ordered by (camera, point, pixel), with autograd to positions, radii and cameras.

    Raises:
        TypeError: wrong argument types or mismatched dtypes.
        ValueError: mismatched batch sizes or devices, non-finite points or radii, non-positive radii,
            missing radii, distorted cameras.
        RasterBudgetError: one point covers more candidate pixels than ``max_pairs_per_chunk``.
    """
    check_choice(backend, "backend", ("auto", "torch"))
    settings = PointRasterSettings() if settings is None else settings
    check_points_scene(pointclouds, cameras, settings)
    point, camera, uv, depth, radius = project_points(pointclouds, cameras, settings)
    H, W = cameras.image_size
    inst, col, row = _covered(uv.detach(), radius.detach(), (H, W), settings.max_pairs_per_chunk)
    uv_f, r_f = gather_rows(uv, inst), gather_rows(radius, inst)
    du = uv_f[:, 0] - (col.to(uv.dtype) + 0.5)
    dv = uv_f[:, 1] - (row.to(uv.dtype) + 0.5)
    dist2 = du * du + dv * dv
    cam = gather_rows(camera, inst)
    return PointFragments(
        pixel=(cam * H + row) * W + col,
        point=gather_rows(point, inst),
        camera=cam,
        depth=gather_rows(depth, inst),
        weight=kernel_weight(dist2, r_f, settings.kernel),
        dist2=dist2,
        radius=r_f,
    )
