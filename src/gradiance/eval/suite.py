"""The three evaluations behind ``gradiance eval``: gradients, convergence and speed, each returning a
``Report`` (rows, summary tables and images) that ``write_report`` turns into ``results.json``,
``results.md`` and a self-contained ``report.html``.

Sizes: the full runs are what the closing notes quote; ``quick=True`` shrinks every task (fewer trials,
steps and pixels) so the whole suite finishes in minutes on a 2-core CPU; ``tiny=True`` is for tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from ..core import Lights, look_at
from ..core.lights import AmbientLight, DirectionalLights
from ..core.transforms import axis_angle_to_matrix
from .bench import (
    appearance_task,
    pose_task,
    shape_task,
    spot,
)
from .gradients import (
    EXACT,
    VISIBILITY,
    compare_gradients,
    diverging_colormap,
    gradient_image,
    supersampled,
)
from .methods import convergence_methods, eval_methods, get_method


@dataclass
class Report:
    """What one evaluation produced: ``rows`` (one dictionary per measurement), ``tables`` (title -> rows
    of a summary table), ``images`` (file name -> ``(H, W, 3)`` uint8 picture), ``plots`` (file name ->
    a function drawing on a matplotlib axis), ``files`` (file name -> an existing PNG or GIF to show) and
    ``unsupported`` (tasks a method could not run, with the reason)."""

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    images: dict[str, Tensor] = field(default_factory=dict)
    plots: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    title: str = ""

    def heading(self) -> str:
        """``gradiance eval KIND``, or the title given."""
        return self.title or f"gradiance eval {self.kind}"


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run of the suite."""

    pose_angles: tuple[float, ...]
    pose_trials: int
    pose_steps: int
    shape_views: int
    shape_steps: int
    appearance_steps: int
    size: int
    gradient_size: int
    surface_samples: int = 5000
    volume_samples: int = 20_000
    pose_shapes: tuple[str, ...] = ("spot",)
    shape_shapes: tuple[str, ...] = ("spot", "teapot", "torus")


FULL = Sizes((15.0, 30.0, 60.0, 90.0), 5, 150, 12, 150, 200, 64, 48)
QUICK = Sizes((15.0, 30.0), 2, 80, 8, 80, 100, 48, 32, 5000, 20_000, ("spot",), ("spot", "torus"))
TINY = Sizes((15.0,), 1, 3, 4, 3, 3, 16, 12, 300, 500, ("spot",), ("spot",))


def sizes_for(quick: bool, tiny: bool = False) -> Sizes:
    return TINY if tiny else QUICK if quick else FULL


def _methods(methods: Sequence[str] | None, default: list[str]) -> list[str]:
    names = list(methods) if methods else default
    for name in names:
        get_method(name)  # raises with the list of names
    return names


# ------------------------------------------------------------------------------------------ gradients
_SHADED = Lights(
    ambient=AmbientLight(torch.full((3,), 0.3)),
    directional=DirectionalLights(torch.tensor([[0.6, 0.5, 0.8]]), torch.full((1, 3), 0.7)),
)


def spot_view(size: int, method: str) -> Callable[..., Tensor]:
    """``render(theta, parameter)``: Spot's ``(1, size, size, 4)`` RGBA seen by ``method`` with one scalar
    moved: "translation" (x, in units), "rotation" (about the vertical axis, radians) or "light" (the
    light direction turned about the vertical axis, radians)."""
    fn = get_method(method)
    mesh = spot().geometry()
    cams = look_at(torch.tensor([[0.8, 0.6, 2.4]]), image_size=(size, size), fov=45.0)
    up = torch.tensor([0.0, 1.0, 0.0])

    def view(theta: Tensor, parameter: str, factor: int = 1) -> Tensor:
        verts, lights = mesh.verts, _SHADED
        t = theta.to(verts.dtype)
        if parameter == "translation":
            verts = verts + t * torch.tensor([1.0, 0.0, 0.0])
        elif parameter == "rotation":
            verts = verts @ axis_angle_to_matrix(up * t).T
        else:
            assert lights.directional is not None
            d = lights.directional.directions @ axis_angle_to_matrix(up * t).T
            lights = Lights(
                ambient=lights.ambient, directional=DirectionalLights(d, lights.directional.colors)
            )
        c = cams if factor == 1 else cams.upscaled(factor)
        image, alpha = fn(mesh.with_verts(verts), c, lights)
        return torch.cat([image, alpha], -1)

    return view


GRADIENT_PARAMETERS = ("translation", "rotation", "light")


