"""Fit 3D Gaussians, seen head-on, to Spot's texture as a 2D picture.

    python examples/fit_gaussians_to_an_image.py --out outputs/examples/gaussian_image --size 128

``gradiance.apps.splat_fit.fit_image`` places ``--gaussians`` flat Gaussians at random in the plane z = 0
and optimises their means, scales, rotations, opacities and colours with Adam on the L1 + D-SSIM loss of
Kerbl et al. 2023, rendered by ``gradiance.gaussians.render_gaussians`` (tiles, depth sort, early
termination). Writes the target, the fit and a GIF of the optimisation, and prints the PSNR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gradiance.apps.splat_fit import SplatFitConfig, fit_image, spot_texture
from gradiance.io import save_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("outputs/examples/gaussian_image"))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--gaussians", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    target = spot_texture(args.size)
    frames: list[torch.Tensor] = []

    def on_step(step: int, image: torch.Tensor) -> None:
        if step % max(1, args.steps // 30) == 0:
            frames.append(image.clamp(0, 1))

    fit = fit_image(target, SplatFitConfig(num_gaussians=args.gaussians, steps=args.steps), True, on_step)
    for row in fit.history.rows[:: max(1, args.steps // 10)] + fit.history.rows[-1:]:
        print(f"step {int(row['step']):4d}  PSNR {row['psnr']:.2f} dB")
    save_image(args.out / "target.png", target)
    save_image(args.out / "fit.png", fit.image, clamp=True)
    pictures = [(f * 255).round().byte().numpy() for f in [*frames, fit.image.clamp(0, 1)]]
    from PIL import Image

    gif = [Image.fromarray(p) for p in pictures]
    gif[0].save(args.out / "optimisation.gif", save_all=True, append_images=gif[1:], duration=80, loop=0)
    print(f"final PSNR {fit.history.rows[-1]['psnr']:.2f} dB; wrote {args.out}")


if __name__ == "__main__":
    main()
