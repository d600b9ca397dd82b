"""The ``gradiance`` command: ``info``, ``demo``, ``eval``, ``fit``, ``data``, ``train``."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import __version__
from .backends import backend_status

if TYPE_CHECKING:
    from .eval.suite import Report

_PACKAGES = ("torch", "numpy", "roma", "trimesh", "pillow", "tqdm", "triton")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def info_lines() -> list[str]:
    """What ``gradiance info`` prints: versions, devices and backends."""
    lines = [f"gradiance {__version__}", f"python {platform.python_version()} ({sys.platform})"]
    lines += [f"{p:<8} {_version(p)}" for p in _PACKAGES]
    lines.append(f"cpu      {torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(
                f"cuda:{i}   {props.name}, {props.total_memory / 2**30:.1f} GiB (CUDA {torch.version.cuda})"
            )
    else:
        lines.append(
            "cuda     not available" + (" (CPU build of torch)" if torch.version.cuda is None else "")
        )
    lines += [f"backend  {name}: {line}" for name, line in backend_status().items()]
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The ``gradiance`` argument parser with its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="gradiance",
        description="Differentiable rendering for PyTorch: meshes, points, Gaussians, volumes and implicit "
        "surfaces, on CPU and GPU.",
    )
    parser.add_argument("--version", action="version", version=f"gradiance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="print versions, devices and available backends")
    demo = sub.add_parser("demo", help="run the showcase and write pictures and an index.html")
    demo.add_argument(
        "--out", type=Path, default=Path("outputs/demo"), help="output folder (default outputs/demo)"
    )
    demo.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    demo.add_argument("--tiny", action="store_true", help="smallest fitting sections (for tests)")
    ev = sub.add_parser(
        "eval",
        help="judge methods: gradient quality, convergence on inverse problems, speed",
        description="Writes results.json, results.md and a self-contained report.html under --out.",
    )
    ev.add_argument("what", choices=("gradients", "convergence", "speed", "recon", "volume", "implicit"))
    ev.add_argument("--methods", default="", help="comma-separated method names (default: every method)")
    ev.add_argument("--out", type=Path, default=None, help="output folder (default outputs/eval/WHAT)")
    ev.add_argument("--quick", action="store_true", help="small sizes: minutes on a 2-core CPU")
    ev.add_argument("--tiny", action="store_true", help="smallest sizes (for tests)")
    ev.add_argument("--data", type=Path, default=None, help="recon: dataset folder")
    ev.add_argument("--checkpoint", type=Path, default=None, help="recon: checkpoint file or training folder")
    ev.add_argument("--split", default="test", help="recon: split to score (default test)")
    ev.add_argument("--views", type=int, default=24, help="recon: input views per object (default 24)")
    fit = sub.add_parser(
        "fit",
        help="run a fitting application on synthetic views of a mesh",
        description="Writes result.obj, views.png, optimisation.gif, results.json, results.md and "
        "report.html under --out.",
    )
    fit.add_argument("kind", choices=("shape", "pose", "appearance"))
    fit.add_argument("--mesh", default="spot", help="an .obj/.ply/.gltf/.glb file or an asset name (spot)")
    fit.add_argument("--views", type=int, default=8, help="number of views (default 8)")
    fit.add_argument("--method", default="softras", help="a method of gradiance.eval.methods (softras)")
    fit.add_argument("--size", type=int, default=64, help="image size in pixels (default 64)")
    fit.add_argument("--steps", type=int, default=None, help="optimisation steps (default per kind)")
    fit.add_argument("--out", type=Path, default=None, help="output folder (default outputs/fit/KIND)")
    _add_recon_commands(sub)
    return parser


def _add_recon_commands(sub: argparse._SubParsersAction) -> None:
    """``gradiance data recon`` and ``gradiance train recon``."""
    data = sub.add_parser("data", help="write a procedural dataset (NMR/SoftRas layout)")
    data.add_argument("kind", choices=("recon",))
    data.add_argument("--out", type=Path, required=True, help="dataset folder")
    data.add_argument("--objects-per-class", type=int, default=400, help="objects per class (default 400)")
    data.add_argument("--classes", default="", help="comma-separated classes (default: all)")
    data.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    tr = sub.add_parser(
        "train",
        help="train single-view reconstruction from silhouettes",
        description="Run under torchrun for data-parallel training (gloo on CPU, NCCL on GPU). Writes "
        "checkpoint.pt, history.json and tensorboard/ under --out.",
    )
    tr.add_argument("kind", choices=("recon",))
    tr.add_argument("--data", type=Path, required=True, help="dataset folder (gradiance data recon)")
    tr.add_argument("--out", type=Path, required=True, help="output folder")
    tr.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    tr.add_argument("--device", default=None, help="cpu or cuda (default cuda when available)")
    tr.add_argument("--classes", default="", help="comma-separated classes (default: all)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    defaults = _train_defaults()
    for name, value in defaults.items():
        flag = "--" + name.replace("_", "-")
        tr.add_argument(flag, type=type(value), default=value, help=f"(default {value})")


def _train_defaults() -> dict[str, int | float | str]:
    from .apps.recon.training import TrainConfig

    keep: tuple[str, ...] = ("steps", "batch_size", "lr", "method", "sigma", "laplacian_weight")
    keep += ("flatten_weight", "seed", "checkpoint_every", "log_every", "val_objects")
    config = TrainConfig()
    return {k: getattr(config, k) for k in keep}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "info":
        print("\n".join(info_lines()))
        return 0
    if args.command == "demo":
        from .apps.showcase import TINY, run_showcase

        index = run_showcase(args.out, size=args.size, sizes=TINY if args.tiny else None)
        print(f"wrote {index}")
        return 0
    if args.command == "fit":
        from .apps.fit_command import run_fit

        out = args.out or Path("outputs/fit") / args.kind
        options = {"views": args.views, "method": args.method, "size": args.size, "steps": args.steps}
        return _report(parser, lambda: run_fit(args.kind, args.mesh, out, **options), out)
    if args.command in ("data", "train"):
        return _run_recon(parser, args)
    if args.command == "eval" and args.what == "recon":
        from .apps.recon.report import recon_report

        if args.data is None or args.checkpoint is None:
            parser.error("eval recon needs --data and --checkpoint")
        out = args.out or Path("outputs/eval/recon")
        return _report(parser, lambda: recon_report(args.checkpoint, args.data, args.split, args.views), out)
    if args.command == "eval" and args.what in ("volume", "implicit"):
        from .apps.implicit_fit import implicit_report
        from .apps.volume_fit import volume_report

        make = volume_report if args.what == "volume" else implicit_report
        out = args.out or Path("outputs/eval") / args.what
        return _report(parser, lambda: make(quick=args.quick, tiny=args.tiny), out)
    if args.command == "eval":
        from .eval.suite import evaluate_convergence, evaluate_gradients, evaluate_speed

        run = {"gradients": evaluate_gradients, "convergence": evaluate_convergence, "speed": evaluate_speed}
        methods = [m.strip() for m in args.methods.split(",") if m.strip()] or None
        out = args.out or Path("outputs/eval") / args.what
        return _report(parser, lambda: run[args.what](methods, quick=args.quick, tiny=args.tiny), out)
    parser.print_help()
    return 0


def _run_recon(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``gradiance data recon`` and ``gradiance train recon``."""
    from .apps.recon import TrainConfig, generate_dataset, train

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) or None
    try:
        if args.command == "data":
            out = generate_dataset(args.out, args.objects_per_class, args.seed, classes)
            print(f"wrote {out}")
            return 0
        options = {k: getattr(args, k) for k in _train_defaults()}
        config = TrainConfig(**options, classes=classes)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        state = train(args.data, args.out, config, resume=args.resume, device=device, progress=not args.quiet)
    except ValueError as err:
        parser.error(str(err))
    print(f"trained {state.step} steps; wrote {args.out / 'checkpoint.pt'}")
    return 0


def _report(parser: argparse.ArgumentParser, make: Callable[[], Report], out: Path) -> int:
    """Run ``make`` (bad input becomes a usage error naming it) and write its report under ``out``."""
    from .eval.report import write_report

    try:
        report = make()
    except ValueError as err:
        parser.error(str(err))
    paths = write_report(report, out)
    print(f"wrote {paths['html']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
