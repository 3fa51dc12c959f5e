"""Normal orientation: MST propagation with outward vote, sensor orientation."""

from __future__ import annotations

import numpy as np
import pytest

from recon.errors import InputError
from recon.normals import estimate_normals
from recon.normals.orient import _propagate_parity, orient_mst, orient_towards_sensor
from recon.normals.visibility import (INSIDE, OCCUPIED, OUTSIDE, SideGrid, build_side_grid, first_free_state,
                                      side_votes)
from recon.ops.knn import knn
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


def _box_surface(rng, size: tuple[float, float, float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) area-uniform samples of an axis-aligned box's surface (centred) and (n, 3) outward normals."""
    sx, sy, sz = size
    areas = np.array([sy * sz, sy * sz, sx * sz, sx * sz, sx * sy, sx * sy])
    face = rng.choice(6, size=n, p=areas / areas.sum())
    p = (rng.random((n, 3)) - 0.5) * np.array(size)
    axis, sign = face // 2, np.where(face % 2 == 0, 1.0, -1.0)
    p[np.arange(n), axis] = sign * 0.5 * np.array(size)[axis]
    nrm = np.zeros((n, 3))
    nrm[np.arange(n), axis] = sign
    return p, nrm


def test_thin_plate_outward(rng):
    # a tray-like plate: 4 x 0.25 x 4, joined top/bottom only through sharp 90-degree rims;
    # PCA neighbourhoods (k=20) reach across it, so plain MST propagation inverts one face
    p, gt = _box_surface(rng, (4.0, 0.25, 4.0), 40000)
    n = estimate_normals(p)
    assert np.mean(np.einsum("ij,ij->i", n, gt) > 0) >= 0.99


def test_two_thin_parallel_sheets_face_up(rng):
    # two open squares 0.04 apart (about two point spacings): open, so both keep facing +z
    a = np.c_[rng.uniform(-1, 1, size=(3000, 2)), np.zeros(3000)]
    b = np.c_[rng.uniform(-1, 1, size=(3000, 2)), np.full(3000, 0.04)]
    n = estimate_normals(np.concatenate([a, b]))
    assert np.mean(n[:, 2] > 0) >= 0.99


def test_noisy_sphere_outward(rng):
    pts = fibonacci_sphere(20000)
    noisy = pts + 0.01 * rng.normal(size=pts.shape)  # sigma 0.5 % of the diameter
    n = estimate_normals(noisy)
    assert np.mean(np.einsum("ij,ij->i", n, pts) > 0) >= 0.995


def test_side_votes_on_sphere_and_plane(rng):
    pts = fibonacci_sphere(5000)
    signs = np.where(rng.random(5000) < 0.5, -1.0, 1.0)
    _, idx = knn(pts, 11)
    radius = np.linalg.norm(pts[idx[:, -1]] - pts, axis=1)
    v = side_votes(pts, pts * signs[:, None], radius)
    sure = v != 0
    assert sure.mean() > 0.95 and np.all(v[sure] == signs[sure])
    plane = np.c_[rng.uniform(-1, 1, size=(2000, 2)), np.zeros(2000)]
    up = np.tile([0.0, 0.0, 1.0], (2000, 1))
    assert np.all(side_votes(plane, up, np.full(2000, 0.1)) == 0)  # open: both sides outside


def _first_free_reference(grid: SideGrid, p: np.ndarray, d: np.ndarray, steps: int, step: float) -> np.ndarray:
    """Slow reference: walk each probe sample by sample."""
    out = np.full(len(p), OCCUPIED, dtype=np.int8)
    for i in range(len(p)):
        for j in range(1, steps + 1):
            q = p[i] + j * step * grid.h * d[i]
            ijk = np.floor((q - grid.origin) / grid.h).astype(int)
            if np.any(ijk < 0) or np.any(ijk >= grid.state.shape):
                out[i] = OUTSIDE
                break
            s = grid.state[tuple(ijk)]
            if s != OCCUPIED:
                out[i] = s
                break
    return out


def test_first_free_state_matches_reference(rng):
    state = rng.choice([OCCUPIED, OUTSIDE, INSIDE], size=(6, 5, 7), p=[0.6, 0.2, 0.2]).astype(np.int8)
    grid = SideGrid(origin=np.array([-0.3, 0.1, 0.0]), h=0.25, state=state)
    p = grid.origin + rng.random((500, 3)) * np.array(state.shape) * grid.h
    d = rng.normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    fast = first_free_state(grid, p, d, steps=9, step=0.5)
    np.testing.assert_array_equal(fast, _first_free_reference(grid, p, d, 9, 0.5))
    assert len(np.unique(fast)) == 3  # all three outcomes exercised


def test_build_side_grid_labels_hollow_cube():
    # a closed cube surface: its interior is INSIDE, its exterior OUTSIDE
    g = np.linspace(-1, 1, 41)
    u, v = [a.ravel() for a in np.meshgrid(g, g)]
    faces = [np.c_[np.full_like(u, s), u, v][:, np.roll([0, 1, 2], ax)] for ax in range(3) for s in (-1.0, 1.0)]
    p = np.concatenate(faces)
    nrm = np.zeros_like(p)
    nrm[np.arange(len(p)), np.argmax(np.abs(p), axis=1)] = 1.0
    grid = build_side_grid(p, nrm, np.full(len(p), 0.1), voxel_per_radius=1.0)
    ijk = np.floor((np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0]]) - grid.origin) / grid.h).astype(int)
    assert grid.state[tuple(ijk[0])] == INSIDE and grid.state[tuple(ijk[1])] == OUTSIDE
