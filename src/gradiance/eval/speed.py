"""Speed and memory of the mesh methods, and the same scene through PyTorch3D where it is importable.

``speed_row(scene, size, batch, device, method)`` renders a Phong-lit scene ("spot", "teapot", "bunny" from
``../shared/assets`` or ``GRADIANCE_ASSETS``, "icoN" for a subdivided icosphere) from ``batch`` cameras on an
orbit, and returns one JSON-ready row: median forward and backward milliseconds of the render's ``image.sum()
+ alpha.sum()`` over at least three timed runs (more for fast renders) after a warm-up, and the peak memory of
a first run of its own (CUDA: ``max_memory_allocated``; CPU: the largest resident set sampled every
millisecond, minus the one just before; the sampling thread would slow the timed runs). Where PyTorch3D is
importable, the same scene goes through its ``MeshRenderer`` in the same process (``HardPhongShader`` for
hard, antialias, nmr and opendr; ``SoftPhongShader`` with 50 faces per pixel and a blur radius matched to
sigma for softras; ``SoftSilhouetteShader`` for dibr) and the row carries its times, peak memory and the
speed-up ratio. Run each configuration in a fresh process (``benchmarks/bench_mesh.py`` does) for a clean
memory figure.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import torch

from ..core.cameras import Cameras, look_at
from ..core.lights import AmbientLight, Lights, PointLights
from ..core.mesh_ops import normalize_to_unit_sphere
from ..core.meshes import Meshes
from ..core.primitives import icosphere
from ..io import load_asset, load_obj, shared_asset_path
from ..mesh.rasterize import visibility_backend
from ..mesh.render import RenderSettings, render
from ..mesh.softras import SoftRasSettings

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


def timed(fn, device: str, repeats: int = 3, min_seconds: float = 0.3) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median forward and backward milliseconds of ``fn() -> loss``, after one warm-up call: at least
    ``repeats`` timed calls, more (up to 50) until they add up to ``min_seconds``, so that the median of
    a fast render rests on enough samples."""
    fwd: list[float] = []
    bwd: list[float] = []
    runs = 0
    while runs <= repeats or (sum(fwd[1:]) + sum(bwd[1:]) < 1e3 * min_seconds and runs <= 50):
        sync(device)
        t0 = time.perf_counter()
        loss = fn()
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        fwd.append(1e3 * (t1 - t0))
        bwd.append(1e3 * (time.perf_counter() - t1))
        runs += 1
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


def timed_with_peak(fn, device: str, repeats: int = 3) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """``(forward ms, backward ms, peak MB)`` of ``fn() -> loss``: one forward and backward pass under
    ``PeakMemory`` on its own (its sampling thread would slow the timed runs), then ``timed``."""
    with PeakMemory(device) as mem:
        fn().backward()
    fwd, bwd = timed(fn, device, repeats)
    return fwd, bwd, mem.peak_mb


def speed_row(
    scene: str, size: int, batch: int, device: str, method: str, peers: bool = True
) -> dict[str, object] | None:
    """One row (module docstring); None when the scene's asset is missing. ``peers=False`` skips PyTorch3D."""
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

    # compiled kernels compile (or load their cache) on first use: do it on a tiny image, outside the peak
    render(mesh, orbit(1, 8, device), lights, method=method, settings=settings)
    fwd, bwd, peak = timed_with_peak(ours, device)
    row: dict[str, object] = {
        "op": f"render_{method}_phong",
        "backend": visibility_backend(settings.backend, torch.device(device)),
        "device": device,
        "resolution": size,
        "primitives": int(mesh.faces.shape[0]),
        "batch": batch,
        "scene": scene,
        "forward_ms": round(fwd, 2),
        "backward_ms": round(bwd, 2),
        "peak_mb": round(peak, 1),
    }
    if peers:
        row.update(pytorch3d_side_by_side(mesh, cams, verts, device, fwd + bwd, method))
    return row


def _pytorch3d_renderer(cams: Cameras, device: str, method: str) -> Any:
    from pytorch3d import renderer as p3r

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
        from pytorch3d.structures import Meshes as P3Meshes
    except ImportError:
        return {"pytorch3d": "not installed"}
    v = verts.detach().clone().requires_grad_()

    def theirs() -> torch.Tensor:
        m = P3Meshes([v], [mesh.faces]).extend(len(cams))
        m.textures = p3r.TexturesVertex(torch.ones_like(v)[None].expand(len(cams), -1, -1))
        return renderer(m).sum()

    fwd, bwd, peak = timed_with_peak(theirs, device, repeats=1)
    return {
        "pytorch3d_forward_ms": round(fwd, 1),
        "pytorch3d_backward_ms": round(bwd, 1),
        "pytorch3d_peak_mb": round(peak, 1),
        "speedup_vs_pytorch3d": round((fwd + bwd) / ours_ms, 1),
    }


def fresh_process_row(cmd: list[str], failed: dict[str, Any], out: Path | None = None) -> str:
    """Run one benchmark configuration as ``cmd`` (a fresh process, so that peak memory is its own) and
    return its last stdout line, a JSON row; where it fails, ``failed`` with the tail of its stderr as
    ``error``. The line is printed, and appended to ``out`` when given."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    text = done.stdout.strip()
    if done.returncode == 0 and text:
        line = text.splitlines()[-1]
    else:
        line = json.dumps({**failed, "error": done.stderr.strip()[-300:] or f"exit status {done.returncode}"})
    print(line, flush=True)
    if out is not None:
        with out.open("a") as fh:
            fh.write(line + "\n")
    return line
