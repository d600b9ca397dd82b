"""gradiance's mesh primitives beside nvdiffrast's on the same scenes (CUDA): rasterize, interpolate and
antialias, their agreement and their forward and backward time and peak memory, one JSON row per scene.

    python benchmarks/compare_nvdiffrast.py

nvdiffrast is not a dependency of gradiance: build it beside it (``pip install --no-build-isolation
git+https://github.com/NVlabs/nvdiffrast``; it compiles a CUDA extension). The pipeline on both sides is
the one nvdiffrast's documentation builds: clip-space positions from our cameras' ``world_to_clip``,
rasterise (nvdiffrast's CUDA rasteriser, ``RasterizeCudaContext``), interpolate the vertex normals,
antialias, and the loss ``sum(w * image)`` with fixed random weights, differentiated with respect to the
vertices. Agreement: the share of pixels whose nearest face is the same (both rasterisers sample pixel
centres; they may differ where an edge or a depth tie passes through a centre), the largest difference of
the interpolated normals where the faces agree, the mean absolute difference of the antialiased images and
the cosine similarity of the vertex gradients. Times are medians of 5 runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import Tensor

from gradiance.core import Cameras, Meshes
from gradiance.eval.speed import load_scene, orbit, timed_with_peak
from gradiance.mesh import antialias, interpolate, rasterize

SCENES = [("spot", 256, 1), ("spot", 512, 8), ("bunny", 512, 1), ("bunny", 2048, 1), ("ico8", 1024, 1)]


def ours(mesh: Meshes, verts: Tensor, normals: Tensor, cams: Cameras) -> tuple[Tensor, ...]:
    """Face ids, interpolated normals, the antialiased normals and the antialiased coverage."""
    posed = mesh.with_verts(verts)
    frags = rasterize(posed, cams)
    attr, _ = interpolate(normals, frags, posed.faces)
    image = antialias(attr[..., 0, :], frags, posed, cams)
    mask = antialias((frags.face_id >= 0).to(verts.dtype), frags, posed, cams)
    return frags.face_id[..., 0], attr[..., 0, :], image, mask


def theirs(mesh: Meshes, verts: Tensor, normals: Tensor, cams: Cameras, ctx: object) -> tuple[Tensor, ...]:
    import nvdiffrast.torch as dr

    homogeneous = torch.cat([verts, verts.new_ones(len(verts), 1)], 1)
    clip = torch.einsum("bij,vj->bvi", cams.world_to_clip(), homogeneous).contiguous()
    tri = mesh.faces.int()
    rast, _ = dr.rasterize(ctx, clip, tri, resolution=list(cams.image_size))
    attr, _ = dr.interpolate(normals[None].contiguous(), rast, tri)
    image = dr.antialias(attr.contiguous(), rast, clip, tri)
    mask = dr.antialias((rast[..., 3:] > 0).to(verts.dtype).contiguous(), rast, clip, tri)
    return rast[..., 3].long() - 1, attr, image, mask


def _cosine(a: Tensor, b: Tensor) -> float:
    return round(float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)), 4)


def row(scene: str, size: int, batch: int, ctx: object) -> dict[str, object]:
    mesh = load_scene(scene)
    if mesh is None:
        return {"scene": scene, "skipped": "asset not found"}
    mesh = mesh.to("cuda")
    normals = mesh.compute_vert_normals()
    cams = orbit(batch, size, "cuda")
    verts = mesh.verts.detach().clone().requires_grad_()
    head: dict[str, object] = {"scene": scene, "faces": int(mesh.faces.shape[0]), "resolution": size}
    head |= {"batch": batch, "device": torch.cuda.get_device_name()}
    w = torch.rand(batch, size, size, 3, generator=torch.Generator().manual_seed(0)).cuda()
    renders = (lambda: ours(mesh, verts, normals, cams), lambda: theirs(mesh, verts, normals, cams, ctx))
    with torch.no_grad():
        (f_a, n_a, i_a, _), (f_b, n_b, i_b, _) = (render() for render in renders)
    same = f_a == f_b
    both = same & (f_a >= 0)
    head["face_id_agreement"] = round(float(same.float().mean()), 6)
    head["normal_max_abs_where_same_face"] = float(f"{float((n_a - n_b)[both].abs().max()):.3g}")
    head["antialiased_mean_abs"] = float(f"{float((i_a - i_b).abs().mean()):.3g}")
    # Vertex gradients of three losses: the antialiased image; the interpolated normals on the pixels
    # whose face both rasterisers agree on (barycentric gradients only); the antialiased coverage.
    losses = {
        "vertex_grad_cos": lambda out: (w * out[2]).sum(),
        "vertex_grad_cos_interpolate_same_face": lambda out: (w * both[..., None] * out[1]).sum(),
        "vertex_grad_cos_silhouette": lambda out: (w[..., :1] * out[3]).sum(),
    }
    for key, loss_of in losses.items():
        g_a, g_b = (torch.autograd.grad(loss_of(render()), verts)[0] for render in renders)
        head[key] = _cosine(g_a, g_b)
    for name, render in (
        ("ours", lambda: ours(mesh, verts, normals, cams)),
        ("nvdiffrast", lambda: theirs(mesh, verts, normals, cams, ctx)),
    ):
        loss = lambda render=render: (w * render()[2]).sum()  # noqa: E731  (the coverage is not timed)
        fwd, bwd, peak = timed_with_peak(loss, "cuda", repeats=5)
        head |= {f"{name}_forward_ms": round(fwd, 3), f"{name}_backward_ms": round(bwd, 3)}
        head[f"{name}_peak_mb"] = round(peak, 1)
    ours_total = float(head["ours_forward_ms"]) + float(head["ours_backward_ms"])  # type: ignore[arg-type]
    nv_total = float(head["nvdiffrast_forward_ms"]) + float(head["nvdiffrast_backward_ms"])  # type: ignore[arg-type]
    head["ratio_forward_backward"] = round(ours_total / nv_total, 1)
    return head


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("nvdiffrast's CUDA rasteriser needs a GPU")
    import nvdiffrast.torch as dr

    ctx = dr.RasterizeCudaContext()
    for scene, size, batch in SCENES:
        try:
            result = row(scene, size, batch, ctx)
        except (RuntimeError, ValueError) as exc:  # one scene's failure (memory, a limit) keeps the others
            result = {"scene": scene, "resolution": size, "batch": batch, "error": str(exc)[:300]}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
