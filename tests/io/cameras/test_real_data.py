"""The real multiview sets in ../shared/data/multiview load, and their cameras look at a common centre."""

from __future__ import annotations

import numpy as np
import pytest

from recon.io.cameras import describe_views, load_views, scene_sphere
from recon.io.cameras.geometry import optical_axes_centre
from recon.io.images import read_view_images
from recon.ops.rays import project
from recon.types import Cameras, Views

pytestmark = pytest.mark.shared_data


def subset(views: Views, idx: list[int]) -> Views:
    c = views.cameras
    cams = Cameras(c.K[idx], c.cam_to_world[idx], c.width, c.height, None if c.distortion is None else c.distortion[idx])
    masks = None if views.mask_paths is None else [views.mask_paths[i] for i in idx]
    return Views(cams, [views.image_paths[i] for i in idx], masks)


def assert_common_centre(cams: Cameras, max_miss: float) -> np.ndarray:
    """Every optical axis passes within ``max_miss`` x (camera distance) of the axes' meeting point,
    which lies in front of every camera and projects inside every image."""
    centre = optical_axes_centre(cams.cam_to_world)
    pos, fwd = cams.cam_to_world[:, :3, 3], cams.cam_to_world[:, :3, 2]
    to_c = centre - pos
    depth = (to_c * fwd).sum(1)
    miss = np.linalg.norm(to_c - depth[:, None] * fwd, axis=1)
    assert np.all(depth > 0)
    assert np.all(miss < max_miss * np.linalg.norm(to_c, axis=1)), (miss / np.linalg.norm(to_c, axis=1)).max()
    for c in range(len(cams)):
        uv, z = project(cams.K[c], cams.cam_to_world[c], centre[None])
        assert 0 <= uv[0, 0] < cams.width and 0 <= uv[0, 1] < cams.height and z[0] > 0
    return centre


def test_middlebury_temple_subset(shared_data):
    notes: list[str] = []
    views = load_views(shared_data / "multiview" / "middlebury_temple", notes=notes)
    assert len(views) == 39
    assert notes and "39 of 312" in notes[0]
    cams = views.cameras
    assert (cams.width, cams.height) == (640, 480)
    np.testing.assert_allclose(cams.K[0], [[1520.4, 0, 302.32], [0, 1525.9, 246.87], [0, 0, 1]])
    assert_common_centre(cams, max_miss=0.05)
    # the README's tight bounding box of the temple lies inside the scene sphere and in every image
    lo, hi = np.array([-0.054568, 0.001728, -0.042945]), np.array([0.047855, 0.161892, 0.032236])
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    centre, radius = scene_sphere(cams)
    assert np.all(np.linalg.norm(corners - centre, axis=1) < radius)
    assert radius < 3 * 0.5 * np.linalg.norm(hi - lo)
    for c in range(len(cams)):
        uv, z = project(cams.K[c], cams.cam_to_world[c], 0.5 * (lo + hi)[None])
        assert 0 <= uv[0, 0] < 640 and 0 <= uv[0, 1] < 480 and z[0] > 0


def test_nerf_synthetic_lego_with_alpha_masks(shared_data):
    views = load_views(shared_data / "multiview" / "nerf_synthetic_lego")
    assert len(views) == 100
    cams = views.cameras
    assert (cams.width, cams.height) == (800, 800)
    np.testing.assert_allclose(cams.K[:, 0, 0], 0.5 * 800 / np.tan(0.5 * 0.6911112070083618))
    np.testing.assert_allclose(cams.K[:, 0, 2], 400.0)
    assert views.mask_paths == views.image_paths
    np.testing.assert_allclose(np.linalg.norm(cams.cam_to_world[:, :3, 3], axis=1), 4.031, atol=0.1)
    centre = assert_common_centre(cams, max_miss=1e-3)
    assert np.linalg.norm(centre) < 0.3  # the object sits at the origin
    rgb, masks, small = read_view_images(subset(views, [0, 37]), max_size=64)
    assert rgb.shape == (2, 64, 64, 3) and masks.shape == (2, 64, 64)
    assert 0.05 < masks.mean() < 0.8 and masks.max() == 1.0 and masks.min() == 0.0
    np.testing.assert_allclose(small.K[0, 0, 0], cams.K[0, 0, 0] * 64 / 800)
    # the object (its mask) is around the image centre, where the optical axes meet
    rows, cols = np.nonzero(masks[0] > 0.5)
    assert abs(rows.mean() - 32) < 12 and abs(cols.mean() - 32) < 12


def test_instant_ngp_fox_with_distortion(shared_data):
    views = load_views(shared_data / "multiview" / "instant_ngp_fox")
    assert len(views) == 67
    cams = views.cameras
    assert (cams.width, cams.height) == (1080, 1920)
    np.testing.assert_allclose(cams.K[0], [[1375.52, 0, 554.558], [0, 1374.49, 965.268], [0, 0, 1]])
    np.testing.assert_allclose(cams.distortion[0], [0.0578421, -0.0805099, -0.000980296, 0.00015575])
    assert "distortion" in describe_views(views)["camera model"]
    assert views.mask_paths is None
    assert_common_centre(cams, max_miss=0.35)
    rgb, masks, small = read_view_images(subset(views, [0]), max_size=96)
    assert rgb.shape == (1, 96, 54, 3) and masks is None and small.distortion is None
    np.testing.assert_allclose(small.K[0, 0, 2], 554.558 * 54 / 1080)
    assert 0.05 < rgb.mean() < 0.95
