"""Normal orientation: MST propagation with outward vote, sensor orientation."""

from __future__ import annotations

import numpy as np
import pytest

from recon.errors import InputError
from recon.normals import estimate_normals
from recon.normals.orient import _propagate_parity, orient_mst, orient_towards_sensor
from tests.normals.helpers import fibonacci_sphere


def test_parity_by_pointer_jumping_matches_sequential(rng):
    n = 1000
    parent = np.r_[0, np.arange(n - 1)]  # a path 0 <- 1 <- 2 ...: the deepest tree
    flip = rng.random(n) < 0.3
    flip[0] = False
    expect = np.bitwise_xor.accumulate(flip)
    np.testing.assert_array_equal(_propagate_parity(parent, flip), expect)
    # a random tree: parent index smaller than child
    parent = np.r_[0, (rng.random(n - 1) * np.arange(1, n)).astype(np.int64)]
    ref = np.zeros(n, dtype=bool)
    for i in range(1, n):  # reference only (test code)
        ref[i] = ref[parent[i]] ^ flip[i]
    np.testing.assert_array_equal(_propagate_parity(parent, flip), ref)


def test_sphere_outward_from_random_signs(rng):
    pts = fibonacci_sphere(5000)
    signs = np.where(rng.random(5000) < 0.5, -1.0, 1.0)
    n = orient_mst(pts, pts * signs[:, None])
    assert np.all(np.einsum("ij,ij->i", n, pts) > 0)


def test_two_spheres_outward(rng):
    a = fibonacci_sphere(4000, 0.5)
    b = fibonacci_sphere(3000, 0.3) + [3.0, 1.0, 0.0]
    pts = np.concatenate([a, b])
    centres = np.r_[np.zeros((4000, 3)), np.tile([3.0, 1.0, 0.0], (3000, 1))]
    n, labels = orient_mst(pts, estimate_normals(pts, orient="none"), return_labels=True)
    assert len(np.unique(labels)) == 2
    assert np.all(np.einsum("ij,ij->i", n, pts - centres) > 0)
    n2 = estimate_normals(pts)  # default pipeline: pca + mst
    assert np.all(np.einsum("ij,ij->i", n2, pts - centres) > 0)


def test_open_hemisphere_and_torus_outward():
    s = fibonacci_sphere(6000)
    dome = s[s[:, 2] > 0.1]
    n = estimate_normals(dome)
    assert np.mean(np.einsum("ij,ij->i", n, dome) > 0) == 1.0
    # torus R=1, r=0.3: outward = away from the tube's centre circle
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 200, endpoint=False), np.linspace(0, 2 * np.pi, 60, endpoint=False))
    u, v = u.ravel(), v.ravel()
    pts = np.stack([(1 + 0.3 * np.cos(v)) * np.cos(u), (1 + 0.3 * np.cos(v)) * np.sin(u), 0.3 * np.sin(v)], 1)
    ring = np.stack([np.cos(u), np.sin(u), np.zeros_like(u)], 1)
    n = estimate_normals(pts)
    assert np.mean(np.einsum("ij,ij->i", n, pts - ring) > 0) == 1.0


def test_sensor_orientation(rng):
    pts = np.c_[rng.uniform(-1, 1, size=(2000, 2)), 0.01 * rng.normal(size=2000)]
    n = estimate_normals(pts, orient="sensor", sensor=np.array([0.2, 0.1, 5.0]))
    assert np.all(n[:, 2] > 0)
    below = np.tile([0.0, 0.0, -5.0], (2000, 1))  # per-point sensors
    n2 = orient_towards_sensor(pts, n, below)
    assert np.all(n2[:, 2] < 0) and n2.dtype == np.float32
    # mst with a sensor: the per-component sign follows the sensor
    n3 = estimate_normals(pts, orient="mst", sensor=np.array([0.0, 0.0, -3.0]))
    assert np.mean(n3[:, 2] < 0) > 0.99
    with pytest.raises(InputError):
        orient_towards_sensor(pts, n, np.zeros(2))


def test_flat_patch_faces_up_without_sensor(rng):
    pts = np.c_[rng.uniform(-1, 1, size=(1000, 2)), np.zeros(1000)]
    n = estimate_normals(pts)
    assert np.all(n[:, 2] > 0.999)


def test_per_point_sensors_follow_their_points(rng):
    # estimate_normals reorders points internally; per-point sensors must stay attached
    pts = np.c_[rng.uniform(-1, 1, size=(3000, 2)), np.zeros(3000)]
    above = pts[:, 0] > 0
    sensors = np.where(above[:, None], [0.0, 0.0, 4.0], [0.0, 0.0, -4.0]) + pts * [1, 1, 0]
    n = estimate_normals(pts, orient="sensor", sensor=sensors)
    assert np.all(n[above, 2] > 0.99) and np.all(n[~above, 2] < -0.99)
