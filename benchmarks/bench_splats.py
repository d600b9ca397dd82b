"""Forward/backward time and peak memory of 3D Gaussian splatting and point splatting, one JSON row per
configuration.

    python benchmarks/bench_splats.py                       # a quick grid on CPU (and CUDA when present)
    python benchmarks/bench_splats.py --full                # 10^3 to 10^6 primitives, 128 to 1024 px
    python benchmarks/bench_splats.py --renderer points --primitives 100000 --size 512   # one configuration

Gaussians: ``N`` random Gaussians (seeded) inside the unit ball with scales of about a pixel to a few
pixels and degree-3 SH colours. Points: ``N`` random points in the unit ball with world radii of a few
pixels, the Gaussian kernel and alpha compositing. One camera on an orbit sees them. Times are the median
of three runs after a warm-up of ``render(...).image.sum()`` and its backward pass to every parameter; peak
memory is
measured as in ``benchmarks/bench_mesh.py`` (CUDA allocator peak; CPU resident set sampled every
millisecond), each configuration in a fresh process. The row also carries the number of pixel-Gaussian
pairs blended. Where gsplat and a GPU are present, run its ``rasterization`` beside it by hand: it is not
installed here (no GPU in CI).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable

import torch
from torch import Tensor

from gradiance.core import PointClouds
from gradiance.eval.speed import orbit, timed_with_peak
from gradiance.gaussians import Gaussians, GaussianSettings, render_gaussians
from gradiance.points import PointRasterSettings, render_points

QUICK = [(1_000, 128), (10_000, 256), (100_000, 256)]
FULL = [(n, s) for n in (1_000, 10_000, 100_000, 1_000_000) for s in (128, 256, 512, 1024)]


def scene(n: int, device: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
    means = d * torch.rand(n, 1, generator=g) ** (1 / 3)
    scales = 0.004 + 0.02 * torch.rand(n, 3, generator=g) * (1000 / n) ** (1 / 3)
    params = [
        means,
        torch.randn(n, 4, generator=g),
        scales.log(),
        torch.randn(n, generator=g),
        0.3 * torch.randn(n, 16, 3, generator=g),
    ]
    return [p.to(device).requires_grad_() for p in params]


def _gaussians_loss(
    n: int, size: int, device: str, tile_size: int | None
) -> tuple[Callable[[], Tensor], Callable[[], Tensor]]:
    params = scene(n, device)
    cams = orbit(1, size, device)
    settings = GaussianSettings(tile_size=tile_size)

    def render() -> Tensor:
        means, quats, log_scales, logits, sh = params
        g = Gaussians(means, quats, log_scales.exp(), torch.sigmoid(logits), sh)
        return render_gaussians(g, cams, settings).count

    def loss() -> Tensor:
        means, quats, log_scales, logits, sh = params
        g = Gaussians(means, quats, log_scales.exp(), torch.sigmoid(logits), sh)
        return render_gaussians(g, cams, settings).image.sum()

    return loss, render


def _points_loss(n: int, size: int, device: str) -> tuple[Callable[[], Tensor], Callable[[], Tensor]]:
    means, _, log_scales, _, sh = scene(n, device)
    cams = orbit(1, size, device)
    settings = PointRasterSettings(radius_mode="world", kernel="gaussian")

    def cloud() -> PointClouds:
        offsets = torch.tensor([0, n], device=device)
        radii = 2 * log_scales.exp().mean(1)
        return PointClouds(means, offsets, colors=sh[:, 0].sigmoid(), radii=radii, validate=False)

    def render() -> Tensor:
        out = render_points(cloud(), cams, settings)
        return (out.fragments.pixel >= 0).long()

    def loss() -> Tensor:
        return render_points(cloud(), cams, settings).image.sum()

    return loss, render


def row(renderer: str, n: int, size: int, device: str, tile_size: int | None) -> dict[str, object]:
    if renderer == "gaussians":
        loss, pairs = _gaussians_loss(n, size, device, tile_size)
    else:
        loss, pairs = _points_loss(n, size, device)
    fwd, bwd, peak = timed_with_peak(loss, device)
    with torch.no_grad():
        count = int(pairs().sum())
    return {
        "op": f"render_{renderer}",
        "backend": "torch",
        "device": device,
        "resolution": size,
        "primitives": n,
        "batch": 1,
        "tile_size": tile_size if renderer == "gaussians" else None,
        "pairs": count,
        "forward_ms": round(fwd, 2),
        "backward_ms": round(bwd, 2),
        "peak_mb": round(peak, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full grid instead of the quick one")
    ap.add_argument("--renderer", choices=("gaussians", "points"), default=None, help="default: both")
    ap.add_argument("--primitives", type=int)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile-size", type=int, default=16, help="16 (the paper's tiles) or 0 (footprint only)")
    args = ap.parse_args()
    tile = args.tile_size or None
    if args.primitives:
        print(json.dumps(row(args.renderer or "gaussians", args.primitives, args.size, args.device, tile)))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for renderer in [args.renderer] if args.renderer else ["gaussians", "points"]:
        for device in devices:
            for n, size in FULL if args.full else QUICK:
                if device == "cpu" and n * size > 1e8:
                    continue  # minutes per configuration on a CPU
                cmd = [sys.executable, __file__, "--renderer", renderer, "--primitives", str(n)]
                cmd += ["--size", str(size), "--device", device, "--tile-size", str(args.tile_size)]
                subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
