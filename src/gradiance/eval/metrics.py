"""Reconstruction and image metrics, batched and on the inputs' device.

Point-set metrics take ``(N, P, 3)`` and ``(N, Q, 3)`` batches (sample mesh surfaces with
``gradiance.core.sample_surface``) and return ``(N,)``:

- ``chamfer_distance``: ``mean_a min_b d(a, b) + mean_b min_a d(a, b)`` with ``d`` the squared distance
  (``norm=2``, PyTorch3D's convention) or the distance (``norm=1``, the "L1" chamfer of Mescheder et al.
  2019, Occupancy Networks);
- ``normal_consistency``: the mean ``|n_a . n_b|`` over nearest-neighbour pairs, both ways;
- ``f_score``: the harmonic mean of precision (fraction of predicted points within ``threshold`` of the
  truth) and recall (fraction of true points within ``threshold`` of the prediction) (Tatarchenko et al.
  2019, "What Do Single-view 3D Reconstruction Networks Learn?").

``volume_iou`` compares two closed meshes by the generalised winding number (Jacobson et al. 2013) at
uniform samples of their common bounding box. Image metrics take ``(B, H, W, C)`` images: ``silhouette_iou``,
``psnr`` and ``ssim`` (Wang et al. 2004, Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03).

Nearest neighbours are found in chunks of query points so that memory stays under ``max_pairs``
distances.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.meshes import Meshes


def nearest_neighbors(a: Tensor, b: Tensor, max_pairs: int = 16_000_000) -> tuple[Tensor, Tensor]:
    """``(dist2, index)``, each ``(N, P)``: for every point ``a[n, p]`` the squared distance to its nearest
    point ``b[n, index[n, p]]`` of ``b`` ``(N, Q, 3)``. Differentiable with respect to both point sets
    through ``dist2``. Query points go in chunks of at most ``max_pairs`` point pairs."""
    _check_points(a, "a")
    _check_points(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same batch size, got {a.shape[0]} and {b.shape[0]}")
    if b.shape[1] == 0:
        raise ValueError("b must hold at least one point per item")
    d2, idx = [], []
    chunk = max(1, max_pairs // max(1, a.shape[0] * b.shape[1]))
    for start in range(0, a.shape[1], chunk):
        part = a[:, start : start + chunk]
        with torch.no_grad():
            nn = torch.cdist(part.detach(), b.detach()).argmin(-1)  # (N, p)
        nearest = torch.gather(b, 1, nn[..., None].expand(-1, -1, 3))
        d2.append(((part - nearest) ** 2).sum(-1))
        idx.append(nn)
    if not d2:
        return a.new_zeros(a.shape[:2]), torch.zeros(a.shape[:2], dtype=torch.int64, device=a.device)
    return torch.cat(d2, 1), torch.cat(idx, 1)


def chamfer_distance(a: Tensor, b: Tensor, norm: int = 2) -> Tensor:
    """``(N,)`` chamfer distance between point sets ``a`` ``(N, P, 3)`` and ``b`` ``(N, Q, 3)`` (see the
    module docstring for ``norm``)."""
    if norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")
    d_ab, _ = nearest_neighbors(a, b)
    d_ba, _ = nearest_neighbors(b, a)
    if norm == 1:
        d_ab, d_ba = _safe_sqrt(d_ab), _safe_sqrt(d_ba)
    return d_ab.mean(1) + d_ba.mean(1)


def chamfer_and_f_score(predicted: Tensor, truth: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """``(chamfer_distance(predicted, truth), f_score(predicted, truth, threshold))`` from one nearest-
    neighbour search each way (both ``(N,)``, not differentiable): half the work of calling both."""
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    _check_points(predicted, "predicted")
    _check_points(truth, "truth")
    if predicted.shape[0] != truth.shape[0]:
        n, m = predicted.shape[0], truth.shape[0]
        raise ValueError(f"predicted and truth must have the same batch size, got {n} and {m}")
    with torch.no_grad():
        d_pt, d_tp = _nearest_d2(predicted, truth), _nearest_d2(truth, predicted)
        precision = (d_pt <= threshold**2).double().mean(1)
        recall = (d_tp <= threshold**2).double().mean(1)
        total = precision + recall
        f = torch.where(total > 0, 2 * precision * recall / total.clamp_min(1e-300), torch.zeros_like(total))
        return d_pt.mean(1) + d_tp.mean(1), f


def _nearest_d2(a: Tensor, b: Tensor, max_pairs: int = 16_000_000) -> Tensor:
    """``(N, P)`` squared distance from each point of ``a`` to the nearest of ``b`` (no autograd)."""
    chunk = max(1, max_pairs // max(1, a.shape[0] * b.shape[1]))
    parts = [torch.cdist(a[:, s : s + chunk], b).amin(-1) ** 2 for s in range(0, a.shape[1], chunk)]
    return torch.cat(parts, 1) if parts else a.new_zeros(a.shape[:2])


def normal_consistency(a: Tensor, normals_a: Tensor, b: Tensor, normals_b: Tensor) -> Tensor:
    """``(N,)`` mean absolute cosine between each point's unit normal and its nearest neighbour's in the
    other set, averaged over both directions (1 for identical oriented surfaces, orientation-blind)."""
    for name, n, p in (("normals_a", normals_a, a), ("normals_b", normals_b, b)):
        if n.shape != p.shape:
            raise ValueError(
                f"{name} must have the shape of its points {tuple(p.shape)}, got {tuple(n.shape)}"
            )
    _, ab = nearest_neighbors(a, b)
    _, ba = nearest_neighbors(b, a)
    na, nb = (
        torch.nn.functional.normalize(normals_a, dim=-1),
        torch.nn.functional.normalize(normals_b, dim=-1),
    )
    cos_ab = (na * torch.gather(nb, 1, ab[..., None].expand(-1, -1, 3))).sum(-1).abs()
    cos_ba = (nb * torch.gather(na, 1, ba[..., None].expand(-1, -1, 3))).sum(-1).abs()
    return 0.5 * (cos_ab.mean(1) + cos_ba.mean(1))


def f_score(predicted: Tensor, truth: Tensor, threshold: float) -> Tensor:
    """``(N,)`` F-score at distance ``threshold`` (see the module docstring); 0 where both precision and
    recall are 0."""
    return chamfer_and_f_score(predicted, truth, threshold)[1]


def winding_number(meshes: Meshes, points: Tensor, chunk: int = 500_000) -> Tensor:
    """``(P,)`` generalised winding number of a single mesh at ``points`` ``(P, 3)``: the sum of the solid
    angles of its faces seen from each point over ``4 pi`` (1 inside a closed outward-oriented mesh, 0
    outside), with the solid angle of Van Oosterom and Strackee (1983). Work is chunked to ``chunk``
    point-face pairs."""
    if len(meshes) != 1:
        raise ValueError(f"meshes must hold a single mesh, got {len(meshes)}")
    _check_points(points[None], "points")
    fv = meshes.face_verts().to(points.dtype)  # (F, 3, 3)
    F = fv.shape[0]
    out = points.new_zeros(points.shape[0])
    step = max(1, chunk // max(F, 1))
    for start in range(0, points.shape[0], step):
        p = points[start : start + step]
        r = fv[None] - p[:, None, None]  # (p, F, 3, 3)
        r0, r1, r2 = r.unbind(2)
        n0, n1, n2 = r0.norm(dim=-1), r1.norm(dim=-1), r2.norm(dim=-1)
        det = (r0 * torch.linalg.cross(r1, r2, dim=-1)).sum(-1)
        den = n0 * n1 * n2 + (r0 * r1).sum(-1) * n2 + (r1 * r2).sum(-1) * n0 + (r2 * r0).sum(-1) * n1
        out[start : start + step] = (2 * torch.atan2(det, den)).sum(-1) / (4 * math.pi)
    return out


def volume_iou(
    a: Meshes, b: Meshes, num_samples: int = 100_000, generator: torch.Generator | None = None
) -> Tensor:
    """``(N,)`` volumetric IoU of closed meshes ``a[n]`` and ``b[n]``, from ``num_samples`` uniform points in
    their common bounding box classified by the winding number (inside where it exceeds 0.5)."""
    if len(a) != len(b):
        raise ValueError(f"a and b must hold the same number of meshes, got {len(a)} and {len(b)}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    out = []
    for ma, mb in zip(a.split(), b.split(), strict=True):
        both = torch.cat([ma.verts, mb.verts]).detach()
        lo, hi = both.amin(0), both.amax(0)
        u = torch.rand(num_samples, 3, dtype=both.dtype, generator=generator).to(both.device)
        pts = lo + u * (hi - lo)
        ia, ib = winding_number(ma.detach(), pts) > 0.5, winding_number(mb.detach(), pts) > 0.5
        union = (ia | ib).sum()
        out.append(
            (ia & ib).sum().double() / union.clamp_min(1)
            if union > 0
            else torch.ones((), dtype=torch.float64)
        )
    return torch.stack(out).to(a.verts.device)


def silhouette_iou(a: Tensor, b: Tensor, threshold: float = 0.5) -> Tensor:
    """``(B,)`` IoU of the masks ``a > threshold`` and ``b > threshold`` of ``(B, H, W)`` or
    ``(B, H, W, 1)`` silhouettes; 1 where both are empty."""
    _check_pair(a, b)
    ma, mb = (a > threshold).reshape(a.shape[0], -1), (b > threshold).reshape(b.shape[0], -1)
    inter, union = (ma & mb).sum(1).double(), (ma | mb).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def psnr(a: Tensor, b: Tensor, max_value: float = 1.0) -> Tensor:
    """``(B,)`` peak signal-to-noise ratio in dB, ``10 log10(max^2 / MSE)`` (inf for identical images)."""
    _check_pair(a, b)
    mse = ((a - b) ** 2).reshape(a.shape[0], -1).mean(1)
    return 10 * torch.log10(max_value**2 / mse)


def ssim(a: Tensor, b: Tensor, max_value: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """``(B,)`` mean structural similarity of ``(B, H, W, C)`` images (Wang et al. 2004, eq. 13), computed per
    channel with a Gaussian window over the valid region and averaged; differentiable."""
    _check_pair(a, b)
    if a.dim() != 4:
        raise ValueError(f"images must have shape (B, H, W, C), got {tuple(a.shape)}")
    if min(a.shape[1], a.shape[2]) < window:
        raise ValueError(f"images must be at least {window} pixels on each side for the SSIM window")
    C = a.shape[-1]
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    g = torch.exp(
        -((torch.arange(window, dtype=a.dtype, device=a.device) - (window - 1) / 2) ** 2) / (2 * sigma**2)
    )
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(C, 1, window, window)

    def blur(t: Tensor) -> Tensor:
        return torch.nn.functional.conv2d(t, kernel, groups=C)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))


def _safe_sqrt(x: Tensor) -> Tensor:
    return torch.where(x > 0, x.clamp_min(1e-30).sqrt(), torch.zeros_like(x))


def _check_points(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be an (N, P, 3) tensor of points, got {shape}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < 3:
        raise ValueError(f"images must be batched (B, H, W[, C]), got {tuple(a.shape)}")
