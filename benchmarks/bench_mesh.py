"""Forward/backward time and peak memory of the mesh pipeline, one JSON row per configuration.

    python benchmarks/bench_mesh.py                 # a quick grid on CPU (and CUDA when present)
    python benchmarks/bench_mesh.py --full   # Spot, bunny, icospheres to 1.3M faces, 256-2048 px, B 1-8
    python benchmarks/bench_mesh.py --scene spot --size 256 --batch 1 --device cpu   # one configuration

Each configuration runs in a fresh process so that its peak memory is its own (CUDA:
``max_memory_allocated``; CPU: the largest resident set sampled every millisecond during a first run
before the timed ones, minus the resident set just before it; the sampling thread would slow the timed
runs themselves). The render is a Phong-lit render of the chosen ``--method`` (hard, antialias, softras,
dibr, nmr, opendr). Where PyTorch3D is importable, the same scene goes through its ``MeshRenderer`` in the
same process (``HardPhongShader`` for hard, antialias, nmr and opendr, ``SoftPhongShader`` with 50 faces
per pixel and a blur radius matched to sigma for softras, ``SoftSilhouetteShader`` for dibr) and the
row carries its times, peak memory and the speed-up ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from gradiance.eval.speed import FULL_SCENES, fresh_process_row, speed_row

QUICK = [("spot", 256, 1), ("spot", 512, 1), ("bunny", 512, 1), ("ico5", 256, 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full grid instead of the quick one")
    ap.add_argument("--scene")
    ap.add_argument("--size", type=int)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default=None)
    methods = "hard, antialias, softras, dibr, nmr or opendr"
    ap.add_argument("--method", default="hard", help=f"{methods} (default hard)")
    ap.add_argument("--out", type=Path, help="also append the rows to this JSON-lines file")
    args = ap.parse_args()
    if args.scene:
        row = speed_row(args.scene, args.size or 256, args.batch, args.device or "cpu", args.method)
        print(json.dumps(row if row else {"scene": args.scene, "skipped": "asset not found"}))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    grid = (
        QUICK
        if not args.full
        else [(s, r, b) for s in FULL_SCENES for r in (256, 512, 1024, 2048) for b in (1, 8)]
    )
    for device in devices:
        for scene, size, batch in grid:
            cmd = [
                sys.executable,
                __file__,
                "--scene",
                scene,
                "--size",
                str(size),
                "--batch",
                str(batch),
                "--device",
                device,
            ]
            failed = {"scene": scene, "resolution": size, "batch": batch, "device": device}
            fresh_process_row(cmd, failed, args.out)


if __name__ == "__main__":
    main()
