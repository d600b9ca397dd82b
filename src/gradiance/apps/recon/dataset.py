"""Datasets in the layout of the NMR/SoftRas ShapeNet renderings: a generator of procedural ones and a loader
that reads both them and the real renderings.

Files in a dataset directory, for every class ``c`` and split ``s`` (``train``, ``val``, ``test``):

- ``{c}_{s}_images.npz``: one uint8 array ``(N, 24, 4, 64, 64)``, the RGBA renderings of ``N`` objects from
  the 24 views of ``protocol`` (channels first, row 0 at the top, RGB premultiplied by alpha);
- ``{c}_{s}_voxels.npz``: one uint8 or bool array ``(N, 32, 32, 32)``, solid occupancy over
  ``[-0.5, 0.5]^3``;
- ``{c}_{s}_points.npz`` (optional): float32 ``(N, P, 3)`` points on the true surface, for chamfer and
  F-score (the real renderings have none; those metrics are then left out);
- ``meta.json`` (optional): ``{"classes": [...], "voxel_layout": [p0, p1, p2, f0, f1, f2]}``.

These are the files NMR's and SoftRas's ``ShapeNet`` loaders read (``02691156_train_images.npz`` and so on),
so a user who has those renderings points ``--data`` at their directory. The voxel layout maps a stored
grid to gradiance's ``grid[i, j, k]`` at ``(x_i, y_j, z_k)`` in the prediction frame (``protocol``): permute
the three spatial axes by ``p``, then flip axis ``a`` where ``f_a`` is 1. When ``meta.json`` does not give it
(the real renderings), ``detect_voxel_layout`` finds it: of the 48 axis permutations and flips, the one
whose grids best agree with the visual hull carved from the 24 silhouettes of a few objects. A flip along an
axis the objects are symmetric about (left-right, for most man-made classes) cannot be told apart, and does
not change the IoU either.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ...core.mesh_ops import sample_surface
from ...core.meshes import Meshes
from ...eval.voxels import visual_hull, voxel_iou, voxelize
from ..common import render_rgba
from .protocol import BOUNDS, IMAGE_SIZE, RENDER_LIGHTS, VIEWS, VOXEL_RESOLUTION, view_cameras
from .shapes import CLASSES, make_object

SPLITS = ("train", "val", "test")
POINTS_PER_OBJECT = 4096
Layout = tuple[int, int, int, int, int, int]
IDENTITY: Layout = (0, 1, 2, 0, 0, 0)


def render_views(mesh: Meshes, supersample: int = 2) -> Tensor:
    """``(24, 4, 64, 64)`` uint8 RGBA of ``mesh`` (a single ``Meshes``) from the protocol's views, hard
    rendered at ``supersample`` times the size and box-filtered (antialiased edges, premultiplied RGB)."""
    rgba = render_rgba(mesh, view_cameras(torch.arange(VIEWS), IMAGE_SIZE), RENDER_LIGHTS, supersample)
    return (rgba.permute(0, 3, 1, 2) * 255).round().to(torch.uint8)


def _object_generator(seed: int, class_index: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + class_index) * 1_000_003 + index) % (2**63))


def generate_dataset(
    directory: str | Path,
    objects_per_class: int = 400,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: bool = True,
) -> Path:
    """Write a procedural dataset (``shapes.CLASSES``) in the layout above and return its directory.
    Deterministic from ``seed``: object ``n`` of class ``c`` depends on ``(seed, c, n)`` only."""
    from tqdm import tqdm

    names = list(classes) if classes is not None else list(CLASSES)
    for c in names:
        if c not in CLASSES:
            raise ValueError(f"classes must be drawn from {sorted(CLASSES)}, got {c!r}")
    if not isinstance(objects_per_class, int) or objects_per_class < len(SPLITS):
        raise ValueError(f"objects_per_class must be an int >= {len(SPLITS)}, got {objects_per_class!r}")
    if len(fractions) != 3 or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers (train, val, test), got {fractions!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(fractions)
    n_val = max(1, round(objects_per_class * fractions[1] / total))
    n_test = max(1, round(objects_per_class * fractions[2] / total))
    counts = {"train": objects_per_class - n_val - n_test, "val": n_val, "test": n_test}
    if counts["train"] < 1:
        raise ValueError(f"fractions {fractions} leave no training object of {objects_per_class} per class")
    bar = tqdm(total=objects_per_class * len(names), desc="objects", disable=not progress)
    for c in names:
        start = 0
        for split in SPLITS:
            images, voxels, points = [], [], []
            for n in range(start, start + counts[split]):
                g = _object_generator(seed, sorted(CLASSES).index(c), n)
                mesh = make_object(c, g)
                images.append(render_views(mesh).numpy())
                voxels.append(voxelize(mesh, VOXEL_RESOLUTION, *BOUNDS)[0].numpy())
                pts, _, _, _ = sample_surface(mesh.geometry(), POINTS_PER_OBJECT, generator=g)
                points.append(pts[0].numpy().astype(np.float32))
                bar.update(1)
            start += counts[split]
            np.savez_compressed(out / f"{c}_{split}_images.npz", np.stack(images))
            np.savez_compressed(out / f"{c}_{split}_voxels.npz", np.stack(voxels).astype(np.uint8))
            np.savez_compressed(out / f"{c}_{split}_points.npz", np.stack(points))
    bar.close()
    meta = {"classes": names, "seed": seed, "objects_per_class": objects_per_class, "counts": counts}
    meta["voxel_layout"] = list(IDENTITY)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return out


def apply_layout(voxels: Tensor, layout: Layout) -> Tensor:
    """Stored grids ``(N, R, R, R)`` in gradiance's layout (module docstring)."""
    p, f = layout[:3], layout[3:]
    out = voxels.permute(0, 1 + p[0], 1 + p[1], 1 + p[2])
    dims = [1 + a for a in range(3) if f[a]]
    return out.flip(dims) if dims else out


