"""Single-view 3D reconstruction trained from silhouettes (Kato et al. 2018, Liu et al. 2019).

- ``protocol``: the 24-view NMR/SoftRas viewing protocol in gradiance's conventions;
- ``shapes`` and ``dataset``: procedural object classes, the dataset generator and the loader of the
  NMR/SoftRas file layout (which also reads the real ShapeNet renderings);
- ``model``: the image encoder and the sphere-deforming decoder;
- ``training``: single-process and ``torchrun`` data-parallel training with atomic checkpoints and resume;
- ``evaluate`` and ``report``: voxel IoU at 32^3 per class, chamfer and F-score, mean-shape baselines.

Commands: ``gradiance data recon``, ``gradiance train recon``, ``gradiance eval recon``.
"""

from .dataset import ReconDataset, generate_dataset, load_split
from .evaluate import evaluate, mean_shape_baselines
from .model import ReconNet
from .protocol import view_cameras
from .training import TrainConfig, load_trained, train

__all__ = [
    "ReconDataset",
    "ReconNet",
    "TrainConfig",
    "evaluate",
    "generate_dataset",
    "load_split",
    "load_trained",
    "mean_shape_baselines",
    "train",
    "view_cameras",
]
