"""The methods the evaluation suite and the applications run, by name.

A method is a function ``(meshes, cameras, lights) -> (image (B, H, W, 3), alpha (B, H, W, 1))``
registered by name (``register_eval_method``). Every mesh method of ``gradiance.mesh.render`` is
registered with the settings below; peers (``gradiance.eval.peers``) are registered when importable; later
renderers (points, Gaussians, volumes, implicit surfaces) plug in by registering one such function.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..core import Cameras, Lights, Meshes
from ..mesh import RenderSettings, render
from ..mesh.dibr import DIBRSettings
from ..mesh.render import available_methods
from ..mesh.softras import SoftRasSettings
from . import peers

EvalRender = Callable[[Meshes, Cameras, "Lights | None"], tuple[Tensor, Tensor]]
_EVAL_METHODS: dict[str, EvalRender] = {}

# Settings of the mesh methods in these tasks: the smoothing of the soft renderers is set for 64-pixel views.
TASK_SETTINGS: dict[str, RenderSettings] = {
    "softras": RenderSettings(softras=SoftRasSettings(sigma=3e-4)),
    "dibr": RenderSettings(dibr=DIBRSettings(delta=1e-3)),
}


def register_eval_method(name: str, fn: EvalRender) -> None:
    """Make the benchmark run ``fn(meshes, cameras, lights) -> (image (B, H, W, 3), alpha (B, H, W, 1))``
    under ``name``."""
    _EVAL_METHODS[name] = fn


def eval_methods() -> list[str]:
    """Names the benchmark can run."""
    return sorted(_EVAL_METHODS)


def _mesh_method(name: str) -> EvalRender:
    settings = TASK_SETTINGS.get(name, RenderSettings())

    def run(meshes: Meshes, cameras: Cameras, lights: Lights | None) -> tuple[Tensor, Tensor]:
        out = render(meshes, cameras, lights, method=name, settings=settings)
        return out.image, out.alpha

    return run


for _name in available_methods():
    register_eval_method(_name, _mesh_method(_name))

NO_VISIBILITY_GRADIENT = {"hard"}
"""Methods left out of the convergence runs by default: their silhouettes give no gradient to follow."""


def convergence_methods() -> list[str]:
    """The methods the convergence benchmark runs by default."""
    return [m for m in eval_methods() if m not in NO_VISIBILITY_GRADIENT]


def get_method(name: str) -> EvalRender:
    """The registered method ``name`` (a clear error listing the names otherwise)."""
    if name not in _EVAL_METHODS:
        raise ValueError(f"method must be one of {eval_methods()}, got {name!r}")
    return _EVAL_METHODS[name]


if peers.pytorch3d_available():
    register_eval_method("pytorch3d-softras", peers.pytorch3d_softras)
