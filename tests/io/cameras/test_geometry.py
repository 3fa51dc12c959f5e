"""Camera conventions: Blender axes, quaternions, projection decomposition, axes meeting point."""

from __future__ import annotations

import json

import numpy as np

from recon.io.cameras import load_views
from recon.io.cameras.geometry import (
    compose_projection, decompose_projection, opengl_to_opencv, optical_axes_centre, quat_to_rotation,
    rotation_to_quat,
)
from recon.ops.rays import pixel_rays, project


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    return quat_to_rotation(q / np.linalg.norm(q, axis=1, keepdims=True))


def test_blender_camera_converts_to_opencv_by_hand():
    """A Blender camera at (0, -5, 0) looking along +y (rotated 90 deg about x), z up in the world.

    In Blender the camera looks along its -z, image up is its +y. After the 90 degree rotation
    about x, camera -z points to world +y and camera +y to world +z. So in OpenCV terms: forward
    = +y, image down = -z, image right = +x.
    """
    c2w_gl = np.array([[1.0, 0, 0, 0], [0, 0, -1, -5], [0, 1, 0, 0], [0, 0, 0, 1]])
    cv = opengl_to_opencv(c2w_gl[None])[0]
    np.testing.assert_allclose(cv[:3, 0], [1, 0, 0])
    np.testing.assert_allclose(cv[:3, 1], [0, 0, -1])
    np.testing.assert_allclose(cv[:3, 2], [0, 1, 0])
    np.testing.assert_allclose(cv[:3, 3], [0, -5, 0])
    K = np.array([[100.0, 0, 50], [0, 100, 50], [0, 0, 1]])
    # the world origin is straight ahead; a point above it (world +z) appears above the centre (smaller v)
    uv, z = project(K, cv, np.array([[0.0, 0, 0], [0, 0, 1], [1, 0, 0]]))
    np.testing.assert_allclose(uv[0], [50, 50])
    assert uv[1, 1] < 50 and abs(uv[1, 0] - 50) < 1e-9
    assert uv[2, 0] > 50 and abs(uv[2, 1] - 50) < 1e-9
    np.testing.assert_allclose(z, 5.0)


def test_transforms_json_hand_made_camera(tmp_path):
    """The same camera through the JSON loader: camera_angle_x gives f, pixel (cx, cy) looks along +y."""
    from PIL import Image

    Image.new("RGB", (40, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (40, 20)).save(tmp_path / "b.png")
    c2w_a = [[1.0, 0, 0, 0], [0, 0, -1, -5], [0, 1, 0, 0], [0, 0, 0, 1]]
    c2w_b = [[-1.0, 0, 0, 0], [0, 0, 1, 5], [0, 1, 0, 0], [0, 0, 0, 1]]  # opposite side, looking along -y
    (tmp_path / "transforms_train.json").write_text(json.dumps({
        "camera_angle_x": 2 * np.arctan(20 / 50.0),
        "frames": [{"file_path": "./a", "transform_matrix": c2w_a}, {"file_path": "b.png", "transform_matrix": c2w_b}],
    }))
    views = load_views(tmp_path)
    cams = views.cameras
    assert (cams.width, cams.height) == (40, 20)
    np.testing.assert_allclose(cams.K[0], [[50, 0, 20], [0, 50, 10], [0, 0, 1]])
    o, d, _ = pixel_rays(cams.K[0], cams.cam_to_world[0], np.array([[20.0, 10.0], [20.0, 0.0]]))
    np.testing.assert_allclose(o[0], [0, -5, 0])
    np.testing.assert_allclose(d[0], [0, 1, 0], atol=1e-12)
    assert d[1, 2] > 0  # the top row of the image looks upwards (+z)
    assert views.mask_paths is None


def test_quaternion_round_trip(rng):
    R = random_rotations(200, rng)
    q = rotation_to_quat(R)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(quat_to_rotation(q), R, atol=1e-12)
    # COLMAP's example: identity quaternion is the identity rotation; 180 deg about z
    np.testing.assert_allclose(quat_to_rotation(np.array([[0.0, 0, 0, 1]]))[0], np.diag([-1.0, -1, 1]), atol=1e-15)


def test_projection_decomposition_round_trip(rng):
    n = 20
    R = random_rotations(n, rng)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = R
    c2w[:, :3, 3] = rng.normal(size=(n, 3)) * 10
    K = np.zeros((n, 3, 3))
    K[:, 0, 0] = rng.uniform(100, 2000, n)
    K[:, 1, 1] = K[:, 0, 0] * rng.uniform(0.9, 1.1, n)
    K[:, 0, 1] = rng.uniform(-1, 1, n)
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = rng.uniform(100, 500, n), rng.uniform(100, 500, n), 1.0
    P = compose_projection(K, c2w) * rng.choice([-3.0, 0.5], size=n)[:, None, None]  # projective scale and sign
    K2, c2w2 = decompose_projection(P)
    np.testing.assert_allclose(K2, K, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(c2w2, c2w, atol=1e-9)


def test_optical_axes_centre_is_the_common_target(rng):
    from recon.render.rig import look_at

    target = np.array([3.0, -2.0, 7.0])
    eyes = target + rng.normal(size=(10, 3)) * 5
    c2w = look_at(eyes, target, np.array([0.0, 0, 1]))
    np.testing.assert_allclose(optical_axes_centre(c2w), target, atol=1e-6)


def test_splits_and_per_frame_intrinsics(tmp_path):
    """transforms_{train,val}.json: default split, 'all', and instant-ngp per-frame overrides."""
    from PIL import Image

    for name in ("a", "b", "c"):
        Image.new("RGB", (40, 20)).save(tmp_path / f"{name}.jpg")
    ring = [[[1.0, 0, 0, 0], [0, 0, -1, -5], [0, 1, 0, 0], [0, 0, 0, 1]],
            [[-1.0, 0, 0, 0], [0, 0, 1, 5], [0, 1, 0, 0], [0, 0, 0, 1]],
            [[0.0, 0, 1, 5], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]]
    top = {"fl_x": 30.0, "fl_y": 31.0, "cx": 19.0, "cy": 11.0, "w": 40, "h": 20, "k1": 0.01}
    (tmp_path / "transforms_train.json").write_text(json.dumps({**top, "frames": [
        {"file_path": "a.jpg", "transform_matrix": ring[0]},
        {"file_path": "b.jpg", "transform_matrix": ring[1], "fl_x": 35.0, "cx": 21.0}]}))
    (tmp_path / "transforms_val.json").write_text(json.dumps({**top, "frames": [
        {"file_path": "c", "transform_matrix": ring[2]}]}))
    train = load_views(tmp_path)
    assert len(train) == 2
    np.testing.assert_allclose(train.cameras.K[0], [[30, 0, 19], [0, 31, 11], [0, 0, 1]])
    np.testing.assert_allclose(train.cameras.K[1], [[35, 0, 21], [0, 31, 11], [0, 0, 1]])
    np.testing.assert_allclose(train.cameras.distortion, [[0.01, 0, 0, 0]] * 2)
    assert len(load_views(tmp_path, split="val")) == 1
    both = load_views(tmp_path, split="all")
    assert [p.split("/")[-1] for p in both.image_paths] == ["a.jpg", "b.jpg", "c.jpg"]
    np.testing.assert_allclose(both.cameras.cam_to_world[2, :3, 3], [5, 0, 0])
