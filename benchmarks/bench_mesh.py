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
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from gradiance.core.cameras import Cameras, look_at
from gradiance.core.lights import AmbientLight, Lights, PointLights
from gradiance.core.mesh_ops import normalize_to_unit_sphere
from gradiance.core.meshes import Meshes
from gradiance.core.primitives import icosphere
from gradiance.io import load_asset, load_obj, shared_asset_path
from gradiance.mesh.render import RenderSettings, render
from gradiance.mesh.softras import SoftRasSettings

QUICK = [("spot", 256, 1), ("spot", 512, 1), ("bunny", 512, 1), ("ico5", 256, 4)]
SIGMA = 1e-4  # SoftRas sharpness used for "softras" (and matched in PyTorch3D's blur radius)
FULL_SCENES = ["spot", "bunny", "ico5", "ico7", "ico8"]  # icosphere level 8 has 1,310,720 faces


def load_scene(name: str) -> Meshes | None:
    """A normalised mesh by name: "spot", "teapot", "bunny" (None without the shared assets), "icoN"."""
    if name.startswith("ico"):
        return icosphere(int(name[3:]))
    if name == "bunny":
        path = shared_asset_path("bunny")
        return None if path is None else normalize_to_unit_sphere(load_obj(path).geometry())
    return normalize_to_unit_sphere(load_asset(name).geometry())


def orbit(batch: int, size: int, device: str) -> Cameras:
    az = torch.arange(batch, dtype=torch.float32) * (2 * math.pi / max(batch, 1))
    eye = torch.stack([2.6 * az.sin(), torch.full_like(az, 0.8), 2.6 * az.cos()], -1)
    return look_at(eye, image_size=(size, size), fov=45.0).to(device)


def timed(fn, device: str, repeats: int = 3) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median forward and backward milliseconds of ``fn() -> loss``."""
    fwd, bwd = [], []
    for _ in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        loss = fn()
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        fwd.append(1e3 * (t1 - t0))
        bwd.append(1e3 * (time.perf_counter() - t1))
    return sorted(fwd[1:])[len(fwd[1:]) // 2], sorted(bwd[1:])[len(bwd[1:]) // 2]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory in MB while the block runs: CUDA allocator peak, or sampled resident set on CPU."""

    def __init__(self, device: str) -> None:
        self.device, self.peak_mb, self._stop = device, 0.0, threading.Event()

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096 / 2**20

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        self._base = self._rss_mb()
        self._max = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._max = max(self._max, self._rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        cpu = self._max - self._base
        self.peak_mb = torch.cuda.max_memory_allocated() / 2**20 if self.device.startswith("cuda") else cpu


def run_one(scene: str, size: int, batch: int, device: str, method: str) -> dict[str, object] | None:
    mesh = load_scene(scene)
    if mesh is None:
        return None
    mesh = mesh.to(device)
    cams = orbit(batch, size, device)
    lights = Lights(
        ambient=AmbientLight(torch.full((3,), 0.3, device=device)),
        point=PointLights(
            torch.tensor([[0.0, 2.0, 3.0]], device=device), torch.full((1, 3), 0.7, device=device)
        ),
    )
    settings = RenderSettings(model="phong", softras=SoftRasSettings(sigma=SIGMA))
    verts = mesh.verts.clone().requires_grad_()

    def ours() -> torch.Tensor:
        out = render(mesh.with_verts(verts), cams, lights, method=method, settings=settings)
        return out.image.sum() + out.alpha.sum()

    with PeakMemory(device) as mem:  # a run of its own: the sampling thread would slow the timed ones
        ours().backward()
    fwd, bwd = timed(ours, device)
    row: dict[str, object] = {
        "op": f"render_{method}_phong",
        "backend": "torch",
        "device": device,
        "resolution": size,
        "primitives": int(mesh.faces.shape[0]),
        "batch": batch,
        "scene": scene,
        "forward_ms": round(fwd, 2),
        "backward_ms": round(bwd, 2),
        "peak_mb": round(mem.peak_mb, 1),
    }
    row.update(pytorch3d_side_by_side(mesh, cams, verts, device, fwd + bwd, method))
    return row


def _pytorch3d_renderer(cams: Cameras, device: str, method: str):  # type: ignore[no-untyped-def]
    from pytorch3d import renderer as p3r  # type: ignore[import-not-found]

    H, W = cams.image_size
    p3_cams = p3r.PerspectiveCameras(device=device, in_ndc=True, **cams.to_pytorch3d())
    lights = p3r.PointLights(device=device, location=[[0.0, 2.0, 3.0]])
    if method in ("hard", "antialias", "nmr", "opendr"):
        raster = p3r.RasterizationSettings(image_size=(H, W), faces_per_pixel=1, bin_size=None)
        shader = p3r.HardPhongShader(device=device, cameras=p3_cams, lights=lights)
    else:
        blend = p3r.BlendParams(sigma=SIGMA, gamma=1e-4)
        blur = math.log(1.0 / 1e-4 - 1.0) * SIGMA
        raster = p3r.RasterizationSettings(
            image_size=(H, W), faces_per_pixel=50, blur_radius=blur, bin_size=None
        )
        if method == "softras":
            shader = p3r.SoftPhongShader(device=device, cameras=p3_cams, lights=lights, blend_params=blend)
        else:
            shader = p3r.SoftSilhouetteShader(blend_params=blend)
    return p3r.MeshRenderer(p3r.MeshRasterizer(cameras=p3_cams, raster_settings=raster), shader), p3r


def pytorch3d_side_by_side(
    mesh: Meshes, cams: Cameras, verts: torch.Tensor, device: str, ours_ms: float, method: str
) -> dict[str, object]:
    """Times and peak memory of PyTorch3D's matching renderer on the same scene, when it is importable."""
    try:
        renderer, p3r = _pytorch3d_renderer(cams, device, method)
        from pytorch3d.structures import Meshes as P3Meshes  # type: ignore[import-not-found]
    except ImportError:
        return {"pytorch3d": "not installed"}
    v = verts.detach().clone().requires_grad_()

    def theirs() -> torch.Tensor:
        m = P3Meshes([v], [mesh.faces]).extend(len(cams))
        m.textures = p3r.TexturesVertex(torch.ones_like(v)[None].expand(len(cams), -1, -1))
        return renderer(m).sum()

    with PeakMemory(device) as mem:
        theirs().backward()
    fwd, bwd = timed(theirs, device, repeats=1)
    return {
        "pytorch3d_forward_ms": round(fwd, 1),
        "pytorch3d_backward_ms": round(bwd, 1),
        "pytorch3d_peak_mb": round(mem.peak_mb, 1),
        "speedup_vs_pytorch3d": round((fwd + bwd) / ours_ms, 1),
    }


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
        row = run_one(args.scene, args.size or 256, args.batch, args.device or "cpu", args.method)
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
            done = subprocess.run(cmd, capture_output=True, text=True)
            line = (
                done.stdout.strip().splitlines()[-1]
                if done.returncode == 0 and done.stdout.strip()
                else json.dumps(
                    {
                        "scene": scene,
                        "resolution": size,
                        "batch": batch,
                        "device": device,
                        "error": done.stderr.strip()[-300:],
                    }
                )
            )
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(line + "\n")


if __name__ == "__main__":
    main()
