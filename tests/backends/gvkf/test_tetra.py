"""GVKF marching tetrahedra: case table, candidate points, an analytic sphere through
extract_mesh (accuracy, watertightness, orientation, volume), the long-edge filter and the
no-surface errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.backends.gvkf.gaussians import GaussianSet
from recon.backends.gvkf.tetra import (
    CASE_TABLE,
    NoSurfaceError,
    candidate_points,
    extract_mesh,
    long_edge_keep,
    marching_tetrahedra,
)
from recon.errors import ReconError
from recon.meshing.cleanup import mesh_volume
from recon.types import Mesh

RADIUS = 0.5



def sphere_sdf(x: torch.Tensor) -> torch.Tensor:
    return x.norm(dim=1) - RADIUS


def jittered_gaussians(spacing: float = 0.1, extent: float = 0.7, seed: int = 0) -> GaussianSet:
    """Randomly rotated Gaussians (std 0.4 spacing) on a jittered grid filling [-extent, extent]^3."""
    rng = np.random.default_rng(seed)
    axis = np.arange(-extent, extent + 1e-9, spacing)
    c = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    c = c + rng.uniform(-0.3 * spacing, 0.3 * spacing, c.shape)
    return GaussianSet.from_values(c, np.full(len(c), 0.4 * spacing), rng.normal(size=(len(c), 4)), 0.9)


@pytest.fixture(scope="module")
def gaussians() -> GaussianSet:
    return jittered_gaussians()


@pytest.fixture(scope="module")
def sphere_mesh(gaussians) -> tuple[np.ndarray, np.ndarray]:
    return extract_mesh(sphere_sdf, gaussians, bisection_steps=3, filter_long_edges=False)


def edge_use_counts(faces: np.ndarray, directed: bool) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    if not directed:
        e = np.sort(e, axis=1)
    return np.unique(e[:, 0] * (faces.max() + 1) + e[:, 1], return_counts=True)[1]


def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    return mesh_volume(Mesh(v.astype(np.float64), np.asarray(f, np.int64)))


def test_case_table_single_tetra_every_case_both_orientations():
    """Each of the 14 mixed cases on a random tetra of either orientation: vertices on the
    zero level of the linear interpolant, normals along its gradient, 1 or 2 triangles."""
    rng = np.random.default_rng(0)
    for case in range(1, 15):
        for flip in (False, True):
            pts = rng.normal(size=(4, 3))
            if (np.linalg.det(pts[1:] - pts[0]) < 0) != flip:
                pts[[1, 2]] = pts[[2, 1]]
            inside = np.array([(case >> k) & 1 for k in range(4)], bool)
            vals = np.where(inside, -rng.uniform(0.1, 1, 4), rng.uniform(0.1, 1, 4))
            v, f, e = marching_tetrahedra(pts, np.array([[0, 1, 2, 3]]), vals)
            n_in = inside.sum()
            assert f.shape == ((2, 3) if n_in == 2 else (1, 3))
            assert v.shape[0] == (4 if n_in == 2 else 3) and e.shape == (v.shape[0], 2)
            # linear interpolant: values = pts @ grad + c
            A = np.c_[pts, np.ones(4)]
            grad_c = np.linalg.solve(A, vals)
            np.testing.assert_allclose(np.c_[v, np.ones(len(v))] @ grad_c, 0.0, atol=1e-9)
            normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
            assert (normals @ grad_c[:3] > 0).all()
    assert (CASE_TABLE[0] == -1).all() and (CASE_TABLE[15] == -1).all()


def test_candidate_points_are_centre_and_box_corners():
    rng = np.random.default_rng(1)
    g = GaussianSet.from_values(rng.normal(size=(5, 3)), np.exp(rng.normal(size=(5, 3)) - 2),
                                rng.normal(size=(5, 4)))
    pts, owner = candidate_points(g, sigma=2.5)
    assert pts.shape == (45, 3) and owner.tolist() == sum([[i] * 9 for i in range(5)], [])
    torch.testing.assert_close(pts[::9], g.means)
    # in each Gaussian's scaled local frame the corners are exactly (+-sigma, +-sigma, +-sigma)
    local = torch.einsum("nji,nkj->nki", g.rotations(), pts.reshape(5, 9, 3)[:, 1:] - g.means[:, None])
    local = local / g.scales()[:, None, :]
    torch.testing.assert_close(local.abs(), torch.full_like(local, 2.5), atol=1e-4, rtol=0)
    assert len({tuple(r) for r in torch.sign(local).reshape(-1, 3).int().tolist()}) == 8


def test_marching_tetrahedra_independent_of_tetra_vertex_order():
    """Shuffling each tetra's vertex order (which flips half their orientations and breaks
    Qhull's consistent vertex ordering) must give the same watertight, outward surface."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(2)
    pts = rng.uniform(-1, 1, (3000, 3))
    tets = Delaunay(pts).simplices
    values = np.linalg.norm(pts, axis=1) - 0.6
    v, f, e = marching_tetrahedra(pts, tets, values)
    perm = np.argsort(rng.random(tets.shape), axis=1)
    v2, f2, e2 = marching_tetrahedra(pts, np.take_along_axis(tets, perm, 1), values)
    np.testing.assert_array_equal(e2, e)
    np.testing.assert_allclose(v2, v)
    assert (edge_use_counts(f2, directed=True) == 1).all() and (edge_use_counts(f2, directed=False) == 2).all()
    assert signed_volume(v2, f2) > 0.8 * 4 / 3 * math.pi * 0.6 ** 3
    assert (e[:, 0] < e[:, 1]).all()
    assert ((values[e[:, 0]] < 0) != (values[e[:, 1]] < 0)).all()


