"""Training single-view reconstruction from silhouettes (Kato et al. 2018, Liu et al. 2019), on one process or
data-parallel over several (``torchrun``; gloo on the CPU, NCCL on GPUs).

Every step draws ``batch_size`` objects and two views ``a, b`` of each from a seeded generator; the network
sees view ``a``'s RGBA image, its mesh is rendered from both views with the chosen mesh method (SoftRas by
default) and compared with both true silhouettes by the IoU loss ``1 - sum(p t) / sum(p + t - p t)``
(per image, averaged), plus ``laplacian_weight`` times the uniform Laplacian (``laplacian_smoothing``) and
``flatten_weight`` times the flatten loss (``flatten_loss``). With ``W`` processes every process draws the
same global batch and takes its ``1/W`` share; DDP averages the gradients, so a distributed step computes
the one-process step up to floating-point summation order.

Checkpoints (``checkpoint.pt`` under the output directory) hold the model, the optimiser, the generator's
state, the step and the history; they are written to a temporary file and renamed, so an interruption
leaves the previous checkpoint whole. ``resume=True`` continues from it and, on the CPU, reproduces the
uninterrupted run bit for bit. Rank 0 writes TensorBoard logs under ``tensorboard/`` (when the
``tensorboard`` package is installed) and ``history.json``.
"""

from __future__ import annotations

import gc
import io
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ...mesh.regularizers import flatten_loss, laplacian_smoothing
from ...mesh.render import RenderSettings, available_methods, render_silhouette
from ...mesh.softras import SoftRasSettings
from .dataset import ReconDataset, load_split
from .evaluate import evaluate
from .model import ReconNet
from .protocol import VIEWS, view_cameras

CHECKPOINT = "checkpoint.pt"
VAL_VIEWS = torch.tensor([3, 11, 19])  # the input views of the validation score at checkpoints


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of ``train``. ``steps`` may be raised when resuming; the rest must match the checkpoint."""

    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-4
    method: str = "softras"
    sigma: float = 1e-4
    laplacian_weight: float = 0.3
    flatten_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    val_objects: int = 64
    template_level: int = 3
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.classes is not None:  # a list from Python code must compare equal to the stored tuple
            object.__setattr__(self, "classes", tuple(self.classes))
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "val_objects"):
            v = getattr(self, name)
            if (
                not isinstance(v, int)
                or isinstance(v, bool)
                or v < (0 if name in ("steps", "val_objects") else 1)
            ):
                raise ValueError(
                    f"{name} must be a {'non-negative' if name == 'steps' else 'positive'} int, got {v!r}"
                )
        if not self.lr > 0 or not self.sigma > 0:
            raise ValueError(f"lr and sigma must be positive, got lr={self.lr}, sigma={self.sigma}")
        if self.method not in available_methods():
            raise ValueError(f"method must be one of {available_methods()}, got {self.method!r}")

    def render_settings(self) -> RenderSettings:
        return RenderSettings(softras=SoftRasSettings(sigma=self.sigma))


@dataclass
class TrainState:
    """What a checkpoint restores."""

    step: int
    model: ReconNet
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    history: list[dict[str, float]] = field(default_factory=list)


def iou_loss(alpha: Tensor, target: Tensor) -> Tensor:
    """``1 - IoU`` of soft silhouettes ``(B, H, W, 1)``, averaged over images."""
    inter = (alpha * target).flatten(1).sum(1)
    union = (alpha + target - alpha * target).flatten(1).sum(1)
    return (1 - inter / union.clamp_min(1e-6)).mean()


def sample_batch(
    generator: torch.Generator, num_objects: int, batch_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``(objects, view_a, view_b)``, each ``(batch_size,)``: objects uniform over the split, two views
    uniform over the 24 (possibly equal)."""
    objects = torch.randint(num_objects, (batch_size,), generator=generator)
    views = torch.randint(VIEWS, (2, batch_size), generator=generator)
    return objects, views[0], views[1]


