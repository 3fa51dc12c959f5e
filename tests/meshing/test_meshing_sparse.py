"""Sparse marching cubes against analytic fields and the dense reference."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tests.meshing.meshing_fields import (
    CENTRE,
    RADIUS,
    band_cells,
    chamfer,
    grid_cells,
    max_nn,
    sphere_sdf,
    torus_sdf,
)

from recon.meshing import (
    boundary_edge_count,
    dense_marching_cubes,
    euler_characteristic,
    face_components,
    is_watertight,
    mesh_field_dense,
    mesh_volume,
    sparse_marching_mesh,
)

H = 0.05
ORIGIN = np.array([-1.0, -1.0, -1.0])  # lattice index 0..40 covers [-1, 1]
SPHERE_VOLUME = 4.0 / 3.0 * np.pi * RADIUS**3


def interp_bound(h: float, r: float = RADIUS) -> float:
    """Largest |f| at a linearly interpolated zero of a sphere SDF on an edge of length h.

    Along a line, |f''| <= 1 / rho with rho >= r - h on an edge the surface crosses, and
    linear interpolation misplaces the root by at most h^2/8 * max|f''| in value.
    """
    return h * h / (8.0 * (r - h))


def dense_grid(sdf, origin: np.ndarray, h: float, n: int) -> np.ndarray:
    g = grid_cells(0, n + 1)
    return sdf(origin + g * h).reshape(n + 1, n + 1, n + 1)


@pytest.fixture(scope="module")
def dense_sphere():
    return dense_marching_cubes(dense_grid(sphere_sdf, ORIGIN, H, 40), ORIGIN, H)


@pytest.fixture(scope="module")
def sparse_sphere():
    cells = band_cells(sphere_sdf, ORIGIN, H, 0, 40, 2.0)
    return sparse_marching_mesh(sphere_sdf, cells, ORIGIN, H)


def test_dense_sphere_on_surface_closed_outward(dense_sphere):
    m = dense_sphere
    radial = np.abs(np.linalg.norm(m.vertices - CENTRE, axis=1) - RADIUS)
    assert radial.max() < interp_bound(H)  # 6.9e-4 here
    assert is_watertight(m) and euler_characteristic(m) == 2
    vol = mesh_volume(m)
    assert vol > 0 and abs(vol / SPHERE_VOLUME - 1) < 0.01


def test_sparse_sphere_matches_analytic_and_dense(sparse_sphere, dense_sphere):
    m = sparse_sphere
    assert m.vertices.dtype == np.float64 and m.faces.dtype == np.int64
    radial = np.abs(np.linalg.norm(m.vertices - CENTRE, axis=1) - RADIUS)
    assert radial.max() < interp_bound(H)
    assert boundary_edge_count(m) == 0 and is_watertight(m)
    assert euler_characteristic(m) == 2
    vol = mesh_volume(m)
    assert vol > 0 and abs(vol / SPHERE_VOLUME - 1) < 0.01
    assert chamfer(m.vertices, dense_sphere.vertices) < 0.1 * H
    # no duplicated vertices
    assert np.unique(m.vertices, axis=0).shape[0] == m.n_vertices


def test_sparse_equals_dense_vertex_for_vertex(sparse_sphere, dense_sphere):
    """Same field, same lattice, same interpolation: identical vertex sets (to 1e-9)."""
    assert sparse_sphere.n_vertices == dense_sphere.n_vertices
    assert max_nn(sparse_sphere.vertices, dense_sphere.vertices) < 1e-9
    assert max_nn(dense_sphere.vertices, sparse_sphere.vertices) < 1e-9


def test_mise_reaches_fine_resolution_with_few_evaluations():
    calls = []

    def f(x):
        calls.append(x.shape[0])
        return sphere_sdf(x)

    h0 = 4 * H
    cells = grid_cells(0, 10)  # the whole [-1, 1]^3 box at the coarse size
    m = sparse_marching_mesh(f, cells, ORIGIN, h0, mise_iter=2, batch_size=5000)
    assert max(calls) <= 5000
    n_eval = sum(calls)
    dense_points = 41**3
    assert n_eval < 0.25 * dense_points  # 11857 of 68921 here
    assert is_watertight(m) and euler_characteristic(m) == 2
    radial = np.abs(np.linalg.norm(m.vertices - CENTRE, axis=1) - RADIUS)
    assert radial.max() < interp_bound(H)
    fine = mesh_field_dense(sphere_sdf, np.array([ORIGIN, ORIGIN + 2.0]), 40)
    assert max_nn(m.vertices, fine.vertices) < 1e-9 and max_nn(fine.vertices, m.vertices) < 1e-9
    coarse = mesh_field_dense(sphere_sdf, np.array([ORIGIN, ORIGIN + 2.0]), 10)
    coarse_err = np.abs(np.linalg.norm(coarse.vertices - CENTRE, axis=1) - RADIUS).max()
    assert radial.max() < 0.2 * coarse_err


def test_mise_keeps_small_and_bumpy_shapes_closed():
    """Coarse cells larger than the features: the band and the closure keep them."""
    rng = np.random.default_rng(7)
    cells = grid_cells(0, 8)
    for _ in range(8):
        c = rng.uniform(-0.2, 0.2, 3)
        r = rng.uniform(0.15, 0.5)
        a = rng.uniform(0.02, 0.08)

        def f(x, c=c, r=r, a=a):
            return np.linalg.norm(x - c, axis=1) - r - a * np.sin(9 * x[:, 0]) * np.sin(7 * x[:, 1])

        m = sparse_marching_mesh(f, cells, ORIGIN, 0.25, mise_iter=2)
        ref = mesh_field_dense(f, np.array([ORIGIN, ORIGIN + 2.0]), 32)
        assert is_watertight(m)
        assert m.n_vertices == ref.n_vertices and max_nn(m.vertices, ref.vertices) < 1e-9


def test_torus_has_genus_one():
    cells = band_cells(torus_sdf, ORIGIN, 0.04, -5, 55, 2.0)
    m = sparse_marching_mesh(torus_sdf, cells, ORIGIN, 0.04)
    assert is_watertight(m)
    assert euler_characteristic(m) == 0
    assert face_components(m)[0] == 1
    vol = mesh_volume(m)
    exact = 2 * np.pi**2 * 0.5 * 0.2**2
    assert vol > 0 and abs(vol / exact - 1) < 0.02


def test_plane_band_gives_open_sheet_bounded_by_the_band():
    n = np.array([0.1, -0.2, 1.0])
    n /= np.linalg.norm(n)

    def plane(x):
        return x @ n - 0.013

    h = 0.05
    cells = grid_cells(-10, 10)
    centre = (cells + 0.5) * h
    cells = cells[np.abs(plane(centre)) < 1.5 * h]
    m = sparse_marching_mesh(plane, cells, np.zeros(3), h)
    assert m.n_faces > 500
    assert np.abs(plane(m.vertices)).max() < 1e-12  # linear field: exact vertices
    assert euler_characteristic(m) == 1  # a disk
    f = m.faces
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e.sort(axis=1)
    u, cnt = np.unique(e, axis=0, return_counts=True)
    assert cnt.max() == 2
    bverts = m.vertices[np.unique(u[cnt == 1])]
    assert bverts.shape[0] > 50
    on_side = np.isclose(np.abs(bverts[:, :2]), 10 * h, atol=1e-12).any(axis=1)
    assert on_side.all()  # the boundary lies on the outside of the band's box
    normals = np.cross(m.vertices[f[:, 1]] - m.vertices[f[:, 0]], m.vertices[f[:, 2]] - m.vertices[f[:, 0]])
    assert np.all(normals @ n > 0)  # all faces towards increasing values


def test_no_sign_change_gives_empty_mesh():
    cells = grid_cells(0, 6)
    m = sparse_marching_mesh(lambda x: sphere_sdf(x) + 5.0, cells, ORIGIN, H, mise_iter=2)
    assert m.n_faces == 0 and m.n_vertices == 0
    m = sparse_marching_mesh(lambda x: np.full(x.shape[0], -1.0), cells, ORIGIN, H)
    assert m.is_empty()
    assert sparse_marching_mesh(sphere_sdf, np.zeros((0, 3), np.int64), ORIGIN, H).is_empty()
    assert dense_marching_cubes(np.ones((4, 4, 4)), ORIGIN, H).is_empty()


def test_duplicated_and_shuffled_cells_give_identical_mesh(rng):
    cells = band_cells(sphere_sdf, ORIGIN, 0.1, 0, 20, 1.5)
    a = sparse_marching_mesh(sphere_sdf, cells, ORIGIN, 0.1)
    dup = np.concatenate([cells, cells[::3], cells])
    dup = dup[rng.permutation(dup.shape[0])]
    b = sparse_marching_mesh(sphere_sdf, dup, ORIGIN, 0.1)
    assert a.n_faces > 0
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)


def test_upsample_equals_finer_cells():
    coarse = band_cells(sphere_sdf, ORIGIN, 0.2, 0, 10, 1.5)
    a = sparse_marching_mesh(sphere_sdf, coarse, ORIGIN, 0.2, upsample=2)
    sub = (coarse[:, None, :] * 2 + grid_cells(0, 2)[None]).reshape(-1, 3)
    b = sparse_marching_mesh(sphere_sdf, sub, ORIGIN, 0.1)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-12)
    np.testing.assert_array_equal(a.faces, b.faces)


@pytest.mark.parametrize(
    "field",
    [
        lambda x: np.linalg.norm(x, axis=1) - 0.5,  # hits lattice points exactly
        lambda x: np.abs(x).max(axis=1) - 0.5,  # faces exactly on lattice planes
        lambda x: np.round((np.linalg.norm(x, axis=1) - 0.5) * 20) / 20,  # many exact zeros
    ],
)
def test_values_exactly_at_level_merge_without_holes(field):
    m = sparse_marching_mesh(field, grid_cells(-14, 14), np.zeros(3), 0.05)
    assert is_watertight(m) and euler_characteristic(m) == 2
    assert np.unique(m.vertices, axis=0).shape[0] == m.n_vertices
    v = m.vertices
    area = np.linalg.norm(np.cross(v[m.faces[:, 1]] - v[m.faces[:, 0]], v[m.faces[:, 2]] - v[m.faces[:, 0]]), axis=1)
    assert area.min() > 0
    assert mesh_volume(m) > 0


def test_georeferenced_coordinates_keep_precision():
    far = np.array([512345.0, 4.2e6, 312.0])

    def f(x):
        return sphere_sdf(x, far + CENTRE)

    cells = band_cells(f, far - 1.0, H, 0, 40, 2.0)
    m = sparse_marching_mesh(f, cells, far - 1.0, H)
    radial = np.abs(np.linalg.norm(m.vertices - far - CENTRE, axis=1) - RADIUS)
    assert is_watertight(m)
    assert radial.max() < interp_bound(H) + 1e-6


def test_torch_result_and_bad_arguments():
    torch = pytest.importorskip("torch")
    cells = band_cells(sphere_sdf, ORIGIN, 0.1, 0, 20, 1.5)
    a = sparse_marching_mesh(lambda x: torch.from_numpy(sphere_sdf(x)), cells, ORIGIN, 0.1)
    b = sparse_marching_mesh(sphere_sdf, cells, ORIGIN, 0.1)
    np.testing.assert_array_equal(a.faces, b.faces)
    with pytest.raises(ValueError):
        sparse_marching_mesh(sphere_sdf, cells, ORIGIN, 0.0)
    with pytest.raises(ValueError):
        sparse_marching_mesh(sphere_sdf, cells, ORIGIN, 0.1, upsample=0)
    with pytest.raises(ValueError):
        sparse_marching_mesh(lambda x: sphere_sdf(x)[:-1], cells, ORIGIN, 0.1)


@pytest.mark.slow
def test_speed_300k_cells():
    h = 1.0
    big = 120.0

    def f(x):
        return np.linalg.norm(x - 0.3, axis=1) - big

    cells = band_cells(f, np.zeros(3), h, -125, 125, 1.0)
    assert cells.shape[0] > 250_000
    spent = [0.0]

    def timed(x):
        t = time.perf_counter()
        v = f(x)
        spent[0] += time.perf_counter() - t
        return v

    t0 = time.perf_counter()
    m = sparse_marching_mesh(timed, cells, np.zeros(3), h)
    elapsed = time.perf_counter() - t0 - spent[0]
    assert is_watertight(m)
    assert elapsed < 5.0, f"{cells.shape[0] / elapsed:.0f} cells/s"
