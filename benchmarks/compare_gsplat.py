"""gradiance's 3D Gaussian splatting beside gsplat's ``rasterization`` on the same scenes: image, alpha and
depth agreement, gradient agreement, forward and backward time and peak memory, one JSON row per scene.

    python benchmarks/compare_gsplat.py                 # CUDA: gsplat's fused kernels against ours
    python benchmarks/compare_gsplat.py --projection    # any device: projection and colours only, against
                                                        # gsplat's pure-torch reference (no CUDA needed)

gsplat is not a dependency of gradiance: install it beside it (``pip install gsplat``; its CUDA extension
compiles on first use). Both renderers get the same parameters in float32: gsplat's ``colors`` are our SH
coefficients converted to its basis (``sh_from_kerbl``), its ``viewmats``/``Ks`` are our cameras' OpenCV
matrices. Ours runs with ``max_alpha=0.999``, gsplat's clamp (the paper's 0.99 is our default); the remaining
differences are gsplat's footprint (an opacity-aware box of up to 3.33 standard deviations per axis, where
ours is the paper's square of 3 along the major axis) and float rounding (gsplat uses fast-math
exponentials). Agreement is the maximum and mean absolute difference and the PSNR of ours against gsplat's
image; for gradients, the cosine similarity and the relative L2 difference per parameter for the loss
``sum(w * image)`` with fixed random weights ``w``. Times are medians of 5 runs after a warm-up.

Scenes: ``spot`` (one flat Gaussian per face of Spot, coloured from its texture, 5,856 Gaussians) and
``random`` (``benchmarks/bench_splats.py``'s seeded Gaussians in the unit ball with degree-3 colours).
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from torch import Tensor

from gradiance.core import Cameras, normalize_to_unit_sphere
from gradiance.eval.speed import orbit, timed_with_peak
from gradiance.gaussians import Gaussians, GaussianSettings, render_gaussians, sh_from_kerbl
from gradiance.gaussians.from_mesh import gaussians_from_meshes
from gradiance.gaussians.render import project_gaussians
from gradiance.io import load_asset

Params = list[Tensor]  # means, quats, log_scales, opacity logits, SH (our basis), as leaves
QUICK = [("spot", 0, 512), ("random", 10_000, 256), ("random", 100_000, 512), ("random", 1_000_000, 1024)]
SETTINGS = GaussianSettings(max_alpha=0.999)
BACKGROUND = (0.1, 0.2, 0.3)


def spot_params(device: str) -> Params:
    """One Gaussian per face of Spot, with the texture's colour at the face's centroid UV."""
    spot = normalize_to_unit_sphere(load_asset("spot"))
    assert spot.uvs is not None and spot.face_uvs is not None
    tex = spot.materials[0][0].diffuse_map
    assert tex is not None
    uv = spot.uvs[spot.face_uvs].mean(1)  # (F, 2), v up; row 0 of the map is v = 1
    grid = torch.stack([2 * uv[:, 0] - 1, 1 - 2 * uv[:, 1]], -1)[None, None]
    rgb = torch.nn.functional.grid_sample(tex.permute(2, 0, 1)[None], grid, align_corners=False)
    g = gaussians_from_meshes(spot.geometry(), colors=rgb[0, :, 0].T.contiguous())
    logits = torch.logit(g.opacities)
    params = [g.means, g.quats, g.scales.log(), logits, g.sh]
    return [p.detach().to(device).requires_grad_() for p in params]


def random_params(n: int, device: str) -> Params:
    """``benchmarks/bench_splats.py``'s scene."""
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
    means = d * torch.rand(n, 1, generator=g) ** (1 / 3)
    scales = 0.004 + 0.02 * torch.rand(n, 3, generator=g) * (1000 / n) ** (1 / 3)
    sh = 0.3 * torch.randn(n, 16, 3, generator=g)
    params = [means, torch.randn(n, 4, generator=g), scales.log(), torch.randn(n, generator=g), sh]
    return [p.to(device).requires_grad_() for p in params]


def gaussians(params: Params) -> Gaussians:
    means, quats, log_scales, logits, sh = params
    return Gaussians(means, quats, log_scales.exp(), torch.sigmoid(logits), sh)


def ours(params: Params, cams: Cameras) -> tuple[Tensor, Tensor, Tensor]:
    bg = torch.tensor(BACKGROUND, device=cams.device)
    out = render_gaussians(gaussians(params), cams, SETTINGS, background=bg)
    return out.image, out.alpha, out.depth


def theirs(params: Params, cams: Cameras) -> tuple[Tensor, Tensor, Tensor]:
    from gsplat import rasterization

    means, quats, log_scales, logits, sh = params
    H, W = cams.image_size
    rgbd, alpha, _ = rasterization(
        means,
        quats,
        log_scales.exp(),
        torch.sigmoid(logits),
        sh_from_kerbl(sh),
        cams.world_to_camera_matrix(),
        cams.intrinsic_matrix(),
        W,
        H,
        near_plane=float(cams.near_t[0]),
        far_plane=float(cams.far_t[0]),
        sh_degree=math.isqrt(sh.shape[1]) - 1,
        render_mode="RGB+ED",
    )  # its packed mode rejects per-camera backgrounds for several cameras: added here, as it would
    bg = torch.tensor(BACKGROUND, device=cams.device)
    return rgbd[..., :3] + (1 - alpha) * bg, alpha, rgbd[..., 3:] * (alpha > 0)