def evaluate_gradients(
    methods: Sequence[str] | None = None, quick: bool = False, tiny: bool = False
) -> Report:
    """Gradient images of Spot with respect to a translation, a rotation and a light direction, per method:
    the per-pixel derivative that the method's autograd gives (one backward pass per pixel), compared over
    the pixels with (a) central differences of the method's own forward function (``EXACT``: is the
    gradient the derivative of what it renders?) and (b) central differences of the 16x supersampled hard
    render, the pixel-area reference (``VISIBILITY``: does it approximate the true image derivative?). The
    pictures put the reference first, then every method, each on its own colour scale (saturated at the
    99th percentile of its magnitudes, listed in the table beside the picture)."""
    sz = sizes_for(quick, tiny)
    names = _methods(methods, eval_methods())
    report = Report("gradients")
    steps = {"translation": 0.03, "rotation": 0.04, "light": 0.04}  # about half a pixel at 32 px
    hard_view = spot_view(sz.gradient_size, "hard")
    for parameter in GRADIENT_PARAMETERS:
        reference = gradient_image(
            partial(supersampled_image, hard_view, parameter, 16), 0.0, "finite_difference", steps[parameter]
        )
        pictures = {"pixel-area reference": reference}
        for name in tqdm(names, desc=f"gradients ({parameter})", leave=False):
            view = partial(first_image, spot_view(sz.gradient_size, name), parameter)
            start = time.perf_counter()
            ours = gradient_image(view, 0.0)
            seconds = time.perf_counter() - start
            own = gradient_image(view, 0.0, "finite_difference", steps[parameter])
            same = compare_gradients(ours, own, EXACT)
            area = compare_gradients(ours, reference, VISIBILITY)
            report.rows.append(
                {
                    "method": name,
                    "parameter": parameter,
                    "own_fd_cosine": same.cosine,
                    "own_fd_median_relative_error": same.median_relative_error,
                    "own_fd_passed": same.passed,
                    "pixel_area_cosine": area.cosine,
                    "pixel_area_sign_agreement": area.sign_agreement,
                    "pixel_area_median_relative_error": area.median_relative_error,
                    "pixel_area_passed": area.passed,
                    "gradient_image_seconds": seconds,
                }
            )
            pictures[name] = ours
        scales = {m: float(torch.quantile(img.abs().double().flatten(), 0.99)) for m, img in pictures.items()}
        strip = [_pad(diverging_colormap(img, scales[m] or None)) for m, img in pictures.items()]
        report.images[f"gradient_{parameter}.png"] = torch.cat(strip, 1)
        report.tables[f"gradient_{parameter}.png, left to right"] = [
            {"image": m, "colour_scale": scales[m], "max_abs": float(img.abs().max())}
            for m, img in pictures.items()
        ]
    keep = (
        "method",
        "parameter",
        "own_fd_cosine",
        "own_fd_passed",
        "pixel_area_cosine",
        "pixel_area_sign_agreement",
        "pixel_area_passed",
    )
    report.tables["gradient checks"] = [{k: r[k] for k in keep} for r in report.rows]
    return report


def supersampled_image(view: Callable[..., Tensor], parameter: str, factor: int, theta: Tensor) -> Tensor:
    return supersampled(lambda f: view(theta, parameter, f), factor)[0]


def first_image(view: Callable[[Tensor, str], Tensor], parameter: str, theta: Tensor) -> Tensor:
    return view(theta, parameter)[0]


def _pad(img: Tensor, border: int = 2) -> Tensor:
    return torch.nn.functional.pad(img.permute(2, 0, 1), (border, border, border, border), value=255).permute(
        1, 2, 0
    )


