"""Recover Spot's texture and spherical-harmonics lighting from shaded views of its known shape.

    python examples/recover_texture_and_lighting.py --out outputs/examples/appearance

``gradiance.apps.fit_appearance`` starts from a grey texture and a constant environment and fits both to
the views. The product albedo x light is determined only up to a per-channel scale; the script aligns it
before measuring the texture against the truth (PSNR over the texels the views see) and saves the texture.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from gradiance.apps.appearance import AppearanceConfig, fit_appearance
from gradiance.apps.common import ring_cameras
from gradiance.core import Lights, normalize_to_unit_sphere
from gradiance.core.lights import SHLighting
from gradiance.eval.metrics import psnr
from gradiance.io import load_asset, save_image
from gradiance.mesh import render


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("outputs/examples/appearance"))
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--texture-size", type=int, default=64)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    spot = normalize_to_unit_sphere(load_asset("spot"))
    cameras = ring_cameras(args.views, args.size)
    sh = torch.zeros(9, 3)
    sh[0], sh[2] = 2 * math.sqrt(math.pi) * 0.8, 0.5
    target = render(spot, cameras, Lights(sh=SHLighting(sh))).image.detach()
    config = AppearanceConfig(steps=args.steps, texture_size=args.texture_size, smoothness=0.05)
    fit = fit_appearance(spot, cameras, target, method="hard", config=config)
    truth_map = next(m.diffuse_map for ms in spot.materials for m in ms if m.diffuse_map is not None)
    assert truth_map is not None
    truth = torch.nn.functional.interpolate(
        truth_map[..., :3].permute(2, 0, 1)[None].float(), (args.texture_size,) * 2, mode="area"
    )[0].permute(1, 2, 0)
    seen, ref = fit.texture[fit.observed], truth[fit.observed]
    scale = (seen * ref).sum(0) / (seen * seen).sum(0).clamp_min(1e-12)
    score = float(psnr((seen * scale)[None, None], ref[None, None])[0])
    print(f"loss {fit.history.column('loss')[0]:.5f} -> {fit.history.column('loss')[-1]:.5f}")
    print(f"texture PSNR {score:.2f} dB over {int(fit.observed.sum())} observed texels")
    save_image(args.out / "texture.png", fit.texture.clamp(0, 1))
    print(f"wrote {args.out / 'texture.png'}")


if __name__ == "__main__":
    main()
