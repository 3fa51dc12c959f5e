"""Trimming, component removal and topology checks."""

from __future__ import annotations

import numpy as np
from tests.meshing.meshing_fields import band_cells, grid_cells, sphere_sdf

from recon.meshing import (
    boundary_edge_count,
    face_components,
    is_watertight,
    remove_small_components,
    remove_unreferenced_vertices,
    sparse_marching_mesh,
    trim_far_faces,
)
from recon.types import Mesh

ORIGIN = np.array([-1.0, -1.0, -1.0])


def two_blobs() -> tuple[Mesh, Mesh]:
    """(both, big): a sphere of radius 0.5 and a far sphere of radius 0.2, one mesh."""
    far = np.array([3.0, 0.0, 0.0])

    def f(x):
        return np.minimum(sphere_sdf(x), sphere_sdf(x, far, 0.2))

    grid = grid_cells(0, 20)
    grid = np.concatenate([grid, grid + [30, 0, 0]])
    cells = grid[np.abs(f(ORIGIN + (grid + 0.5) * 0.1)) < 0.15]
    both = sparse_marching_mesh(f, cells, ORIGIN, 0.1)
    big = sparse_marching_mesh(sphere_sdf, band_cells(sphere_sdf, ORIGIN, 0.1, 0, 20, 1.5), ORIGIN, 0.1)
    return both, big


def test_components_and_small_component_removal():
    both, big = two_blobs()
    n, labels = face_components(both)
    assert n == 2
    sizes = np.sort(np.bincount(labels))
    assert sizes[1] == big.n_faces and sizes[0] < sizes[1]
    kept = remove_small_components(both, min_faces=sizes[0] + 1)
    assert kept.n_faces == big.n_faces and kept.n_vertices == big.n_vertices
    np.testing.assert_allclose(np.sort(kept.vertices, axis=0), np.sort(big.vertices, axis=0))
    assert is_watertight(kept)
    largest = remove_small_components(both, keep_largest=True)
    assert largest.n_faces == big.n_faces
    assert remove_small_components(both, min_faces=sizes[0]).n_faces == both.n_faces
    assert remove_small_components(both, min_faces=10**9).n_faces == 0


def test_trim_removes_far_blob():
    both, big = two_blobs()
    rng = np.random.default_rng(3)
    d = rng.normal(size=(20000, 3))
    pts = np.array([0.13, -0.07, 0.21]) + 0.5 * d / np.linalg.norm(d, axis=1, keepdims=True)
    out = trim_far_faces(both, pts, max_distance=0.05)
    assert out.n_faces == big.n_faces
    assert is_watertight(out)
    assert np.all(out.vertices[:, 0] < 1.0)
    # a tighter distance than the vertex-to-sample spacing cuts holes
    tight = trim_far_faces(both, pts, max_distance=0.005)
    assert 0 < tight.n_faces < big.n_faces and boundary_edge_count(tight) > 0
    assert trim_far_faces(both, np.zeros((0, 3)), 1.0).n_faces == 0


def test_trim_keeps_vertex_attributes_aligned():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], float)
    colors = np.arange(12, dtype=np.float32).reshape(4, 3) / 12
    m = Mesh(v, np.array([[0, 1, 2], [1, 3, 2]]), vertex_colors=colors)
    out = trim_far_faces(m, v[:3], 0.1)
    np.testing.assert_array_equal(out.faces, [[0, 1, 2]])
    np.testing.assert_array_equal(out.vertex_colors, colors[:3])


def test_unreferenced_and_boundary_counts():
    v = np.array([[0, 0, 0], [9, 9, 9], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)
    m = Mesh(v, np.array([[0, 2, 3], [2, 4, 3]]))
    assert boundary_edge_count(m) == 4 and not is_watertight(m)
    r = remove_unreferenced_vertices(m)
    assert r.n_vertices == 4
    np.testing.assert_array_equal(r.faces, [[0, 1, 2], [1, 3, 2]])
    np.testing.assert_array_equal(r.vertices[3], [1, 1, 0])
    tet = Mesh(np.eye(4)[:, :3], np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]))
    assert boundary_edge_count(tet) == 0 and is_watertight(tet)
    assert not is_watertight(Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64)))
