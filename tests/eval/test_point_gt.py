"""recon.eval.point_gt: a mesh scored against a ground-truth point cloud, on spheres with known offsets."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from recon.errors import InputError
from recon.eval import evaluate_mesh_against_points, evaluate_meshes
from recon.types import Mesh


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=5, radius=1.0))


@pytest.fixture(scope="module")
def scan() -> tuple[np.ndarray, np.ndarray]:
    """200k uniform points on the unit sphere and their (exact) normals."""
    v = np.random.default_rng(7).normal(size=(200_000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, v.copy()


def test_offset_sphere_against_a_cloud_matches_the_mesh_protocol(sphere, scan):
    pred = Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=5, radius=1.02))
    pts, nrm = scan
    m = evaluate_mesh_against_points(pred, pts, nrm, n_samples=200_000, tau=[0.005, 0.02])
    ref = evaluate_meshes(pred, sphere, n_samples=200_000, tau=[0.005, 0.02])
    assert m.chamfer_l1 == pytest.approx(0.02, rel=0.03)
    assert m.chamfer_l1 == pytest.approx(ref.chamfer_l1, rel=0.02)
    assert m.fscore[0] == 0.0 and m.fscore[1] > 0.999  # 0.01 and 0.04 world units around an offset of 0.02
    assert m.normal_consistency > 0.999 and m.gt_scale == pytest.approx(2.0, abs=1e-3)
    assert m.extra == {"gt_kind": "point cloud", "gt_points": 200_000}


def test_no_normals_means_no_normal_consistency(sphere, scan):
    m = evaluate_mesh_against_points(sphere, scan[0], None, n_samples=50_000)
    assert m.normal_consistency is None and m.to_dict()["normal_consistency"] is None
    assert m.chamfer_l1 < 0.01 and m.f_at(0.01) > 0.99


def test_large_cloud_is_subset_to_n_samples_reproducibly(sphere, scan):
    a = evaluate_mesh_against_points(sphere, scan[0], n_samples=20_000, seed=3)
    b = evaluate_mesh_against_points(sphere, scan[0], n_samples=20_000, seed=3)
    c = evaluate_mesh_against_points(sphere, scan[0], n_samples=20_000, seed=4)
    assert a.extra["gt_points"] == 20_000 and a.to_dict() == b.to_dict()
    assert a.chamfer_l1 != c.chamfer_l1


def test_normals_that_point_elsewhere_lower_the_consistency(sphere, scan):
    pts, nrm = scan
    tangent = np.cross(nrm, np.array([0.0, 0.0, 1.0]))
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    m = evaluate_mesh_against_points(sphere, pts, tangent, n_samples=50_000)
    assert m.normal_consistency < 0.1


def test_empty_prediction_and_bad_clouds(sphere, scan):
    empty = Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    m = evaluate_mesh_against_points(empty, scan[0], tau=[0.01, 0.02])
    assert np.isinf(m.chamfer_l1) and m.fscore == (0.0, 0.0) and m.normal_consistency is None
    with pytest.raises(InputError):
        evaluate_mesh_against_points(sphere, np.zeros((0, 3)))
    with pytest.raises(InputError):
        evaluate_mesh_against_points(sphere, np.ones((10, 3)))
    with pytest.raises(InputError):
        evaluate_mesh_against_points(sphere, np.full((10, 3), np.nan))
    with pytest.raises(InputError):
        evaluate_mesh_against_points(sphere, scan[0], scan[1][:5])
    with pytest.raises(InputError):
        evaluate_mesh_against_points(sphere, scan[0], tau=0.0)
