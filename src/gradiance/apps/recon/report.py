"""``gradiance eval recon``: a trained checkpoint's scores against the mean-shape baselines, as a report."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ...eval.suite import Report
from ...mesh.render import render
from .dataset import ReconDataset, load_split
from .evaluate import evaluate, mean_shape_baselines, predict
from .model import ReconNet
from .protocol import RENDER_LIGHTS, VIEWS, view_cameras
from .training import load_trained


def recon_report(
    checkpoint: str | Path, data_dir: str | Path, split: str = "test", views: int = VIEWS, examples: int = 2
) -> Report:
    """Voxel IoU per class (and chamfer, F-score where the data has surface points) of the model in
    ``checkpoint`` on ``split`` of ``data_dir``, predicting from ``views`` evenly spaced views of every
    object, beside the mean-shape baselines; with ``examples`` predictions per class pictured."""
    if not isinstance(views, int) or not 1 <= views <= VIEWS:
        raise ValueError(f"views must be an int in [1, {VIEWS}], got {views!r}")
    model, config, step = load_trained(checkpoint)
    test = load_split(data_dir, split, config.classes)
    train = load_split(data_dir, "train", test.classes)
    view_ids = evenly_spaced_views(views)
    scores = evaluate(model, test, views=view_ids)
    baselines = mean_shape_baselines(train, test)
    table = []
    model_rows = {r["class"]: r for r in scores.rows()}
    base_rows = {name: {r["class"]: r for r in s.rows()} for name, s in baselines.items()}
    for c in [*test.classes, "mean"]:
        if c not in model_rows:
            continue
        row = {"class": c, "network voxel IoU": model_rows[c]["voxel_iou"]}
        for name, rows in base_rows.items():
            row[f"{name} voxel IoU"] = rows[c]["voxel_iou"]
        for k, v in model_rows[c].items():
            if k not in ("class", "voxel_iou"):
                row[k] = v
        table.append(row)
    report = Report(kind="recon", title=f"gradiance eval recon ({split} split, step {step}, {config.method})")
    report.tables[f"Voxel IoU at 32^3 ({split})"] = table
    report.rows = [{"model": "network", **r} for r in scores.rows()] + [
        {"model": name, **r} for name, s in baselines.items() for r in s.rows()
    ]
    report.images["examples.png"] = _examples(model, test, examples)
    return report


def evenly_spaced_views(views: int) -> Tensor:
    """``views`` view ids spread evenly over the 24 (``[0, 8, 16]`` for 3)."""
    return torch.arange(views) * VIEWS // views


def _examples(model: ReconNet, ds: ReconDataset, per_class: int) -> Tensor:
    """Rows of (input image, prediction from the input view, prediction and truth from 90 degrees on)."""
    rows = []
    for ci in range(len(ds.classes)):
        members = torch.nonzero(ds.labels == ci).flatten()[:per_class]
        for n in members.tolist():
            view = torch.tensor([n % VIEWS])
            side = (view + 6) % VIEWS
            mesh = model.meshes(predict(model, ds, torch.tensor([n]), view))
            size = ds.images.shape[-1]
            shots = render(mesh, view_cameras(torch.cat([view, side]), size), RENDER_LIGHTS, method="hard")
            pics = [
                ds.images[n, int(view)].permute(1, 2, 0)[..., :3].float() / 255,
                shots.image[0] * shots.alpha[0],
                shots.image[1] * shots.alpha[1],
                ds.images[n, int(side)].permute(1, 2, 0)[..., :3].float() / 255,
            ]
            rows.append(torch.cat(pics, 1))
    grid = torch.cat(rows, 0) if rows else torch.zeros(1, 1, 3)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8)
