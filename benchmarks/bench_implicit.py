"""Forward/backward time and peak memory of the implicit-surface renderers, one JSON row per configuration.

    python benchmarks/bench_implicit.py                     # the quick sweeps on CPU (and CUDA when present)
    python benchmarks/bench_implicit.py --full              # to 1024 px (analytic) and 512 px (neural)
    python benchmarks/bench_implicit.py --scene neural --search sphere_trace --width 256 --depth 8 --size 128

Scenes, each inside the ball of radius 0.7 about the origin:

- "analytic": the smooth union (blend 0.1) of a torus about the y axis (major radius 0.55, minor 0.15) and
  a box of half-extents (0.25, 0.45, 0.25) with edges rounded by 0.05; all their parameters (centres,
  radii, sizes) require grad; ``primitives`` is 2.
- "neural": a seeded ``NeuralSDF`` (6 frequencies, ``width`` units, ``depth`` layers, skip after
  ``depth // 2``, 32 feature channels, geometrically initialised to a sphere of radius 0.5); ``primitives``
  is its number of parameters (with the ``RenderingNetwork`` of the "neus" rows).

One camera on the orbit of ``gradiance.eval.speed`` (2.7 units away, 45 degrees vertical field of view,
so the ball spans about two thirds of the image) with every ray clipped to the box ``[-1, 1]^3``.
Searches:

- "sphere_trace" and "secant" (64 samples, 8 secant steps): ``render_implicit`` with a point light, an
  ambient light and Lambert shading of a constant albedo, so that the colour depends on the normals. The
  loss ``image.sum() + soft_alpha.sum()`` reaches the field's parameters by implicit differentiation of the
  hits and through the normals (double backward through the field); the soft silhouette takes 64 samples
  per ray. ``mean_steps`` is the mean of ``hits.steps``, the search's field evaluations per ray (the
  soft silhouette's 65 and the gradient's evaluations not included); ``hit_fraction`` the rays that hit.
- "neus": ``march_neus`` of every ray of the camera through the neural SDF and a ``RenderingNetwork``
  (width 128, depth 2, 2 direction frequencies) with 32 stratified and 32 importance samples per ray and
  ``inv_s`` 20 (learnable); loss ``colour.sum() + alpha.sum() + eikonal_loss(gradients)`` to both networks
  and ``inv_s``. ``mean_steps`` is None (every ray takes ``samples_per_ray`` samples, plus 32 without grad).

Times are the median of three runs after a warm-up; peak memory is measured as in
``benchmarks/bench_mesh.py`` (CUDA allocator peak; CPU resident set sampled every millisecond during a
first run of its own), each configuration in a fresh process. A configuration that fails (an exception, a
crash, memory) gives a row with ``error``. On a CPU the sweeps skip neural configurations of more than
2e12 multiply-adds (an estimate; minutes each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from gradiance.core.lights import AmbientLight, Lights, PointLights
from gradiance.core.rays import camera_rays, clip_to_box
from gradiance.eval.speed import PeakMemory, orbit, timed
from gradiance.implicit import Box, ImplicitRenderSettings, SmoothUnion, Torus, render_implicit
from gradiance.implicit.neural import NeuralSDF, RenderingNetwork
from gradiance.implicit.neus import eikonal_loss, march_neus

# (scene, search, width, depth, size); analytic rows have width = depth = 0
Config = tuple[str, str, int, int, int]
BOX = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
FEATURES = 32
SAMPLES = 64  # secant samples, soft-silhouette samples, NeuS samples per ray (half importance)
INV_S = 20.0


def sweeps(full: bool) -> list[Config]:
    """Resolution for the analytic scene (both searches), resolution by width and depth for the neural
    one, and resolution for NeuS."""
    analytic = (64, 128, 256, 512, 1024) if full else (64, 128, 256, 512)
    secant = (128, 256, 512) if full else (128, 256)
    neural = (64, 128, 256, 512) if full else (64, 128)
    configs: list[Config] = [("analytic", "sphere_trace", 0, 0, s) for s in analytic]
    configs += [("analytic", "secant", 0, 0, s) for s in secant]
    configs += [("neural", "sphere_trace", w, d, s) for w in (128, 256) for d in (4, 8) for s in neural]
    configs += [("neural", "neus", 128, 4, s) for s in neural]
    return configs


def cpu_cost(config: Config) -> float:
    """Rough multiply-adds of one forward pass of a neural configuration (0 for the analytic scene): every
    ray's samples (soft silhouette or NeuS) through every layer."""
    scene, search, width, depth, size = config
    if scene == "analytic":
        return 0.0
    per_ray = SAMPLES + 32 if search == "neus" else SAMPLES + 40  # + a typical sphere-tracing budget
    return float(size * size * per_ray * width * width * depth)


def analytic_scene(device: str) -> nn.Module:
    """The smooth union of a torus and a rounded box (module docstring); parameters require grad."""
    torus = Torus(major=0.55, minor=0.15)
    box = Box(half_size=(0.25, 0.45, 0.25), rounding=0.05)
    return SmoothUnion(torus, box, k=0.1).to(device)


