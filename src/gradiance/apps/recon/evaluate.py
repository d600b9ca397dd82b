"""Evaluation of single-view reconstruction in the papers' protocol, and the mean-shape baselines.

Voxel IoU (Kato et al. 2018, Liu et al. 2019): for every test object and every one of its 24 views, the
network predicts a mesh from that single image; the mesh is voxelised at 32^3 over ``[-0.5, 0.5]^3``
(``gradiance.eval.voxels.voxelize``: solid, by the winding number at cell centres) and compared with the
object's ground-truth grid. A class's IoU is the mean over its objects and views; the reported mean is the
mean over classes. Where the dataset has surface points, the chamfer distance (squared L2, both ways, as
``gradiance.eval.metrics.chamfer_distance``) and the F-score at ``FSCORE_THRESHOLD`` are computed on
``METRIC_POINTS`` points sampled on each prediction and on the truth, for the predictions from views
0, 6, 12 and 18 (``metric_stride``).

Baselines that ignore the image: "mean shape" predicts, for every object, the training cells occupied in
at least a fraction ``q`` of the training objects, with ``q`` the one (of 0.05, 0.10, ..., 0.95) that
maximises the mean IoU over the training objects; "class mean shape" does the same within the object's
class (it is told the class, which the network is not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ...core.mesh_ops import sample_surface
from ...core.meshes import Meshes
from ...eval.metrics import chamfer_and_f_score
from ...eval.voxels import voxel_iou, voxelize
from .dataset import ReconDataset
from .model import ReconNet
from .protocol import BOUNDS, VIEWS

METRIC_POINTS = 4096
FSCORE_THRESHOLD = 0.02  # 2% of the bounding-box diagonal; identical surfaces score 0.99 at 4096 points


@dataclass
class ClassScores:
    """Sums over one class's predictions (``count`` of them; chamfer and F-score over ``metric_count``)."""

    iou: float = 0.0
    chamfer: float = 0.0
    fscore: float = 0.0
    count: int = 0
    metric_count: int = 0

    def row(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"class": name, "voxel_iou": self.iou / max(self.count, 1)}
        if self.metric_count:
            out["chamfer"] = self.chamfer / self.metric_count
            out[f"f_score@{FSCORE_THRESHOLD}"] = self.fscore / self.metric_count
        out["predictions"] = self.count
        return out


@dataclass
class ReconScores:
    """Per-class scores and their means over classes."""

    classes: tuple[str, ...]
    per_class: dict[str, ClassScores] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One row per class, then the mean over classes."""
        rows = [self.per_class[c].row(c) for c in self.classes if self.per_class[c].count]
        mean: dict[str, Any] = {"class": "mean"}
        for key in rows[0] if rows else []:
            if key not in ("class", "predictions"):
                mean[key] = sum(float(r[key]) for r in rows) / len(rows)
        mean["predictions"] = sum(int(r["predictions"]) for r in rows)
        return [*rows, mean]

    def mean_iou(self) -> float:
        return float(self.rows()[-1]["voxel_iou"])


@torch.no_grad()
def predict(
    model: ReconNet, ds: ReconDataset, objects: Tensor, views: Tensor, batch_size: int = 64
) -> Tensor:
    """``(N, V, 3)`` predicted vertices of ``objects[n]`` from its view ``views[n]``."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, objects.shape[0], batch_size):
        out.append(model(ds.inputs(objects[s : s + batch_size], views[s : s + batch_size]).to(device)).cpu())
    return torch.cat(out) if out else torch.zeros(0, model.template.shape[0], 3)