def step_loss(
    model: nn.Module, ds: ReconDataset, objects: Tensor, va: Tensor, vb: Tensor, config: TrainConfig
) -> tuple[Tensor, dict[str, float]]:
    """The loss of one (local) batch and its parts."""
    device = next(model.parameters()).device
    net: ReconNet = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model  # type: ignore[assignment]
    verts = model(ds.inputs(objects, va).to(device))
    meshes = net.meshes(verts)
    both = net.meshes(torch.cat([verts, verts]))
    cams = view_cameras(torch.cat([va, vb]).to(device), ds.images.shape[-1])
    alpha = render_silhouette(both, cams, config.method, config.render_settings())
    target = torch.cat([ds.silhouettes(objects, va), ds.silhouettes(objects, vb)]).to(device)
    sil = iou_loss(alpha, target)
    lap, flat = laplacian_smoothing(meshes), flatten_loss(meshes)
    loss = sil + config.laplacian_weight * lap + config.flatten_weight * flat
    return loss, {
        k: float(v.detach())
        for k, v in (("loss", loss), ("iou_loss", sil), ("laplacian", lap), ("flatten", flat))
    }


def save_checkpoint(path: Path, state: TrainState, config: TrainConfig) -> None:
    """Write ``state`` atomically (a temporary file renamed over ``path``)."""
    buf = io.BytesIO()
    torch.save(
        {
            "step": state.step,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "generator": state.generator.get_state(),
            "history": state.history,
            "config": asdict(config),
        },
        buf,
    )
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def load_checkpoint(path: Path, state: TrainState, config: TrainConfig) -> None:
    """Restore ``state`` from ``path``; the stored config must match ``config`` except for ``steps``."""
    data = torch.load(path, map_location="cpu", weights_only=False)
    stored = dict(data["config"])
    stored["classes"] = tuple(stored["classes"]) if stored["classes"] is not None else None
    if replace(config, steps=0) != replace(TrainConfig(**stored), steps=0):
        raise ValueError(f"the checkpoint {str(path)!r} was made with another configuration: {stored}")
    state.model.load_state_dict(data["model"])
    state.optimizer.load_state_dict(data["optimizer"])
    state.generator.set_state(data["generator"])
    state.step, state.history = int(data["step"]), list(data["history"])


def _distributed(device: torch.device) -> tuple[int, int, torch.device, bool]:
    """``(rank, world_size, device, created)``, initialising the process group when launched by
    ``torchrun`` (``created``: this call made it); on GPUs each process takes the GPU of its local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device, created


def _writer(out: Path, enabled: bool, step: int) -> Any:
    """A TensorBoard writer that drops the events a resumed run logged after its checkpoint (``step``)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra ("gradiance[train]")
        return None
    return SummaryWriter(str(out / "tensorboard"), purge_step=step or None)


def train(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> TrainState:
    """Train on split "train" of ``data_dir`` (``dataset``) and write checkpoints and logs to ``out_dir``
    (module docstring). Returns the final state."""
    config = config or TrainConfig()
    rank, world, dev, created = _distributed(torch.device(device))
    if config.batch_size % world:
        raise ValueError(
            f"batch_size ({config.batch_size}) must be divisible by the number of processes ({world})"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_split(data_dir, "train", config.classes)
    val = load_split(data_dir, "val", ds.classes) if config.val_objects and rank == 0 else None
    torch.manual_seed(config.seed)
    model = ReconNet(ds.images.shape[-1], config.template_level).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999))
    state = TrainState(0, model, optimizer, torch.Generator().manual_seed(config.seed + 1))
    if resume and (out / CHECKPOINT).exists():
        load_checkpoint(out / CHECKPOINT, state, config)
    elif resume:
        raise ValueError(f"resume was asked but {str(out / CHECKPOINT)!r} does not exist")
    ids = [dev.index] if dev.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids) if world > 1 else model
    try:
        _loop(state, ddp, ds, val, config, out, rank, world, progress)
        if world > 1:  # every process waits for rank 0's last checkpoint before the group goes away
            dist.barrier()
    finally:
        # The DDP reducer must die while the process group is still registered: if it held the group's
        # last reference, its destructor would join gloo's worker thread while holding the GIL that thread
        # waits for (a deadlock seen at exit under load).
        del ddp
        gc.collect()
        if created:  # a group the caller made is the caller's to destroy
            dist.destroy_process_group()
    return state