def neural_scene(width: int, depth: int, device: str) -> NeuralSDF:
    torch.manual_seed(0)
    return NeuralSDF(frequencies=6, width=width, depth=depth, skip=depth // 2, features=FEATURES).to(device)


def lights(device: str) -> Lights:
    return Lights(
        ambient=AmbientLight(torch.full((3,), 0.3, device=device)),
        point=PointLights(
            torch.tensor([[0.0, 2.0, 3.0]], device=device), torch.full((1, 3), 0.7, device=device)
        ),
    )


def _surface_loss(
    field: nn.Module, search: str, size: int, device: str
) -> tuple[Callable[[], Tensor], Callable[[], tuple[float, float]]]:
    """The loss of ``render_implicit`` and a function giving ``(mean_steps, hit_fraction)``."""
    cams = orbit(1, size, device)
    light = lights(device)
    albedo = torch.tensor([0.8, 0.6, 0.4], device=device)
    settings = ImplicitRenderSettings(search=search, max_steps=128, num_samples=SAMPLES, box=BOX)

    def loss() -> Tensor:
        out = render_implicit(field, cams, light, albedo=albedo, settings=settings)
        return out.image.sum() + out.soft_alpha.sum()

    def stats() -> tuple[float, float]:
        with torch.no_grad():
            hits = render_implicit(field, cams, light, albedo=albedo, settings=settings).hits
        return float(hits.steps.double().mean()), float(hits.hit.double().mean())

    return loss, stats


def _neus_loss(sdf: NeuralSDF, colour: RenderingNetwork, size: int, device: str) -> Callable[[], Tensor]:
    rays = camera_rays(orbit(1, size, device))
    o, d = rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3)
    lo, hi = (torch.tensor(c, device=device) for c in BOX)
    near, far = clip_to_box(o, d, rays.t_near.reshape(-1), rays.t_far.reshape(-1), lo, hi)
    inv_s = torch.tensor(INV_S, device=device, requires_grad=True)

    def loss() -> Tensor:
        out = march_neus(
            sdf.with_features,
            colour,
            o,
            d,
            near,
            far,
            inv_s,
            num_samples=SAMPLES // 2,
            importance=SAMPLES // 2,
        )
        return out.rays.features.sum() + out.rays.alpha.sum() + eikonal_loss(out.gradients)

    return loss


def row(scene: str, search: str, width: int, depth: int, size: int, device: str) -> dict[str, object]:
    mean_steps: float | None = None
    hit_fraction: float | None = None
    stats: Callable[[], tuple[float, float]] | None = None
    field: nn.Module = analytic_scene(device) if scene == "analytic" else neural_scene(width, depth, device)
    if search == "neus":
        assert isinstance(field, NeuralSDF), "neus renders the neural scene only"
        colour = RenderingNetwork(features=FEATURES, width=128, depth=2, direction_frequencies=2).to(device)
        loss = _neus_loss(field, colour, size, device)
        params = [*field.parameters(), *colour.parameters()]
    else:
        loss, stats = _surface_loss(field, search, size, device)
        params = list(field.parameters())
    with PeakMemory(device) as mem:  # a run of its own: the sampling thread would slow the timed ones
        value = loss()
        value.backward()
    grads = [p.grad for p in params]
    finite = bool(torch.isfinite(value)) and all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    if stats is not None:
        mean_steps, hit_fraction = stats()
    fwd, bwd = timed(loss, device)
    return {
        "op": "march_neus" if search == "neus" else "render_implicit",
        "backend": "torch",
        "device": device,
        "resolution": size,
        "primitives": 2 if scene == "analytic" else sum(p.numel() for p in params),
        "batch": 1,
        "scene": scene,
        "search": search,
        "width": width or None,
        "depth": depth or None,
        "samples_per_ray": SAMPLES if search != "sphere_trace" else None,
        "mean_steps": None if mean_steps is None else round(mean_steps, 2),
        "hit_fraction": None if hit_fraction is None else round(hit_fraction, 4),
        "finite": finite,
        "forward_ms": round(fwd, 2),
        "backward_ms": round(bwd, 2),
        "peak_mb": round(mem.peak_mb, 1),
    }


def run_fresh(config: Config, device: str) -> str:
    """One configuration in a fresh process: its JSON row, or a row with ``error``."""
    scene, search, width, depth, size = config
    cmd = [sys.executable, __file__, "--scene", scene, "--search", search, "--width", str(width)]
    cmd += ["--depth", str(depth), "--size", str(size), "--device", device]
    done = subprocess.run(cmd, capture_output=True, text=True)
    out = done.stdout.strip()
    if done.returncode == 0 and out:
        return out.splitlines()[-1]
    failed = {
        "op": "march_neus" if search == "neus" else "render_implicit",
        "device": device,
        "resolution": size,
        "scene": scene,
        "search": search,
        "width": width or None,
        "depth": depth or None,
        "error": done.stderr.strip()[-300:] or f"exit status {done.returncode}",
    }
    return json.dumps(failed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full sweeps instead of the quick ones")
    ap.add_argument("--scene", choices=("analytic", "neural"), default=None, help="default: both")
    ap.add_argument("--search", choices=("sphere_trace", "secant", "neus"), default=None, help="default: all")
    ap.add_argument("--width", type=int, default=128, help="neural SDF width (one configuration)")
    ap.add_argument("--depth", type=int, default=4, help="neural SDF layers (one configuration)")
    ap.add_argument("--size", type=int, help="image size in pixels: run this one configuration")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, help="also append the rows to this JSON-lines file")
    args = ap.parse_args()
    if args.size:
        scene = args.scene or ("neural" if args.search == "neus" else "analytic")
        search = args.search or "sphere_trace"
        if scene == "analytic" and search == "neus":
            ap.error("neus renders the neural scene only")
        width, depth = (args.width, args.depth) if scene == "neural" else (0, 0)
        print(json.dumps(row(scene, search, width, depth, args.size, args.device)))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    configs = [c for c in sweeps(args.full) if args.scene in (None, c[0]) and args.search in (None, c[1])]
    for device in devices:
        for config in configs:
            if device == "cpu" and cpu_cost(config) > 2e12:
                continue  # minutes per configuration on a CPU
            line = run_fresh(config, device)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(line + "\n")


if __name__ == "__main__":
    main()
