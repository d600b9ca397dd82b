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

The quick sweeps (about two minutes on a 2-core CPU) vary the resolution of the analytic scene (64 to 512
px with sphere tracing, 128 and 256 px with the secant search), the width (128, 256) and depth (4, 8) of
the neural SDF at 64 px, and the resolution of the neural SDF of width 128, depth 4 (64 and 128 px); NeuS
at 64 px. ``--full`` adds 1024 px (sphere tracing) and 512 px (secant) for the analytic scene, and every
width and depth at 64 to 512 px for the neural SDF and NeuS.

Times are the median of three runs after a warm-up (one run, ``timed_runs``, where the first forward and
backward pass took over 2 s); peak memory is measured as in ``benchmarks/bench_mesh.py`` (CUDA allocator
peak; CPU resident set sampled every millisecond during a first run of its own), each configuration in a
fresh process. ``finite`` says that the loss and every parameter's gradient were finite. A configuration
that fails (an exception, a crash, memory) gives a row with ``error``. On a CPU the sweeps skip neural
configurations estimated (``cpu_estimate``) at more than 1e12 multiply-adds (minutes each) or 16 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from gradiance.core.lights import AmbientLight, Lights, PointLights
from gradiance.core.rays import camera_rays, clip_to_box
from gradiance.eval.speed import PeakMemory, fresh_process_row, orbit, timed
from gradiance.implicit import Box, Hits, ImplicitRenderSettings, SmoothUnion, Torus, render_implicit
from gradiance.implicit.neural import NeuralSDF, RenderingNetwork
from gradiance.implicit.neus import eikonal_loss, march_neus

# (scene, search, width, depth, size); analytic rows have width = depth = 0
Config = tuple[str, str, int, int, int]
BOX = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
FEATURES = 32
SAMPLES = 64  # secant samples, soft-silhouette samples, NeuS samples per ray (half importance)
INV_S = 20.0
CPU_MACS, CPU_BYTES = 1e12, 16e9  # cpu_estimate bounds of the sweeps on a CPU
SLOW_S = 2.0  # a first forward and backward pass slower than this is timed once, not three times


def sweeps(full: bool) -> list[Config]:
    """Resolution for the analytic scene (both searches); width and depth of the neural SDF at 64 px and
    resolution at width 128, depth 4 (every width, depth and resolution with ``full``); resolution for NeuS
    (64 px only in the quick sweep)."""
    analytic = (64, 128, 256, 512, 1024) if full else (64, 128, 256, 512)
    secant = (128, 256, 512) if full else (128, 256)
    sizes = (64, 128, 256, 512) if full else (64,)
    shapes = [(w, d) for w in (128, 256) for d in (4, 8)]
    configs: list[Config] = [("analytic", "sphere_trace", 0, 0, s) for s in analytic]
    configs += [("analytic", "secant", 0, 0, s) for s in secant]
    configs += [("neural", "sphere_trace", w, d, s) for s in sizes for w, d in shapes]
    if not full:
        configs.append(("neural", "sphere_trace", 128, 4, 128))
    configs += [("neural", "neus", 128, 4, s) for s in sizes]
    return configs


def cpu_estimate(config: Config) -> tuple[float, float]:
    """Rough ``(multiply-adds, bytes)`` of one forward and backward pass of a configuration, to skip the ones
    that take minutes or more memory than a small machine has on a CPU; the analytic scene is cheap. Fitted
    to this machine's measurements: the soft silhouette's (or NeuS's) samples of every ray through every
    layer, and about 3.4 (soft silhouette, no graph, one chunk of rays at a time) or 7 per layer (NeuS, double
    backward) live tensors of ``samples x width`` floats."""
    scene, search, width, depth, size = config
    if scene == "analytic":
        return 0.0, 0.0
    rays = size * size
    if search == "neus":
        samples = rays * (SAMPLES + SAMPLES // 2)  # the first pass's and the second's
        return 3.0 * samples * width * width * depth, 28.0 * rays * SAMPLES * width * depth
    chunk = min(rays, getattr(ImplicitRenderSettings(), "rays_per_chunk", rays))  # rays rendered at once
    return float(rays * (SAMPLES + 40) * width * width * depth), 14.0 * chunk * (SAMPLES + 1) * width


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
) -> tuple[Callable[[], Tensor], list[Hits]]:
    """The loss of ``render_implicit``, and a list that holds the ``Hits`` of its latest call."""
    cams = orbit(1, size, device)
    light = lights(device)
    albedo = torch.tensor([0.8, 0.6, 0.4], device=device)
    settings = ImplicitRenderSettings(search=search, max_steps=128, num_samples=SAMPLES, box=BOX)
    last: list[Hits] = []

    def loss() -> Tensor:
        out = render_implicit(field, cams, light, albedo=albedo, settings=settings)
        last[:] = [out.hits]
        return out.image.sum() + out.soft_alpha.sum()

    return loss, last


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
    field: nn.Module = analytic_scene(device) if scene == "analytic" else neural_scene(width, depth, device)
    last: list[Hits] = []
    if search == "neus":
        assert isinstance(field, NeuralSDF), "neus renders the neural scene only"
        colour = RenderingNetwork(features=FEATURES, width=128, depth=2, direction_frequencies=2).to(device)
        loss = _neus_loss(field, colour, size, device)
        params = [*field.parameters(), *colour.parameters()]
    else:
        loss, last = _surface_loss(field, search, size, device)
        params = list(field.parameters())
    start = time.perf_counter()
    with PeakMemory(device) as mem:  # a run of its own: the sampling thread would slow the timed ones
        value = loss()
        value.backward()
    first_s = time.perf_counter() - start
    finite = bool(torch.isfinite(value)) and all(
        p.grad is None or bool(p.grad.isfinite().all()) for p in params
    )
    hits = last[0] if last else None
    repeats = 1 if first_s > SLOW_S else 3
    fwd, bwd = timed(loss, device, repeats=repeats)
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
        "mean_steps": None if hits is None else round(float(hits.steps.double().mean()), 2),
        "hit_fraction": None if hits is None else round(float(hits.hit.double().mean()), 4),
        "finite": finite,
        "timed_runs": repeats,
        "forward_ms": round(fwd, 2),
        "backward_ms": round(bwd, 2),
        "peak_mb": round(mem.peak_mb, 1),
    }


def run_fresh(config: Config, device: str, out: Path | None) -> str:
    """One configuration in a fresh process: its JSON row, or a row with ``error`` (printed, and appended
    to ``out``)."""
    scene, search, width, depth, size = config
    cmd = [sys.executable, __file__, "--scene", scene, "--search", search, "--width", str(width)]
    cmd += ["--depth", str(depth), "--size", str(size), "--device", device]
    failed = {
        "op": "march_neus" if search == "neus" else "render_implicit",
        "device": device,
        "resolution": size,
        "scene": scene,
        "search": search,
        "width": width or None,
        "depth": depth or None,
    }
    return fresh_process_row(cmd, failed, out)


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
            macs, nbytes = cpu_estimate(config)
            if device == "cpu" and (macs > CPU_MACS or nbytes > CPU_BYTES):
                continue  # minutes per configuration, or more memory than a small machine has
            run_fresh(config, device, args.out)


if __name__ == "__main__":
    main()