def _loop(
    state: TrainState,
    model: nn.Module,
    ds: ReconDataset,
    val: ReconDataset | None,
    config: TrainConfig,
    out: Path,
    rank: int,
    world: int,
    progress: bool,
) -> None:
    from tqdm import tqdm

    writer = _writer(out, rank == 0, state.step)
    share = config.batch_size // world
    bar = tqdm(total=config.steps, initial=state.step, desc="train recon", disable=not progress or rank != 0)
    while state.step < config.steps:
        objects, va, vb = sample_batch(state.generator, len(ds), config.batch_size)
        part = slice(rank * share, (rank + 1) * share)
        loss, parts = step_loss(model, ds, objects[part], va[part], vb[part], config)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.step += 1
        bar.update(1)
        if state.step % config.log_every == 0 or state.step == config.steps:
            if world > 1:  # the global batch's values, not this process's share
                values = torch.tensor(list(parts.values()), dtype=torch.float64, device=loss.device)
                dist.all_reduce(values)
                parts = dict(zip(parts, (values / world).tolist(), strict=True))
            row = {"step": float(state.step), **parts}
            state.history.append(row)
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
            if writer is not None:
                for k, v in parts.items():
                    writer.add_scalar(f"train/{k}", v, state.step)
        if rank == 0 and (state.step % config.checkpoint_every == 0 or state.step == config.steps):
            _checkpoint(state, val, config, out, writer)
    bar.close()
    if writer is not None:
        writer.close()


def _checkpoint(
    state: TrainState, val: ReconDataset | None, config: TrainConfig, out: Path, writer: Any
) -> None:
    """Validation IoU (``VAL_VIEWS`` of ``val_objects`` objects), then the checkpoint and history."""
    if val is not None:
        n = min(config.val_objects, len(val))
        objects = torch.linspace(0, len(val) - 1, n).long()
        sub = ReconDataset(
            val.images[objects], val.voxels[objects], None, val.labels[objects], val.classes, val.layout
        )
        scores = evaluate(state.model, sub, views=VAL_VIEWS)
        state.history.append({"step": float(state.step), "val_voxel_iou": scores.mean_iou()})
        if writer is not None:
            writer.add_scalar("val/voxel_iou", scores.mean_iou(), state.step)
    save_checkpoint(out / CHECKPOINT, state, config)
    tmp = out / "history.json.tmp"
    tmp.write_text(json.dumps(state.history))
    os.replace(tmp, out / "history.json")


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> tuple[ReconNet, TrainConfig, int]:
    """``(model, config, step)`` of a checkpoint written by ``train`` (a file, or a directory holding
    ``checkpoint.pt``), the model in evaluation mode."""
    p = Path(path)
    p = p / CHECKPOINT if p.is_dir() else p
    if not p.exists():
        raise ValueError(f"checkpoint {str(p)!r} does not exist")
    data = torch.load(p, map_location="cpu", weights_only=False)
    stored = dict(data["config"])
    stored["classes"] = tuple(stored["classes"]) if stored["classes"] is not None else None
    config = TrainConfig(**stored)
    model = ReconNet(_image_size(data["model"]), config.template_level)
    model.load_state_dict(data["model"])
    return model.to(device).eval(), config, int(data["step"])


def _image_size(weights: dict[str, Tensor]) -> int:
    """The input resolution of a saved encoder, from its first fully connected layer (``8 w (S/16)^2``)."""
    fc, conv = weights["encoder.fc.0.weight"], weights["encoder.conv.3.0.weight"]
    cells = fc.shape[1] // conv.shape[0]
    return 16 * round(cells**0.5)
