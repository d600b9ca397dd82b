"""The PyTorch3D adapter and side-by-side agreement with PyTorch3D's renderers (run only where PyTorch3D is
importable; CI has none)."""

from __future__ import annotations

import pytest
import torch

from gradiance.apps.common import ring_cameras
from gradiance.core.materials import PhongMaterial
from gradiance.eval.bench import _POSE_LIGHTS, spot
from gradiance.eval.methods import eval_methods
from gradiance.eval.metrics import silhouette_iou
from gradiance.eval.peers import pytorch3d_available, pytorch3d_softras
from gradiance.mesh import RenderSettings, render
from gradiance.mesh.softras import SoftRasSettings

pytestmark = pytest.mark.skipif(not pytorch3d_available(), reason="PyTorch3D is not installed")


def test_pytorch3d_soft_silhouette_matches_ours() -> None:
    assert "pytorch3d-softras" in eval_methods()
    mesh, cams = spot().geometry(), ring_cameras(2, 32)
    _, theirs = pytorch3d_softras(mesh, cams, None)
    ours = render(
        mesh, cams, method="softras", settings=RenderSettings(softras=SoftRasSettings(sigma=3e-4))
    ).alpha
    assert bool((silhouette_iou(theirs, ours) > 0.98).all())
    image, alpha = pytorch3d_softras(mesh, cams, _POSE_LIGHTS)
    assert image.shape == (2, 32, 32, 3) and float(image.max()) > 0 and alpha.shape == (2, 32, 32, 1)


def test_unmapped_lights_are_refused() -> None:
    from gradiance.core import Lights
    from gradiance.core.lights import SHLighting

    with pytest.raises(NotImplementedError, match="ambient and directional"):
        pytorch3d_softras(spot().geometry(), ring_cameras(1, 16), Lights(sh=SHLighting(torch.zeros(9, 3))))


def test_k_nearest_mode_matches_pytorch3d_and_exact_mode_keeps_covering_faces() -> None:
    """With 50 faces per pixel our SoftRas equals PyTorch3D's soft silhouette pixel for pixel; the exact
    mode differs only where PyTorch3D's 50 nearest faces leave out the face that covers the pixel (alpha
    1 against as little as 0.14 on Spot at 48 px)."""
    mesh, cams = spot().geometry(), ring_cameras(2, 48)
    _, theirs = pytorch3d_softras(mesh, cams, None)
    settings = SoftRasSettings(sigma=3e-4, faces_per_pixel=50)
    k50 = render(mesh, cams, method="softras", settings=RenderSettings(softras=settings)).alpha
    torch.testing.assert_close(k50, theirs, atol=1e-3, rtol=0)
    exact = render(mesh, cams, method="softras", settings=RenderSettings(softras=SoftRasSettings(sigma=3e-4)))
    off = (exact.alpha - theirs).abs() > 0.05
    assert bool(off.any()) and bool((exact.alpha[off] > theirs[off]).all())


def test_k_nearest_soft_phong_matches_pytorch3d() -> None:
    """Our SoftRas colour with PyTorch3D's conventions (50 faces per pixel, one-sided lighting, no
    specular term, its background term ``epsilon = 1e-10``) against its SoftPhongShader."""
    mesh, cams = spot().geometry(), ring_cameras(2, 48)
    image, _ = pytorch3d_softras(mesh, cams, _POSE_LIGHTS)
    soft = SoftRasSettings(sigma=3e-4, gamma=1e-4, epsilon=1e-10, faces_per_pixel=50)
    settings = RenderSettings(model="phong", two_sided=False, softras=soft, background=(0.0, 0.0, 0.0))
    ours = render(
        mesh, cams, _POSE_LIGHTS, PhongMaterial(specular_color=0.0), method="softras", settings=settings
    )
    assert float((ours.image - image).abs().max()) < 0.02
    assert float((ours.image - image).abs().mean()) < 1e-4


def test_hard_rasterisation_matches_pytorch3d() -> None:
    """Face ids and depths of our z-buffer against PyTorch3D's rasteriser on Spot from three views."""
    from pytorch3d import renderer as p3r
    from pytorch3d.structures import Meshes as P3Meshes

    from gradiance.eval.speed import load_scene, orbit
    from gradiance.mesh import rasterize

    mesh, cams = load_scene("spot"), orbit(3, 128, "cpu")
    assert mesh is not None
    ours = rasterize(mesh, cams)
    settings = p3r.RasterizationSettings(image_size=(128, 128), faces_per_pixel=1, bin_size=0)
    rasterizer = p3r.MeshRasterizer(p3r.PerspectiveCameras(in_ndc=True, **cams.to_pytorch3d()), settings)
    frag = rasterizer(P3Meshes([mesh.verts], [mesh.faces]).extend(3))
    pix = frag.pix_to_face[..., 0]
    theirs = torch.where(pix >= 0, pix % mesh.faces.shape[0], -1)
    assert float((theirs == ours.face_id[..., 0]).float().mean()) > 0.9999
    covered = (theirs == ours.face_id[..., 0]) & (theirs >= 0)
    assert float((frag.zbuf[..., 0] - ours.depth[..., 0])[covered].abs().max()) < 1e-3


def test_point_splatting_matches_pytorch3d() -> None:
    """``render_points`` with PyTorch3D's quadratic kernel and 8 points per pixel against its
    ``PointsRenderer``: alpha compositing agrees up to our 0.99 opacity clamp; the normalised weighted sum
    agrees once our coverage factor (which blends partly covered pixels into the background) is divided
    out."""
    from pytorch3d import renderer as p3r
    from pytorch3d.structures import Pointclouds

    from gradiance.core import PointClouds
    from gradiance.points import PointRasterSettings, render_points

    g = torch.Generator().manual_seed(0)
    pts, cols = (torch.rand(800, 3, generator=g) - 0.5) * 1.6, torch.rand(800, 3, generator=g)
    cams = ring_cameras(2, 48)
    raster = p3r.PointsRasterizationSettings(
        image_size=(48, 48), radius=2.5 / 24, points_per_pixel=8, bin_size=0
    )
    rasterizer = p3r.PointsRasterizer(p3r.PerspectiveCameras(in_ndc=True, **cams.to_pytorch3d()), raster)
    cloud = Pointclouds(points=[pts], features=[cols]).extend(2)
    settings = PointRasterSettings(radius=2.5, radius_mode="pixel", kernel="quadratic", points_per_pixel=8)
    ours = PointClouds.from_list([pts], colors=[cols])
    theirs = p3r.PointsRenderer(rasterizer, p3r.AlphaCompositor())(cloud)
    alpha = render_points(ours, cams, settings, compositing="alpha")
    assert float((alpha.image - theirs).abs().max()) < 0.01
    theirs = p3r.PointsRenderer(rasterizer, p3r.NormWeightedCompositor())(cloud)
    norm = render_points(ours, cams, settings, compositing="normalized_weighted_sum")
    covered = norm.alpha[..., 0] > 0
    assert bool(covered.any()) and float(theirs[~covered].abs().max()) == 0.0
    torch.testing.assert_close((norm.image / norm.alpha)[covered], theirs[covered], atol=1e-4, rtol=0)
