"""Forward/backward time and peak memory of the voxel-grid ray marcher, one JSON row per configuration.

    python benchmarks/bench_volume.py                       # a quick sweep on CPU (and CUDA when present)
    python benchmarks/bench_volume.py --full                # grids to 256^3, 512 px, 512 samples per ray
    python benchmarks/bench_volume.py --grid 128 --samples 64 --size 256 --sampler stratified   # one

Scene: one seeded ``G^3`` grid over ``[-1, 1]^3``, densities ``softplus`` of a ball of radius 0.7 plus
smooth noise (seeded noise on an ``8^3`` lattice upsampled trilinearly), three colour channels
``sigmoid`` of smooth noise; the free parameters before ``softplus``/``sigmoid`` require grad. One camera
on the orbit of ``gradiance.eval.speed`` (2.7 units away, 45 degrees vertical field of view) sees the
whole ball. The loss is ``image.sum() + alpha.sum()`` of ``render_volume`` with emission-absorption, and
its backward pass reaches both parameter grids. The sweeps vary the grid size, the samples per ray and
the resolution one at a time around grid 64, 64 samples, 128 px; "stratified" takes ``samples_per_ray``
trilinear samples per ray, "traversal" every voxel a ray crosses (it ignores ``samples_per_ray``; the row
carries None there). Times are the median of three runs after a warm-up; peak memory is measured as in
``benchmarks/bench_mesh.py`` (CUDA allocator peak; CPU resident set sampled every millisecond during a
first run of its own), each configuration in a fresh process. The row also carries ``samples``, the
number of samples aggregated (rays x samples per ray, padding of traversal included). On a CPU the
sweeps skip configurations of more than 3e7 ray-voxel steps (traversal at 512 px: minutes each).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from gradiance.eval.speed import fresh_process_row, orbit, timed_with_peak
from gradiance.volume import VolumeRenderSettings, Volumes, render_volume

# (sampler, grid, samples per ray, size); traversal rows ignore samples per ray
Config = tuple[str, int, int, int]


def sweeps(full: bool) -> list[Config]:
    """Grid size, samples per ray and resolution, each varied around grid 64, 64 samples, 128 px."""
    grids = (32, 64, 128, 256) if full else (32, 64, 128)
    samples = (32, 64, 128, 256, 512) if full else (32, 64, 128, 256)
    sizes = (64, 128, 256, 512) if full else (64, 128, 256)
    configs: list[Config] = []
    for sampler in ("stratified", "traversal"):
        configs += [(sampler, g, 64, 128) for g in grids]
        if sampler == "stratified":
            configs += [(sampler, 64, s, 128) for s in samples]
        configs += [(sampler, 64, 64, size) for size in sizes]
    return list(dict.fromkeys(configs))  # the centre configuration once per sampler


def scene(grid: int, device: str) -> list[Tensor]:
    """Free parameters of a seeded ``grid^3`` volume: ``(1, G, G, G)`` density and ``(1, G, G, G, 3)`` colour
    logits (module docstring)."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 4, 8, 8, 8, generator=g)
    smooth = torch.nn.functional.interpolate(noise, size=(grid,) * 3, mode="trilinear", align_corners=True)
    centres = (torch.arange(grid, dtype=torch.float32) + 0.5) * (2 / grid) - 1
    x, y, z = torch.meshgrid(centres, centres, centres, indexing="ij")
    r = (x**2 + y**2 + z**2).sqrt()
    density = 8 * (0.7 - r) + 2 * smooth[0, 0]
    colour = 2 * smooth[0, 1:].permute(1, 2, 3, 0)
    return [p[None].to(device).requires_grad_() for p in (density, colour)]


def _volume_loss(
    sampler: str, grid: int, samples: int, size: int, device: str
) -> tuple[Callable[[], Tensor], Callable[[], Tensor]]:
    density, colour = scene(grid, device)
    cams = orbit(1, size, device)
    settings = VolumeRenderSettings(sampler=sampler, samples_per_ray=samples)

    def render() -> Tensor:
        vol = Volumes(torch.nn.functional.softplus(density), torch.sigmoid(colour))
        return render_volume(vol, cams, settings).weights

    def loss() -> Tensor:
        vol = Volumes(torch.nn.functional.softplus(density), torch.sigmoid(colour))
        out = render_volume(vol, cams, settings)
        return out.image.sum() + out.alpha.sum()

    return loss, render


def row(sampler: str, grid: int, samples: int, size: int, device: str) -> dict[str, object]:
    loss, render = _volume_loss(sampler, grid, samples, size, device)
    fwd, bwd, peak = timed_with_peak(loss, device)
    with torch.no_grad():
        count = render().numel()
    return {
        "op": "render_volume",
        "backend": "torch",
        "device": device,
        "resolution": size,
        "primitives": grid**3,
        "batch": 1,
        "grid": grid,
        "samples_per_ray": samples if sampler == "stratified" else None,
        "sampler": sampler,
        "samples": count,
        "forward_ms": round(fwd, 2),
        "backward_ms": round(bwd, 2),
        "peak_mb": round(peak, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full sweeps instead of the quick ones")
    ap.add_argument("--sampler", choices=("stratified", "traversal"), default=None, help="default: both")
    ap.add_argument("--grid", type=int, help="voxels per axis (one configuration)")
    ap.add_argument("--samples", type=int, default=64, help="samples per ray for stratified (default 64)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, help="also append the rows to this JSON-lines file")
    args = ap.parse_args()
    if args.grid:
        print(json.dumps(row(args.sampler or "stratified", args.grid, args.samples, args.size, args.device)))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    configs = [c for c in sweeps(args.full) if args.sampler in (None, c[0])]
    for device in devices:
        for sampler, grid, samples, size in configs:
            per_ray = samples if sampler == "stratified" else 3 * grid  # traversal: planes crossed
            if device == "cpu" and size * size * per_ray > 3e7:
                continue  # minutes per configuration on a CPU
            cmd = [sys.executable, __file__, "--sampler", sampler, "--grid", str(grid)]
            cmd += ["--samples", str(samples), "--size", str(size), "--device", device]
            failed = {"op": "render_volume", "device": device, "resolution": size, "grid": grid}
            failed |= {"samples_per_ray": samples if sampler == "stratified" else None, "sampler": sampler}
            fresh_process_row(cmd, failed, args.out)


if __name__ == "__main__":
    main()