# ---------------------------------------------------------------------------------------- convergence
def evaluate_convergence(
    methods: Sequence[str] | None = None, quick: bool = False, tiny: bool = False
) -> Report:
    """Every method on every task (``gradiance.eval.bench``), with summary tables: pose success rate,
    median final error, median iterations to success and mean time per trial, per method, target and
    initial error; shape and appearance accuracy per method."""
    sz = sizes_for(quick, tiny)
    names = _methods(methods, convergence_methods())
    report = Report("convergence")
    jobs: list[tuple[str, partial[Any]]] = []
    for name in names:
        for target in ("silhouette", "shaded"):
            for angle in sz.pose_angles:
                for trial in range(sz.pose_trials):
                    for mesh in sz.pose_shapes:
                        pose = partial(
                            pose_task,
                            name,
                            angle,
                            trial,
                            target,
                            steps=sz.pose_steps,
                            size=sz.size,
                            shape=mesh,
                        )
                        jobs.append(("pose", pose))
        for mesh in sz.shape_shapes:
            shape = partial(
                shape_task,
                name,
                sz.shape_views,
                sz.shape_steps,
                sz.size,
                surface_samples=sz.surface_samples,
                volume_samples=sz.volume_samples,
                shape=mesh,
            )
            jobs.append(("shape", shape))
        jobs.append(("appearance", partial(appearance_task, name, 8, sz.appearance_steps, sz.size)))
    for task, job in tqdm(jobs, desc="convergence", leave=False):
        try:
            report.rows.append({"task": task, **asdict(job())})
        except NotImplementedError as err:  # a peer that cannot run this task
            report.unsupported.append({"task": task, "method": job.args[0], "reason": str(err)})
    pose_rows = [r for r in report.rows if r["task"] == "pose"]
    if report.unsupported:
        report.tables["unsupported"] = report.unsupported
    summary = []
    for name in names:
        for target in ("silhouette", "shaded"):
            for angle in sz.pose_angles:
                key = (name, target, angle)
                rs = [r for r in pose_rows if (r["method"], r["target"], r["initial_degrees"]) == key]
                if not rs:
                    continue
                its = [r["iterations_to_success"] for r in rs if r["iterations_to_success"] is not None]
                summary.append(
                    {
                        "method": name,
                        "target": target,
                        "initial_degrees": angle,
                        "trials": len(rs),
                        "success_rate": sum(bool(r["success"]) for r in rs) / len(rs),
                        "median_final_degrees": statistics.median(r["rotation_error_degrees"] for r in rs),
                        "median_iterations": statistics.median(its) if its else None,
                        "mean_seconds": statistics.fmean(r["seconds"] for r in rs),
                    }
                )
    report.tables["pose"] = summary
    report.tables["shape"] = [
        {k: v for k, v in r.items() if k != "task"} for r in report.rows if r["task"] == "shape"
    ]
    report.tables["appearance"] = [
        {k: v for k, v in r.items() if k != "task"} for r in report.rows if r["task"] == "appearance"
    ]
    report.plots["pose_success.png"] = lambda ax: _plot_success(ax, summary)
    return report


def _plot_success(ax: Any, summary: list[dict[str, Any]]) -> None:
    for method in sorted({str(r["method"]) for r in summary}):
        for target, style in (("silhouette", "-o"), ("shaded", "--s")):
            rs = [r for r in summary if r["method"] == method and r["target"] == target]
            x, y = [r["initial_degrees"] for r in rs], [r["success_rate"] for r in rs]
            ax.plot(x, y, style, label=f"{method} {target}")
    ax.set_xlabel("initial rotation error (degrees)")
    ax.set_ylabel("success rate (final error < 5 degrees)")
    ax.legend(fontsize=7)


# ---------------------------------------------------------------------------------------------- speed
SPEED_CONFIGS = {
    "full": (("spot", 256), ("spot", 512), ("bunny", 256), ("bunny", 512)),
    "quick": (("spot", 128),),
}


def evaluate_speed(
    methods: Sequence[str] | None = None, quick: bool = False, tiny: bool = False, device: str = "cpu"
) -> Report:
    """``gradiance.eval.speed.speed_row`` for every mesh method on Spot and the bunny at 256 and 512 pixels
    (``quick``: Spot at 128), in this process; PyTorch3D side by side where importable (full runs only:
    it takes minutes per configuration on a CPU)."""
    from ..mesh.render import available_methods
    from .speed import speed_row

    names = list(methods) if methods else available_methods()
    for name in names:
        if name not in available_methods():
            raise ValueError(f"method must be one of {available_methods()}, got {name!r}")
    configs = (("spot", 32),) if tiny else SPEED_CONFIGS["quick" if quick else "full"]
    report = Report("speed")
    for name in tqdm(names, desc="speed", leave=False):
        for scene, size in configs:
            row = speed_row(scene, size, 1, device, name, peers=not (quick or tiny))
            if row is not None:
                report.rows.append(row)
    # peak memory stays in the rows but not in the table: in one process, a run reuses memory that an
    # earlier one freed, so only benchmarks/bench_mesh.py's fresh process per configuration measures it
    keep = ("op", "scene", "resolution", "forward_ms", "backward_ms", "speedup_vs_pytorch3d")
    report.tables["speed"] = [{k: r.get(k) for k in keep} for r in report.rows]
    return report