def evaluate(
    model: ReconNet,
    ds: ReconDataset,
    views: Tensor | None = None,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    metric_stride: int = 6,
) -> ReconScores:
    """Scores of ``model`` on ``ds`` predicting from every view in ``views`` (default all 24) of every
    object (module docstring); chamfer and F-score only for the predictions from views that are multiples
    of ``metric_stride`` (4 of the 24 by default: 4096-point nearest neighbours cost 1.9 s per 64 meshes
    on a 2-core CPU, five minutes for every view of a 240-object test set)."""
    was_training = model.training
    model.eval()
    view_ids = torch.arange(VIEWS) if views is None else views
    scores = ReconScores(ds.classes, {c: ClassScores() for c in ds.classes})
    n = len(ds)
    objects = torch.arange(n).repeat_interleave(view_ids.numel())
    all_views = view_ids.repeat(n)
    g = generator or torch.Generator().manual_seed(0)
    for s in range(0, objects.shape[0], batch_size):
        obj, vw = objects[s : s + batch_size], all_views[s : s + batch_size]
        meshes = model.meshes(predict(model, ds, obj, vw, batch_size))  # on the CPU
        iou = voxel_iou(voxelize(meshes, ds.voxels.shape[-1], *BOUNDS), ds.voxels[obj])
        measured = torch.nonzero(vw % metric_stride == 0).flatten() if ds.points is not None else vw[:0]
        chamfer, fscore = _point_metrics(meshes, ds, obj, measured, g)
        for k in range(obj.shape[0]):
            sc = scores.per_class[ds.classes[int(ds.labels[obj[k]])]]
            sc.iou += float(iou[k])
            sc.count += 1
        for k, c, f in zip(measured.tolist(), chamfer.tolist(), fscore.tolist(), strict=True):
            sc = scores.per_class[ds.classes[int(ds.labels[obj[k]])]]
            sc.chamfer += c
            sc.fscore += f
            sc.metric_count += 1
    model.train(was_training)
    return scores


def _point_metrics(
    meshes: Meshes, ds: ReconDataset, obj: Tensor, measured: Tensor, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Chamfer and F-score of the predictions ``measured`` (indices into the batch) against the truth."""
    if measured.numel() == 0 or ds.points is None:
        return torch.zeros(0), torch.zeros(0)
    pts, _, _, _ = sample_surface(meshes[measured.tolist()], METRIC_POINTS, generator=g)
    truth = ds.points[obj[measured]][:, :METRIC_POINTS].to(pts)
    return chamfer_and_f_score(pts, truth, FSCORE_THRESHOLD)


def mean_shape_baselines(train: ReconDataset, test: ReconDataset) -> dict[str, ReconScores]:
    """Voxel IoU on ``test`` of the mean shape and of the class mean shape of ``train`` (module
    docstring)."""
    if train.voxels.shape[1:] != test.voxels.shape[1:]:
        raise ValueError("train and test grids must have the same resolution")
    overall = _best_mean_shape(train.voxels)
    out = {}
    for name in ("mean shape", "class mean shape"):
        scores = ReconScores(test.classes, {c: ClassScores() for c in test.classes})
        for ci, c in enumerate(test.classes):
            members = test.labels == ci
            if not bool(members.any()):
                continue
            if name == "mean shape":
                guess = overall
            else:
                guess = _best_mean_shape(train.voxels[train.labels == train.classes.index(c)])
            truth = test.voxels[members]
            iou = voxel_iou(guess[None].expand_as(truth), truth)
            scores.per_class[c].iou = float(iou.sum())
            scores.per_class[c].count = int(members.sum())
        out[name] = scores
    return out


def _best_mean_shape(voxels: Tensor) -> Tensor:
    """``(R, R, R)``: the cells occupied in at least a fraction ``q`` of ``voxels`` ``(N, R, R, R)``, for
    the ``q`` that maximises their mean IoU with ``voxels``."""
    if voxels.shape[0] == 0:
        raise ValueError("the training split holds no object of a tested class")
    frequency = voxels.float().mean(0)
    best, best_iou = frequency >= 0.5, -1.0
    for q in torch.arange(1, 20, dtype=torch.float64).div(20).tolist():
        guess = frequency >= q
        iou = float(voxel_iou(guess[None].expand_as(voxels), voxels).mean())
        if iou > best_iou:
            best, best_iou = guess, iou
    return best
