"""The unit-sphere frame: the object fits, the frame maps back to world units, projections agree."""

from __future__ import annotations

import numpy as np
import pytest

from recon.io.cameras import load_views, normalize_views
from recon.ops.rays import pixel_rays, project


@pytest.mark.parametrize("use_masks", [True, False])
def test_object_fits_the_unit_sphere(rendered, use_masks):
    _, folder, mesh = rendered
    views = load_views(folder)
    nviews, to_world = normalize_views(views, use_masks=use_masks)
    inv = np.linalg.inv(to_world)
    local = mesh.vertices @ inv[:3, :3].T + inv[:3, 3]
    r = np.linalg.norm(local, axis=1)
    assert r.max() < 1.0
    # not absurdly loose: the sphere of radius 1.5 fills a good part of the unit sphere
    assert r.max() > (0.6 if use_masks else 0.4), r.max()
    # the silhouettes pin the centre down well
    if use_masks:
        assert np.linalg.norm(local.mean(0)) < 0.1


def test_normalised_cameras_see_the_same_image(rendered):
    _, folder, mesh = rendered
    views = load_views(folder)
    nviews, to_world = normalize_views(views, use_masks=False)
    inv = np.linalg.inv(to_world)
    local = mesh.vertices @ inv[:3, :3].T + inv[:3, 3]
    a, b = views.cameras, nviews.cameras
    for c in range(len(a)):
        uv_w, z_w = project(a.K[c], a.cam_to_world[c], mesh.vertices)
        uv_n, z_n = project(b.K[c], b.cam_to_world[c], local)
        np.testing.assert_allclose(uv_n, uv_w, atol=1e-8)
        np.testing.assert_allclose(z_n * to_world[0, 0], z_w, rtol=1e-10)
        o_n, d_n, _ = pixel_rays(b.K[c], b.cam_to_world[c], np.array([[3.5, 7.25]]))
        o_w, d_w, _ = pixel_rays(a.K[c], a.cam_to_world[c], np.array([[3.5, 7.25]]))
        np.testing.assert_allclose(o_n[0] * to_world[0, 0] + to_world[:3, 3], o_w[0], atol=1e-10)
        np.testing.assert_allclose(d_n, d_w, atol=1e-12)
    assert nviews.image_paths == views.image_paths


def test_describe_views_of_the_rendered_scene(rendered):
    from recon.io.cameras import describe_folder

    _, folder, mesh = rendered
    d = describe_folder(folder)
    assert d["format"].startswith("transforms.json") and d["views"] == 8 and d["resolution"] == "32x32"
    assert d["camera model"] == "pinhole" and d["masks"] == "alpha channel"
    centre = np.array(d["scene centre"])
    assert np.linalg.norm(mesh.vertices - centre, axis=1).max() < d["scene radius"]
    assert np.linalg.norm(centre - mesh.vertices.mean(0)) < 0.2
