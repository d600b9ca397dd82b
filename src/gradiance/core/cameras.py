"""Batched pinhole and orthographic cameras in the OpenCV convention.

Conventions (DESIGN.md section 2, stated once here):

- Camera space: the camera looks down +z, +x points right in the image and +y points down.
- Extrinsics are world-to-camera: ``x_cam = R @ x_world + t`` with ``R`` (3, 3) and ``t`` (3,).
- Intrinsics are in pixels: a perspective camera maps camera point ``(x, y, z)`` to pixel coordinates
  ``u = fx * x / z + cx``, ``v = fy * y / z + cy``; an orthographic camera to ``u = fx * x + cx``,
  ``v = fy * y + cy`` (``fx``, ``fy`` in pixels per world unit).
- Pixel ``(row i, col j)`` covers ``[j, j+1) x [i, i+1)`` in ``(u, v)``; its centre is ``(j + .5, i + .5)``.
- Clip space (``world_to_clip``): ``u = (x_c / w_c + 1) * W / 2``, ``v = (y_c / w_c + 1) * H / 2`` and
  ``z_c / w_c`` runs from -1 at ``near`` to +1 at ``far``; ``w_c`` is the camera-space depth for
  perspective cameras and 1 for orthographic ones. Row 0 of the image is ``y_c / w_c = -1`` (the top).

Other conventions are converted at the boundary: OpenGL/Blender camera-to-world matrices (camera looks
down -z with +y up, as in NeRF ``transforms.json``) by ``Cameras.from_opengl``/``to_opengl``, PyTorch3D
cameras (+x left, +y up, row-vector ``X @ R + T``) by ``Cameras.from_pytorch3d``/``to_pytorch3d``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .checks import check_choice, check_tensor
from .packing import normalize_items

PROJECTIONS = ("perspective", "orthographic")
# Flip between OpenCV camera axes (x right, y down, z forward) and OpenGL ones (x right, y up, z back).
_CV_GL = (1.0, -1.0, -1.0)
# Flip between OpenCV camera axes and PyTorch3D view axes (x left, y up, z forward).
_CV_P3D = (-1.0, -1.0, 1.0)


@dataclass(frozen=True, eq=False)
class Cameras:
    """A batch of ``B`` cameras sharing one image size and projection type.

    Attributes:
        R: ``(B, 3, 3)`` world-to-camera rotations.
        t: ``(B, 3)`` world-to-camera translations.
        focal: ``(B, 2)`` ``(fx, fy)`` in pixels (pixels per world unit for orthographic cameras).
        principal: ``(B, 2)`` principal point ``(cx, cy)`` in pixels.
        image_size: ``(H, W)`` in pixels, shared by the batch.
        near: ``(B,)`` near plane depth (> 0 for perspective cameras).
        far: ``(B,)`` far plane depth (> near).
        projection: "perspective" or "orthographic".
        distortion: ``(B, 5)`` OpenCV ``(k1, k2, p1, p2, k3)`` radial-tangential coefficients applied by
            ``project``/``unproject``/``rays`` (perspective only), or None. Rasterisers render the
            undistorted pinhole image (``world_to_clip`` has no distortion).

    The constructor broadcasts: ``R`` may be ``(3, 3)``, ``t`` ``(3,)``, ``focal`` a float, ``(2,)``,
    ``(B,)`` or ``(B, 2)``, ``principal`` None (the image centre) or ``(2,)``/``(B, 2)``, ``near``/``far``
    floats or ``(B,)``; the batch size is the largest given. Every tensor may require gradients.
    """

    R: Tensor
    t: Tensor
    focal: Tensor | float
    principal: Tensor | None
    image_size: tuple[int, int]
    near: Tensor | float = 0.01
    far: Tensor | float = 100.0
    projection: str = "perspective"
    distortion: Tensor | None = None

    def __post_init__(self) -> None:
        check_choice(self.projection, "projection", PROJECTIONS)
        _check_image_size(self.image_size)
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))
        R = check_tensor(self.R, "R")
        dev, dt = R.device, R.dtype
        H, W = self.image_size
        principal = self.principal if self.principal is not None else torch.tensor([W / 2, H / 2])
        raw = {
            "R": (R, (3, 3)),
            "t": (self.t, (3,)),
            "focal": (self.focal, (2,)),
            "principal": (principal, (2,)),
            "near": (self.near, ()),
            "far": (self.far, ()),
        }
        if self.distortion is not None:
            raw["distortion"] = (self.distortion, (5,))
        values = {
            k: _as_float(v, k, dev, dt, user=not (k == "principal" and self.principal is None))
            for k, (v, _) in raw.items()
        }
        if values["focal"].dim() == 1 and values["focal"].shape[0] != 2:
            values["focal"] = values["focal"][:, None]  # (B,) one focal length per camera
        B = _batch_size({k: (values[k], raw[k][1]) for k in raw})
        for k, (_, trailing) in raw.items():
            object.__setattr__(self, k, _broadcast(values[k], k, B, trailing))
        self._check_values()

    def _check_values(self) -> None:
        tensors = [self.R, self.t, self.focal_t, self.principal_t, self.near_t, self.far_t]
        if self.distortion is not None:
            tensors.append(self.distortion)
        if not all(bool(torch.isfinite(x).all()) for x in tensors):
            raise ValueError(
                "camera parameters (R, t, focal, principal, near, far, distortion) must be finite"
            )
        if not bool((self.focal_t > 0).all()):
            raise ValueError(f"focal must be positive, got {self.focal_t.tolist()}")
        if not bool((self.far_t > self.near_t).all()):
            raise ValueError("far must be greater than near for every camera")
        if self.projection == "perspective" and not bool((self.near_t > 0).all()):
            raise ValueError("near must be positive for perspective cameras")
        if self.distortion is not None and self.projection != "perspective":
            raise ValueError("distortion is only supported for perspective cameras")

    # Typed views of the broadcast fields (the dataclass fields accept floats before broadcasting).
    @property
    def focal_t(self) -> Tensor:
        return self.focal  # type: ignore[return-value]

    @property
    def principal_t(self) -> Tensor:
        return self.principal  # type: ignore[return-value]

    @property
    def near_t(self) -> Tensor:
        return self.near  # type: ignore[return-value]

    @property
    def far_t(self) -> Tensor:
        return self.far  # type: ignore[return-value]

    # ---------------------------------------------------------------------------------------- batch
    def __len__(self) -> int:
        return int(self.R.shape[0])

    @property
    def device(self) -> torch.device:
        return self.R.device

    @property
    def dtype(self) -> torch.dtype:
        return self.R.dtype

    def __getitem__(self, items: int | slice | Sequence[int] | Tensor) -> Cameras:
        """The cameras at the given batch indices (keeps autograd)."""
        idx = torch.tensor(normalize_items(items, len(self), "Cameras"), dtype=torch.long, device=self.device)
        return self._map(lambda x: x[idx])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Cameras:
        """The same cameras with every tensor moved to ``device`` and cast to ``dtype``."""
        return self._map(lambda x: x.to(device=device, dtype=dtype))

    def detach(self) -> Cameras:
        """The same cameras with every tensor detached from autograd."""
        return self._map(lambda x: x.detach())

    def upscaled(self, factor: int) -> Cameras:
        """The same views at ``factor`` times the resolution: pixel ``(i, j)`` of these cameras covers the
        ``factor x factor`` block of pixels ``(i * factor + a, j * factor + b)`` of the upscaled ones (for
        supersampled, pixel-area references)."""
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise ValueError(f"factor must be a positive int, got {factor!r}")
        H, W = self.image_size
        return replace(
            self,
            focal=self.focal_t * factor,
            principal=self.principal_t * factor,
            image_size=(H * factor, W * factor),
        )

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Cameras:
        return Cameras(
            R=fn(self.R),
            t=fn(self.t),
            focal=fn(self.focal_t),
            principal=fn(self.principal_t),
            image_size=self.image_size,
            near=fn(self.near_t),
            far=fn(self.far_t),
            projection=self.projection,
            distortion=None if self.distortion is None else fn(self.distortion),
        )

    # ----------------------------------------------------------------------------------- matrices
    def intrinsic_matrix(self) -> Tensor:
        """``(B, 3, 3)`` ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
        (fx, fy), (cx, cy) = self.focal_t.unbind(-1), self.principal_t.unbind(-1)
        zero, one = torch.zeros_like(fx), torch.ones_like(fx)
        rows = [[fx, zero, cx], [zero, fy, cy], [zero, zero, one]]
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    def world_to_camera_matrix(self) -> Tensor:
        """``(B, 4, 4)`` homogeneous ``[[R, t], [0, 1]]``."""
        return _homogeneous(self.R, self.t)

    def camera_centers(self) -> Tensor:
        """``(B, 3)`` camera positions in the world, ``-R^T t``."""
        return -(self.R.transpose(1, 2) @ self.t[..., None])[..., 0]

    def world_to_clip(self) -> Tensor:
        """``(B, 4, 4)`` matrix ``M`` with ``clip = M @ [x_world, 1]`` (see the module docstring).

        Perspective: ``x_c = 2 fx / W x + (2 cx / W - 1) z``, ``w_c = z``,
        ``z_c = (f + n) / (f - n) z - 2 f n / (f - n)``; orthographic: ``x_c = 2 fx / W x + 2 cx / W - 1``,
        ``z_c = 2 (z - n) / (f - n) - 1``, ``w_c = 1`` (y likewise with ``fy``, ``cy`` and ``H``).
        """
        H, W = self.image_size
        fx, fy = self.focal_t[:, 0], self.focal_t[:, 1]
        cx, cy = self.principal_t[:, 0], self.principal_t[:, 1]
        n, f = self.near_t, self.far_t
        zero, one = torch.zeros_like(fx), torch.ones_like(fx)
        sx, sy = 2 * fx / W, 2 * fy / H
        ox, oy = 2 * cx / W - 1, 2 * cy / H - 1
        if self.projection == "perspective":
            rows = [
                [sx, zero, ox, zero],
                [zero, sy, oy, zero],
                [zero, zero, (f + n) / (f - n), -2 * f * n / (f - n)],
                [zero, zero, one, zero],
            ]
        else:
            rows = [
                [sx, zero, zero, ox],
                [zero, sy, zero, oy],
                [zero, zero, 2 / (f - n), -(f + n) / (f - n)],
                [zero, zero, zero, one],
            ]
        P = torch.stack([torch.stack(r, -1) for r in rows], -2)
        return P @ self.world_to_camera_matrix()

    # -------------------------------------------------------------------------------- projection
    def world_to_camera(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` camera-space points from world points ``(N, 3)`` (shared) or ``(B, N, 3)``."""
        pts = self._batch_points(points, "points", 3)
        return pts @ self.R.transpose(1, 2) + self.t[:, None]

    def camera_to_world(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` world points from camera-space points ``(N, 3)`` or ``(B, N, 3)``."""
        pts = self._batch_points(points, "points", 3)
        return (pts - self.t[:, None]) @ self.R

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Project world points to pixels.

        Args:
            points: ``(N, 3)`` shared by all cameras or ``(B, N, 3)`` world points.

        Returns:
            ``(pixels, depth)``: ``pixels[b, n] = (u, v)`` continuous pixel coordinates (``(B, N, 2)``)
            and ``depth[b, n]`` the camera-space z (``(B, N)``). Perspective points with ``depth <= 0``
            are behind the camera: their pixel coordinates are not meaningful, mask them by depth.
        """
        cam = self.world_to_camera(points)
        depth = cam[..., 2]
        xy = cam[..., :2] / depth[..., None] if self.projection == "perspective" else cam[..., :2]
        if self.distortion is not None:
            xy = _distort(xy, self.distortion)
        return xy * self.focal_t[:, None] + self.principal_t[:, None], depth

    def unproject(self, pixels: Tensor, depth: Tensor) -> Tensor:
        """World points at the given pixels and camera-space depths (the inverse of ``project``).

        Args:
            pixels: ``(N, 2)`` or ``(B, N, 2)`` pixel coordinates ``(u, v)``.
            depth: ``(N,)`` or ``(B, N)`` camera-space z.

        Returns:
            ``(B, N, 3)`` world points.
        """
        pix = self._batch_points(pixels, "pixels", 2)
        check_tensor(depth, "depth", None, device=self.device)
        z = depth[None].expand(len(self), -1) if depth.dim() == 1 else depth
        if z.shape != pix.shape[:2]:
            raise ValueError(
                f"depth must have shape (N,) or (B, N) matching pixels, got {tuple(depth.shape)}"
            )
        xy = self._normalized_xy(pix)
        if self.projection == "perspective":
            xy = xy * z[..., None]
        return self.camera_to_world(torch.cat([xy, z[..., None]], -1))

    def rays(self, pixels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Rays through pixel centres (or through the given pixel coordinates), in world space.

        Args:
            pixels: None for every pixel centre ``(j + 0.5, i + 0.5)``, or ``(N, 2)``/``(B, N, 2)``.

        Returns:
            ``(origins, directions)``, each ``(B, H, W, 3)`` (or ``(B, N, 3)``): ``directions`` have unit
            length and ``origins + s * directions`` projects to the pixel for every ``s``. Perspective
            rays start at the camera centre; orthographic rays start on the camera's ``z = 0`` plane.
        """
        H, W = self.image_size
        grid = pixels is None
        if pixels is None:
            i, j = torch.meshgrid(
                torch.arange(H, dtype=self.dtype, device=self.device),
                torch.arange(W, dtype=self.dtype, device=self.device),
                indexing="ij",
            )
            pixels = torch.stack([j + 0.5, i + 0.5], -1).reshape(-1, 2)
        pix = self._batch_points(pixels, "pixels", 2)
        xy = self._normalized_xy(pix)
        ones = torch.ones_like(xy[..., :1])
        if self.projection == "perspective":
            d_cam = torch.cat([xy, ones], -1)
            origins = self.camera_centers()[:, None].expand(pix.shape[0], pix.shape[1], 3)
        else:
            d_cam = torch.cat([torch.zeros_like(xy), ones], -1)
            origins = self.camera_to_world(torch.cat([xy, torch.zeros_like(ones)], -1))
        directions = d_cam @ self.R  # camera-to-world rotation of row vectors: R^T d
        directions = directions / torch.linalg.vector_norm(directions, dim=-1, keepdim=True)
        if grid:
            return origins.reshape(-1, H, W, 3), directions.reshape(-1, H, W, 3)
        return origins, directions

    def _normalized_xy(self, pix: Tensor) -> Tensor:
        """Undo intrinsics (and distortion): ``(B, N, 2)`` pixels to normalised image-plane ``(x, y)``."""
        xy = (pix - self.principal_t[:, None]) / self.focal_t[:, None]
        return xy if self.distortion is None else _undistort(xy, self.distortion)

    def _batch_points(self, x: Tensor, name: str, last: int) -> Tensor:
        check_tensor(x, name, None, device=self.device)
        if x.dim() == 2 and x.shape[1] == last:
            return x[None].expand(len(self), -1, -1).to(self.dtype)
        if x.dim() == 3 and x.shape[2] == last and x.shape[0] == len(self):
            return x.to(self.dtype)
        raise ValueError(
            f"{name} must have shape (N, {last}) or ({len(self)}, N, {last}), got {tuple(x.shape)}"
        )

    # ------------------------------------------------------------------------------ conversions
    @staticmethod
    def from_K(
        K: Tensor,
        R: Tensor,
        t: Tensor,
        image_size: tuple[int, int],
        *,
        near: Tensor | float = 0.01,
        far: Tensor | float = 100.0,
        distortion: Tensor | None = None,
    ) -> Cameras:
        """Perspective cameras from OpenCV ``K`` ((3, 3) or (B, 3, 3), zero skew), ``R``, ``t``."""
        check_tensor(K, "K", None)
        if K.shape[-2:] != (3, 3) or K.dim() not in (2, 3):
            raise ValueError(f"K must have shape (3, 3) or (B, 3, 3), got {tuple(K.shape)}")
        if bool((K[..., 0, 1] != 0).any()):
            raise ValueError("K has a non-zero skew K[0, 1]; gradiance cameras model zero skew")
        focal = torch.stack([K[..., 0, 0], K[..., 1, 1]], -1)
        principal = torch.stack([K[..., 0, 2], K[..., 1, 2]], -1)
        return Cameras(R, t, focal, principal, image_size, near, far, "perspective", distortion)

    @staticmethod
    def from_opengl(
        cam_to_world: Tensor,
        image_size: tuple[int, int],
        *,
        fov: float | Tensor | None = None,
        fov_axis: str = "x",
        focal: Tensor | float | None = None,
        principal: Tensor | None = None,
        near: Tensor | float = 0.01,
        far: Tensor | float = 100.0,
    ) -> Cameras:
        """Cameras from OpenGL/Blender camera-to-world matrices (NeRF ``transform_matrix``).

        Args:
            cam_to_world: ``(4, 4)``, ``(3, 4)``, ``(B, 4, 4)`` or ``(B, 3, 4)``; the camera looks down its
                -z axis with +y up.
            fov: field of view in degrees along ``fov_axis`` ("x" as NeRF's ``camera_angle_x``, or "y");
                give either ``fov`` or ``focal`` (pixels).
        """
        check_tensor(cam_to_world, "cam_to_world", None)
        if cam_to_world.dim() not in (2, 3) or cam_to_world.shape[-2:] not in ((4, 4), (3, 4)):
            raise ValueError(
                f"cam_to_world must have shape ([B,] 4, 4) or ([B,] 3, 4), got {tuple(cam_to_world.shape)}"
            )
        focal_px = _focal_from_fov(fov, fov_axis, focal, image_size)
        flip = torch.tensor(_CV_GL, dtype=cam_to_world.dtype, device=cam_to_world.device)
        rot_c2w = cam_to_world[..., :3, :3] * flip  # flip the camera axes (columns)
        R = rot_c2w.transpose(-1, -2)
        t = -(R @ cam_to_world[..., :3, 3:])[..., 0]
        return Cameras(R, t, focal_px, principal, image_size, near, far)

    def to_opengl(self) -> Tensor:
        """``(B, 4, 4)`` OpenGL/Blender camera-to-world matrices (inverse of ``from_opengl``)."""
        flip = torch.tensor(_CV_GL, dtype=self.dtype, device=self.device)
        rot_c2w = self.R.transpose(1, 2) * flip
        return _homogeneous(rot_c2w, self.camera_centers())

    @staticmethod
    def from_pytorch3d(
        R: Tensor,
        T: Tensor,
        focal_length: Tensor,
        principal_point: Tensor,
        image_size: tuple[int, int],
        *,
        in_ndc: bool = True,
        projection: str = "perspective",
        near: Tensor | float = 0.01,
        far: Tensor | float = 100.0,
    ) -> Cameras:
        """Cameras from PyTorch3D ``PerspectiveCameras``/``OrthographicCameras`` parameters.

        PyTorch3D maps world to view by ``X_view = X_world @ R + T`` with +x left and +y up. With
        ``in_ndc`` the focal length and principal point are in NDC units, where the shorter image side
        spans [-1, 1] and +x points left, +y up; otherwise they are in pixels (screen space).
        """
        H, W = image_size
        flip = torch.tensor(_CV_P3D, dtype=R.dtype, device=R.device)
        R_cv = R.transpose(-1, -2) * flip[:, None]
        t_cv = T * flip
        f, p = focal_length, principal_point
        if in_ndc:
            s = min(H, W) / 2.0
            centre = torch.tensor([W / 2.0, H / 2.0], dtype=R.dtype, device=R.device)
            f, p = f * s, centre - p * s
        return Cameras(R_cv, t_cv, f, p, image_size, near, far, projection)

    def to_pytorch3d(self) -> dict[str, Tensor]:
        """Keyword arguments for PyTorch3D's ``PerspectiveCameras`` (or ``OrthographicCameras``) in NDC:
        ``R``, ``T``, ``focal_length``, ``principal_point`` and ``image_size`` (``in_ndc=True``)."""
        if self.distortion is not None:
            raise ValueError("PyTorch3D cameras have no lens distortion; these cameras have distortion")
        H, W = self.image_size
        flip = torch.tensor(_CV_P3D, dtype=self.dtype, device=self.device)
        s = min(H, W) / 2.0
        centre = torch.tensor([W / 2.0, H / 2.0], dtype=self.dtype, device=self.device)
        return {
            "R": (self.R * flip[:, None]).transpose(1, 2),
            "T": self.t * flip,
            "focal_length": self.focal_t / s,
            "principal_point": (centre - self.principal_t) / s,
            "image_size": torch.tensor([[H, W]] * len(self), device=self.device),
        }


def look_at(
    eye: Tensor,
    at: Tensor | None = None,
    up: Tensor | None = None,
    *,
    image_size: tuple[int, int],
    fov: float | Tensor = 60.0,
    fov_axis: str = "y",
    near: Tensor | float = 0.01,
    far: Tensor | float = 100.0,
) -> Cameras:
    """Perspective cameras at ``eye`` looking at ``at`` with ``up`` pointing up in the image.

    Args:
        eye: ``(3,)`` or ``(B, 3)`` camera positions.
        at: ``(3,)`` or ``(B, 3)`` target points (default the origin); they project to the image centre.
        up: ``(3,)`` or ``(B, 3)`` world up direction (default +y); must not be parallel to ``at - eye``.
        fov: field of view in degrees along ``fov_axis`` ("y" vertical, "x" horizontal); square pixels.
    """
    R = look_at_rotation(eye, at, up)
    t = -(R @ eye.to(R.dtype).reshape(-1, 3, 1))[..., 0]
    focal = _focal_from_fov(fov, fov_axis, None, image_size)
    return Cameras(R, t, focal, None, image_size, near, far)


def look_at_rotation(eye: Tensor, at: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """``(B, 3, 3)`` world-to-camera rotations whose rows are the camera axes in world coordinates:
    ``z = normalize(at - eye)``, ``x = normalize(z x up)``, ``y = z x x`` (so ``y`` points opposite to up)."""
    check_tensor(eye, "eye", None)
    if eye.shape[-1] != 3 or eye.dim() not in (1, 2):
        raise ValueError(f"eye must have shape (3,) or (B, 3), got {tuple(eye.shape)}")
    at_ = torch.zeros(3, dtype=eye.dtype, device=eye.device) if at is None else at
    up_ = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device) if up is None else up
    check_tensor(at_, "at", None, device=eye.device)
    check_tensor(up_, "up", None, device=eye.device)
    eye2, at2, up2 = torch.broadcast_tensors(eye.reshape(-1, 3), at_.reshape(-1, 3), up_.reshape(-1, 3))
    z = at2 - eye2
    zn = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    if bool((zn < 1e-12).any()):
        raise ValueError("at must differ from eye")
    z = z / zn
    x = torch.linalg.cross(z, up2, dim=-1)
    xn = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if bool((xn < 1e-9 * torch.linalg.vector_norm(up2, dim=-1, keepdim=True)).any()):
        raise ValueError("up must not be parallel to the viewing direction at - eye")
    x = x / xn
    y = torch.linalg.cross(z, x, dim=-1)
    return torch.stack([x, y, z], dim=1)


# ---------------------------------------------------------------------------------------- helpers
def _check_image_size(image_size: object) -> None:
    ok = (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in image_size)
    )
    if not ok:
        raise ValueError(f"image_size must be (H, W) with two positive ints, got {image_size!r}")


def _as_float(value: object, name: str, device: torch.device, dtype: torch.dtype, user: bool) -> Tensor:
    """A float tensor on ``device`` with ``dtype``; a user's tensor must already be on ``device``."""
    if isinstance(value, Tensor):
        check_tensor(value, name, None, device=device if user else None)
        return value.to(device=device, dtype=dtype)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), device=device, dtype=dtype)
    if isinstance(value, (list, tuple)):
        return torch.tensor(value, device=device, dtype=dtype)
    raise TypeError(f"{name} must be a float or a torch.Tensor, got {type(value).__name__}")


def _batch_size(values: dict[str, tuple[Tensor, tuple[int, ...]]]) -> int:
    sizes = set()
    for name, (v, trailing) in values.items():
        extra = v.dim() - len(trailing)
        if extra == 1:
            sizes.add(int(v.shape[0]))
        elif extra > 1 or (name == "focal" and v.dim() == 2 and v.shape[1] not in (1, 2)):
            raise ValueError(f"{name} has shape {tuple(v.shape)}; expected {trailing} or (B, *{trailing})")
    sizes.discard(1)
    if len(sizes) > 1:
        raise ValueError(f"camera parameters have different batch sizes {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _broadcast(v: Tensor, name: str, B: int, trailing: tuple[int, ...]) -> Tensor:
    if v.dim() == len(trailing):
        v = v[None]
    try:
        return v.expand(B, *trailing)
    except RuntimeError:
        raise ValueError(
            f"{name} must have shape {trailing} or ({B}, *{trailing}), got {tuple(v.shape)}"
        ) from None


def _focal_from_fov(
    fov: float | Tensor | None, axis: str, focal: Tensor | float | None, image_size: tuple[int, int]
) -> Tensor | float:
    """Focal length in pixels from a field of view in degrees along ``axis``, or ``focal`` itself."""
    _check_image_size(image_size)
    if (fov is None) == (focal is None):
        raise ValueError("give exactly one of fov (degrees) and focal (pixels)")
    if focal is not None:
        return focal
    check_choice(axis, "fov_axis", ("x", "y"))
    fov_t = torch.as_tensor(fov, dtype=torch.float64 if not isinstance(fov, Tensor) else fov.dtype)
    if not bool(((fov_t > 0) & (fov_t < 180)).all()):
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov}")
    size = image_size[1] if axis == "x" else image_size[0]
    f = 0.5 * size / torch.tan(torch.deg2rad(fov_t) / 2)
    return f if isinstance(fov, Tensor) else float(f)


def _homogeneous(R: Tensor, t: Tensor) -> Tensor:
    """``(B, 4, 4)`` ``[[R, t], [0, 0, 0, 1]]``."""
    bottom = torch.zeros_like(R[:, :1]).expand(-1, 1, 3)
    top = torch.cat([R, t[..., None]], -1)
    last = torch.cat([bottom, torch.ones_like(t[:, :1, None])], -1)
    return torch.cat([top, last], 1)


def _distort(xy: Tensor, k: Tensor) -> Tensor:
    """OpenCV radial-tangential distortion of normalised image points ``(B, N, 2)`` with ``(B, 5)``
    coefficients ``(k1, k2, p1, p2, k3)`` (the camera model in OpenCV's ``projectPoints``)."""
    x, y = xy[..., 0], xy[..., 1]
    k1, k2, p1, p2, k3 = (k[:, i : i + 1] for i in range(5))
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return torch.stack([xd, yd], -1)


def _undistort(xy_d: Tensor, k: Tensor, iterations: int = 12) -> Tensor:
    """Invert ``_distort`` by Newton's method on the 2x2 system (differentiable through the iterations)."""
    xy = xy_d
    k1, k2, p1, p2, k3 = (k[:, i : i + 1] for i in range(5))
    for _ in range(iterations):
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        d_radial = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
        res = _distort(xy, k) - xy_d
        a = radial + 2 * x * x * d_radial + 2 * p1 * y + 6 * p2 * x  # d xd / dx
        b = 2 * x * y * d_radial + 2 * p1 * x + 2 * p2 * y  # d xd / dy == d yd / dx
        d = radial + 2 * y * y * d_radial + 6 * p1 * y + 2 * p2 * x  # d yd / dy
        det = a * d - b * b
        step_x = (d * res[..., 0] - b * res[..., 1]) / det
        step_y = (a * res[..., 1] - b * res[..., 0]) / det
        xy = xy - torch.stack([step_x, step_y], -1)
    return xy