def detect_voxel_layout(images: Tensor, voxels: Tensor) -> tuple[Layout, float]:
    """``(layout, iou)``: the axis permutation and flips under which stored ``voxels`` ``(N, R, R, R)`` best
    match the visual hulls of ``images`` ``(N, 24, 4, H, W)`` uint8, and that mean IoU."""
    R = voxels.shape[-1]
    cams = view_cameras(torch.arange(VIEWS), images.shape[-1])
    hulls = torch.stack(
        [visual_hull(im[:, 3:].permute(0, 2, 3, 1).float() / 255, cams, R, *BOUNDS) for im in images]
    )
    best: tuple[Layout, float] = (IDENTITY, -1.0)
    for p in itertools.permutations(range(3)):
        for f in itertools.product((0, 1), repeat=3):
            layout: Layout = (p[0], p[1], p[2], f[0], f[1], f[2])
            iou = float(voxel_iou(apply_layout(voxels, layout), hulls).mean())
            if iou > best[1]:
                best = (layout, iou)
    return best


@dataclass(frozen=True)
class ReconDataset:
    """One split of a dataset directory (module docstring), in memory.

    Attributes:
        images: ``(N, 24, 4, H, W)`` uint8 RGBA renderings.
        voxels: ``(N, R, R, R)`` bool occupancy in gradiance's layout.
        points: ``(N, P, 3)`` true surface points, or None.
        labels: ``(N,)`` int64 class index into ``classes``.
        classes: class names (or ShapeNet synset ids).
        layout: the voxel layout that was applied to the stored grids.
    """

    images: Tensor
    voxels: Tensor
    points: Tensor | None
    labels: Tensor
    classes: tuple[str, ...]
    layout: Layout

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def silhouettes(self, objects: Tensor, views: Tensor) -> Tensor:
        """``(B, H, W, 1)`` float alpha of ``objects[b]`` seen from ``views[b]``."""
        return self.images[objects, views, 3:].permute(0, 2, 3, 1).float() / 255

    def inputs(self, objects: Tensor, views: Tensor) -> Tensor:
        """``(B, 4, H, W)`` float RGBA network inputs in [0, 1]."""
        return self.images[objects, views].float() / 255


def _load_array(path: Path) -> np.ndarray:
    with np.load(path) as f:
        return f[f.files[0]]


def find_classes(directory: str | Path, split: str = "train") -> list[str]:
    """The classes of a dataset directory: ``meta.json``'s, else every ``{c}_{split}_images.npz``."""
    d = Path(directory)
    if (d / "meta.json").exists():
        return list(json.loads((d / "meta.json").read_text())["classes"])
    return sorted(p.name[: -len(f"_{split}_images.npz")] for p in d.glob(f"*_{split}_images.npz"))


def load_split(directory: str | Path, split: str, classes: Sequence[str] | None = None) -> ReconDataset:
    """Read split ``split`` of ``classes`` (default all, ``find_classes``) from ``directory``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"directory {str(d)!r} does not exist")
    names = list(classes) if classes is not None else find_classes(d, "train")
    if not names:
        raise ValueError(
            f"directory {str(d)!r} holds no '*_train_images.npz' (see gradiance.apps.recon.dataset)"
        )
    images, voxels, points, labels = [], [], [], []
    for ci, c in enumerate(names):
        for kind in ("images", "voxels"):
            if not (d / f"{c}_{split}_{kind}.npz").exists():
                raise ValueError(f"directory {str(d)!r} lacks {c}_{split}_{kind}.npz")
        im = torch.from_numpy(_load_array(d / f"{c}_{split}_images.npz"))
        if im.dim() == 4:  # NMR's files may hold (N * 24, 4, H, W)
            im = im.reshape(-1, VIEWS, *im.shape[1:])
        if im.dim() != 5 or im.shape[1:3] != (VIEWS, 4):
            raise ValueError(f"{c}_{split}_images.npz must hold (N, 24, 4, H, W), got {tuple(im.shape)}")
        images.append(im)
        voxels.append(torch.from_numpy(_load_array(d / f"{c}_{split}_voxels.npz")).bool())
        pts = d / f"{c}_{split}_points.npz"
        points.append(torch.from_numpy(_load_array(pts)).float() if pts.exists() else None)
        labels.append(torch.full((im.shape[0],), ci, dtype=torch.int64))
    all_images, all_voxels = torch.cat(images), torch.cat(voxels)
    layout = _layout(d, all_images, all_voxels)
    return ReconDataset(
        images=all_images,
        voxels=apply_layout(all_voxels, layout).contiguous(),
        points=None if any(p is None for p in points) else torch.cat([p for p in points if p is not None]),
        labels=torch.cat(labels),
        classes=tuple(names),
        layout=layout,
    )


def _layout(d: Path, images: Tensor, voxels: Tensor) -> Layout:
    meta = d / "meta.json"
    if meta.exists() and "voxel_layout" in (data := json.loads(meta.read_text())):
        v = tuple(int(x) for x in data["voxel_layout"])
        return (v[0], v[1], v[2], v[3], v[4], v[5])
    sample = torch.linspace(0, images.shape[0] - 1, min(8, images.shape[0])).long()
    layout, _ = detect_voxel_layout(images[sample], voxels[sample])
    return layout
