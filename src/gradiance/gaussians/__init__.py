"""3D Gaussian splatting (Kerbl et al. 2023): the scene, its projection and its rendering."""

from .from_mesh import gaussians_from_meshes
from .model import Gaussians, rgb_to_sh0, sh_from_kerbl
from .render import GaussianRenderOutput, GaussianSettings, Projected, project_gaussians, render_gaussians

__all__ = [
    "GaussianRenderOutput",
    "GaussianSettings",
    "Gaussians",
    "Projected",
    "gaussians_from_meshes",
    "project_gaussians",
    "render_gaussians",
    "rgb_to_sh0",
    "sh_from_kerbl",
]