def test_sphere_vertices_on_surface_after_bisection(gaussians):
    v0, _ = extract_mesh(sphere_sdf, gaussians, bisection_steps=0, filter_long_edges=False)
    v3, _ = extract_mesh(sphere_sdf, gaussians, bisection_steps=3, filter_long_edges=False)
    err0 = np.abs(np.linalg.norm(v0, axis=1) - RADIUS).max()
    err3 = np.abs(np.linalg.norm(v3, axis=1) - RADIUS).max()
    assert err3 < 5e-4 and err3 < err0 / 8


def test_sphere_mesh_watertight_and_outward(sphere_mesh):
    v, f = sphere_mesh
    assert v.dtype == np.float32 and f.dtype == np.int64 and f.shape[0] > 5000
    assert (edge_use_counts(f, directed=False) == 2).all()        # watertight, manifold edges
    assert (edge_use_counts(f, directed=True) == 1).all()         # consistently oriented
    assert np.unique(f).size == v.shape[0]                        # no unreferenced vertices
    vol = signed_volume(v, f)
    assert abs(vol / (4 / 3 * math.pi * RADIUS ** 3) - 1) < 0.02  # positive: outward normals


def test_long_edge_filter_keeps_sphere_and_drops_planted_triangle(gaussians, sphere_mesh):
    v, f = sphere_mesh
    filtered_v, filtered_f = extract_mesh(sphere_sdf, gaussians, bisection_steps=3, filter_long_edges=True)
    assert filtered_f.shape == f.shape and np.array_equal(filtered_f, f)
    np.testing.assert_array_equal(filtered_v, v)
    # plant a triangle across the sphere between three far-apart mesh vertices
    far = [int(np.argmax(v[:, 0])), int(np.argmin(v[:, 0])), int(np.argmax(v[:, 1]))]
    faces = np.vstack([f, [far]])
    reach = np.full(v.shape[0], 3 * 0.4 * 0.1)
    keep = long_edge_keep(v, faces, reach)
    assert not keep[-1] and keep[:-1].all()
    # and the threshold is the sum of the endpoint reaches: a triangle with edges just below it stays
    tri = np.array([[0.0, 0, 0], [0.2, 0, 0], [0.1, 0.17, 0]])
    assert long_edge_keep(tri, np.array([[0, 1, 2]]), np.full(3, 0.1001))[0]
    assert not long_edge_keep(tri, np.array([[0, 1, 2]]), np.full(3, 0.0999))[0]


def test_bounds_crop_the_candidate_points(gaussians):
    lo, hi = np.array([-1.0, -1.0, 0.0]), np.array([1.0, 1.0, 1.0])
    v, f = extract_mesh(sphere_sdf, gaussians, bounds=(lo, hi))
    assert (v[:, 2] >= -1e-6).all() and v[:, 2].max() > 0.45
    assert f.shape[0] > 1000


def test_no_sign_change_raises_clear_error(gaussians):
    with pytest.raises(NoSurfaceError, match=r"^no surface: .*does not change sign.*all inside") as info:
        extract_mesh(lambda x: x.norm(dim=1) - 10.0, gaussians)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ReconError)
    with pytest.raises(ValueError, match=r"^no surface: .*all outside"):
        extract_mesh(lambda x: x.norm(dim=1) + 1.0, gaussians)


def test_no_gaussians_raises_clear_error():
    empty = GaussianSet.from_values(np.zeros((0, 3)), np.zeros((0, 3)) + 0.1)
    with pytest.raises(ValueError, match=r"^no surface: there are no Gaussians"):
        extract_mesh(sphere_sdf, empty)
