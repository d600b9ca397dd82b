"""Meshes from implicit fields by marching cubes (Lorensen and Cline 1987, via scikit-image)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..core.meshes import Meshes


def extract_mesh(
    field: Callable[[Tensor], Tensor],
    resolution: int = 128,
    lo: float = -1.0,
    hi: float = 1.0,
    level: float = 0.0,
    chunk: int = 65536,
    inside: str = "below",
) -> Meshes:
    """The ``level`` set of ``field`` inside the cube ``[lo, hi]^3``, sampled at ``resolution^3`` grid
    points (corners included), as a single ``Meshes`` whose faces wind counter-clockwise seen from outside
    (the convention of ``gradiance.core``). ``inside="below"`` for signed distances (inside is below the
    level), ``"above"`` for occupancies. Raises ``ValueError`` when the level set does not cross the
    grid (nothing to extract)."""
    if not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2, got {resolution!r}")
    if not hi > lo:
        raise ValueError(f"hi must be greater than lo, got lo={lo}, hi={hi}")
    if inside not in ("below", "above"):
        raise ValueError(f"inside must be 'below' or 'above', got {inside!r}")
    from skimage.measure import marching_cubes

    axis = torch.linspace(lo, hi, resolution, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    param = next(iter(getattr(field, "parameters", lambda: iter(()))()), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    with torch.no_grad():
        values = torch.cat([field(p.to(device, dtype)).double().cpu() for p in grid.split(chunk)])
    volume = values.reshape(resolution, resolution, resolution).numpy()
    if not volume.min() < level < volume.max():
        raise ValueError(
            f"the field does not cross level {level} inside [{lo}, {hi}]^3 (range {volume.min():.3g} to "
            f"{volume.max():.3g}): nothing to extract"
        )
    step = (hi - lo) / (resolution - 1)
    verts, faces, _, _ = marching_cubes(volume, level, spacing=(step, step, step))
    faces = np.ascontiguousarray(faces[:, ::-1]) if inside == "above" else faces
    verts_t = torch.from_numpy(verts + lo).to(dtype=dtype, device=device)
    return Meshes.single(verts_t, torch.from_numpy(faces.astype(np.int64)).to(device))
