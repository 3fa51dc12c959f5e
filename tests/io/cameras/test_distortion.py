"""Lens distortion: point round trips, true rays of distorted pixels, image undistortion, COLMAP models."""

from __future__ import annotations

import numpy as np
import pytest

from recon.io.cameras.colmap import ColmapCamera, ColmapImage, to_cameras
from recon.io.cameras.distortion import distort_points, undistort_image, undistort_points
from recon.ops.rays import pixel_rays

K = np.array([[500.0, 0.0, 321.3], [0.0, 505.0, 238.7], [0.0, 0.0, 1.0]])
CASES = {
    "SIMPLE_RADIAL": np.array([-0.12, 0.0, 0.0, 0.0]),
    "RADIAL": np.array([-0.2, 0.05, 0.0, 0.0]),
    "OPENCV": np.array([0.0578421, -0.0805099, -0.000980296, 0.00015575]),  # instant-ngp fox
    "OPENCV_strong": np.array([-0.28, 0.07, 0.002, -0.001]),
}


def image_grid(w: int = 640, h: int = 480, step: int = 16) -> np.ndarray:
    u, v = np.meshgrid(np.arange(0, w + 1, step, dtype=float), np.arange(0, h + 1, step, dtype=float))
    return np.stack([u.ravel(), v.ravel()], -1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_distort_then_undistort_round_trip(name):
    uv = image_grid()
    coeffs = CASES[name]
    back = undistort_points(distort_points(uv, K, coeffs), K, coeffs)
    np.testing.assert_allclose(back, uv, atol=1e-6, rtol=0)
    moved = np.abs(distort_points(uv, K, coeffs) - uv).max()
    assert moved > 1.0  # the distortion does something


def test_undistorted_pixel_gives_the_true_ray():
    """Project 3D points with a distorted camera; the rays of those pixels pass through the points."""
    rng = np.random.default_rng(0)
    coeffs = CASES["OPENCV"]
    xyz = np.concatenate([rng.uniform(-1.5, 1.5, (200, 2)), rng.uniform(2, 5, (200, 1))], 1)  # camera = world
    ideal = (xyz / xyz[:, 2:]) @ K.T
    observed = distort_points(ideal[:, :2], K, coeffs)
    o, d, _ = pixel_rays(K, np.eye(4), undistort_points(observed, K, coeffs))
    np.testing.assert_allclose(d, xyz / np.linalg.norm(xyz, axis=1, keepdims=True), atol=1e-9)


def test_undistort_image_recovers_the_pinhole_image():
    """Make a distorted photo of a smooth pattern; undistorting it gives the pinhole image."""
    w, h = 160, 120
    k = np.array([[150.0, 0, 80.2], [0, 150.0, 59.7], [0, 0, 1]])
    coeffs = np.array([-0.15, 0.03, 0.001, -0.0005])

    def pattern(uv: np.ndarray) -> np.ndarray:
        return 0.5 + 0.5 * np.sin(uv[:, 0] / 9.0) * np.cos(uv[:, 1] / 7.0)

    j, i = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    centres = np.stack([i.ravel() + 0.5, j.ravel() + 0.5], -1).astype(float)
    distorted = pattern(undistort_points(centres, k, coeffs)).reshape(h, w)  # photo pixel -> ideal position
    restored = undistort_image(distorted, k, coeffs)
    truth = pattern(centres).reshape(h, w)
    inner = (slice(10, h - 10), slice(10, w - 10))
    err = np.abs(restored - truth)[inner]
    assert err.max() < 0.01, err.max()
    assert np.abs(distorted - truth)[inner].max() > 0.1  # undistortion was needed


@pytest.mark.parametrize("model,params,expected", [
    ("SIMPLE_PINHOLE", [500, 320, 240], None),
    ("PINHOLE", [500, 510, 320, 240], None),
    ("SIMPLE_RADIAL", [500, 320, 240, -0.1], [-0.1, 0, 0, 0]),
    ("RADIAL", [500, 320, 240, -0.1, 0.02], [-0.1, 0.02, 0, 0]),
    ("OPENCV", [500, 510, 320, 240, -0.1, 0.02, 0.001, 0.002], [-0.1, 0.02, 0.001, 0.002]),
])
def test_colmap_models_map_to_k_and_distortion(tmp_path, model, params, expected):
    cams = {1: ColmapCamera(model, 640, 480, np.array(params, float))}
    images = [ColmapImage(np.array([1.0, 0, 0, 0]), np.zeros(3), 1, "a.png")]
    out = to_cameras(cams, images, tmp_path / "images.txt")
    assert out.K[0, 0, 0] == params[0]
    assert out.K[0, 1, 1] == (params[1] if model in ("PINHOLE", "OPENCV") else params[0])
    if expected is None:
        assert out.distortion is None
    else:
        np.testing.assert_array_equal(out.distortion[0], expected)