def images_agree(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> dict[str, float]:
    (img_a, alpha_a, depth_a), (img_b, alpha_b, depth_b) = a, b
    diff = (img_a - img_b).abs()
    mse = float((diff**2).mean())
    return {
        "image_max_abs": round(float(diff.max()), 5),
        "image_mean_abs": float(f"{float(diff.mean()):.3g}"),
        "image_psnr_db": round(-10 * math.log10(max(mse, 1e-20)), 2),
        "alpha_max_abs": round(float((alpha_a - alpha_b).abs().max()), 5),
        "depth_mean_abs": float(f"{float((depth_a - depth_b).abs().mean()):.3g}"),
    }


def gradients_agree(params: Params, cams: Cameras) -> dict[str, float]:
    g = torch.Generator().manual_seed(1)
    H, W = cams.image_size
    w = torch.rand(len(cams), H, W, 3, generator=g).to(cams.device)
    result = {}
    grads = []
    for render in (ours, theirs):
        loss = (render(params, cams)[0] * w).sum()
        grads.append(torch.autograd.grad(loss, params))
    for name, ga, gb in zip(("means", "quats", "log_scales", "logits", "sh"), *grads, strict=True):
        cos = torch.nn.functional.cosine_similarity(ga.flatten(), gb.flatten(), dim=0)
        rel = (ga - gb).norm() / gb.norm().clamp_min(1e-30)
        result[f"grad_{name}_cos"] = round(float(cos), 5)
        result[f"grad_{name}_rel"] = float(f"{float(rel):.3g}")
    return result


def projection_row(params: Params, cams: Cameras) -> dict[str, float]:
    """Means, depths, conics and colours of ``project_gaussians`` against gsplat's pure-torch reference
    (``_fully_fused_projection``, ``_spherical_harmonics``) for the Gaussians both keep."""
    from gsplat.cuda._torch_impl import _fully_fused_projection, _spherical_harmonics

    g = gaussians(params)
    mine = project_gaussians(g, cams, SETTINGS)
    H, W = cams.image_size
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        g.means, g.covariances(), cams.world_to_camera_matrix(), cams.intrinsic_matrix(), W, H,
        near_plane=float(cams.near_t[0]), far_plane=float(cams.far_t[0]),
    )  # fmt: skip
    both = (mine.radii > 0) & (radii > 0).all(-1)
    dirs = g.means[None] - cams.camera_centers()[:, None]
    sh = sh_from_kerbl(g.sh).expand(len(cams), -1, -1, -1)
    rgb = torch.clamp_min(_spherical_harmonics(g.degree, dirs, sh) + 0.5, 0)
    scale = mine.conics[both].abs().max()
    return {
        "kept_by_both": int(both.sum()),
        "kept_by_ours_only": int(((mine.radii > 0) & ~both).sum()),
        "kept_by_gsplat_only": int(((radii > 0).all(-1) & ~both).sum()),
        "means2d_max_abs_px": float(f"{float((mine.means2d - means2d)[both].abs().max()):.3g}"),
        "depth_max_abs": float(f"{float((mine.depth - depths)[both].abs().max()):.3g}"),
        "conic_max_rel": float(f"{float((mine.conics - conics)[both].abs().max() / scale):.3g}"),
        "color_max_abs": float(f"{float((mine.colors - rgb)[both].abs().max()):.3g}"),
    }


def row(scene: str, n: int, size: int, device: str, projection_only: bool) -> dict[str, object]:
    params = spot_params(device) if scene == "spot" else random_params(n, device)
    cams = orbit(1 if n >= 1_000_000 else 2, size, device)  # ours needs ~50 GB per megapixel view there
    head: dict[str, object] = {"scene": scene, "gaussians": int(params[0].shape[0]), "resolution": size}
    head |= {"cameras": len(cams), "device": torch.cuda.get_device_name() if device == "cuda" else device}
    if projection_only:
        with torch.no_grad():
            return head | projection_row(params, cams)
    with torch.no_grad():
        head |= images_agree(ours(params, cams), theirs(params, cams))
    head |= gradients_agree(params, cams)
    for name, render in (("ours", ours), ("gsplat", theirs)):
        fwd, bwd, peak = timed_with_peak(lambda render=render: render(params, cams)[0].sum(), device)  # type: ignore[misc]
        head |= {f"{name}_forward_ms": round(fwd, 2), f"{name}_backward_ms": round(bwd, 2)}
        head[f"{name}_peak_mb"] = round(peak, 1)
    head["ratio_forward"] = round(float(head["ours_forward_ms"]) / float(head["gsplat_forward_ms"]), 1)  # type: ignore[arg-type]
    total = float(head["ours_forward_ms"]) + float(head["ours_backward_ms"])  # type: ignore[arg-type]
    total_theirs = float(head["gsplat_forward_ms"]) + float(head["gsplat_backward_ms"])  # type: ignore[arg-type]
    head["ratio_forward_backward"] = round(total / total_theirs, 1)
    return head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--projection", action="store_true", help="projection and colours only (any device)")
    ap.add_argument("--min-gaussians", type=int, default=0, help="skip smaller random scenes")
    ap.add_argument("--max-gaussians", type=int, default=1_000_000, help="skip larger random scenes")
    args = ap.parse_args()
    if not args.projection and not args.device.startswith("cuda"):
        raise SystemExit("gsplat's rasterization needs CUDA; use --projection to compare on the CPU")
    for scene, n, size in QUICK:
        if (scene == "spot" and args.min_gaussians) or not args.min_gaussians <= n <= args.max_gaussians:
            continue
        print(json.dumps(row(scene, n, size, args.device, args.projection)), flush=True)


if __name__ == "__main__":
    main()
