"""Forward/backward time and peak memory of 3D Gaussian splatting, one JSON row per configuration.

    python benchmarks/bench_gaussians.py                       # a quick grid on CPU (and CUDA when present)
    python benchmarks/bench_gaussians.py --full                # 10^3 to 10^6 Gaussians, 128 to 1024 px
    python benchmarks/bench_gaussians.py --gaussians 100000 --size 512 --device cpu   # one configuration

The scene is ``N`` random Gaussians (seeded) inside the unit ball with scales of about a pixel to a few
pixels, degree-3 SH colours, seen by one camera on an orbit. Times are the median of three runs after a
warm-up of ``render_gaussians(...).image.sum()`` and its backward pass to every parameter; peak memory is
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

import torch

from gradiance.eval.speed import PeakMemory, orbit, timed
from gradiance.gaussians import Gaussians, GaussianSettings, render_gaussians

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


def row(n: int, size: int, device: str, tile_size: int | None) -> dict[str, object]:
    params = scene(n, device)
    cams = orbit(1, size, device)
    settings = GaussianSettings(tile_size=tile_size)

    def loss() -> torch.Tensor:
        means, quats, log_scales, logits, sh = params
        g = Gaussians(means, quats, log_scales.exp(), torch.sigmoid(logits), sh)
        return render_gaussians(g, cams, settings).image.sum()

    with PeakMemory(device) as mem:
        loss().backward()
    means, quats, log_scales, logits, sh = params
    with torch.no_grad():
        out = render_gaussians(
            Gaussians(means, quats, log_scales.exp(), torch.sigmoid(logits), sh), cams, settings
        )
    fwd, bwd = timed(loss, device)
    return {
        "op": "render_gaussians",
        "backend": "torch",
        "device": device,
        "resolution": size,
        "primitives": n,
        "batch": 1,
        "tile_size": tile_size,
        "blended_pairs": int(out.count.sum()),
        "forward_ms": round(fwd, 2),
        "backward_ms": round(bwd, 2),
        "peak_mb": round(mem.peak_mb, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full grid instead of the quick one")
    ap.add_argument("--gaussians", type=int)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile-size", type=int, default=16, help="16 (the paper's tiles) or 0 (footprint only)")
    args = ap.parse_args()
    tile = args.tile_size or None
    if args.gaussians:
        print(json.dumps(row(args.gaussians, args.size, args.device, tile)), flush=True)
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for n, size in FULL if args.full else QUICK:
            if device == "cpu" and n * size > 1e8:
                continue  # minutes per configuration on a CPU
            cmd = [sys.executable, __file__, "--gaussians", str(n), "--size", str(size), "--device", device]
            cmd += ["--tile-size", str(args.tile_size)]
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
