"""recon.eval.metrics on spheres with known offsets."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from recon.errors import InputError
from recon.eval.metrics import evaluate_meshes
from recon.types import Mesh


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=5, radius=1.0))


@pytest.fixture(scope="module")
def sphere102() -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=5, radius=1.02))


def test_offset_sphere_chamfer(sphere, sphere102):
    # 300k samples keep the sampling bias (~E[d_tangential^2] / 2 / 0.02) under 2 %
    m = evaluate_meshes(sphere102, sphere, n_samples=300_000)
    assert m.chamfer_l1 == pytest.approx(0.02, rel=0.02)
    assert m.accuracy == pytest.approx(0.02, rel=0.02)
    assert m.completeness == pytest.approx(0.02, rel=0.02)
    assert m.n_samples == 300_000


def test_identical_meshes(sphere):
    m = evaluate_meshes(sphere, sphere)
    # only the sampling floor remains: 0.5 / sqrt(1e5 / 4 pi) = 0.0056, 0.28 % of the size
    assert m.chamfer_l1 < 0.0065
    assert m.f_at(0.01) > 0.999
    assert m.normal_consistency > 0.999


def test_fscore_flips_around_offset(sphere, sphere102):
    m = evaluate_meshes(sphere102, sphere, tau=[0.005, 0.0095, 0.0105, 0.02])
    # GT longest side is 2, so the absolute thresholds are 0.01, 0.019, 0.021, 0.04 vs offset 0.02
    np.testing.assert_allclose(m.tau_abs, [0.01, 0.019, 0.021, 0.04])
    f = dict(zip(m.taus, m.fscore))
    assert f[0.005] == 0.0
    assert f[0.0095] < 0.01
    assert f[0.0105] > 0.5
    assert f[0.02] > 0.999
    d = m.to_dict()
    assert d["f@0.02"] == f[0.02] and d["tau_abs@0.005"] == pytest.approx(0.01)


def test_relative_vs_absolute(sphere, sphere102):
    rel = evaluate_meshes(sphere102, sphere, tau=0.0105, relative=True)
    ab = evaluate_meshes(sphere102, sphere, tau=0.021, relative=False)
    ab_small = evaluate_meshes(sphere102, sphere, tau=0.0105, relative=False)
    assert rel.tau_abs == pytest.approx((0.021,))
    assert ab.tau_abs == (0.021,)
    assert rel.fscore == ab.fscore  # same seed, same threshold
    assert ab_small.fscore[0] == 0.0
    assert rel.gt_scale == pytest.approx(2.0)


def test_normal_consistency_ignores_sign_but_not_direction(sphere):
    flipped = Mesh(sphere.vertices, sphere.faces[:, ::-1])
    m = evaluate_meshes(flipped, sphere)
    assert m.normal_consistency > 0.999
    box = Mesh.from_trimesh(trimesh.creation.box(extents=(2, 2, 2)))
    mb = evaluate_meshes(box, sphere)
    assert mb.normal_consistency < 0.95


def test_empty_prediction(sphere):
    empty = Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    m = evaluate_meshes(empty, sphere, tau=[0.01, 0.02])
    assert np.isinf(m.chamfer_l1)
    assert m.fscore == (0.0, 0.0) and m.normal_consistency == 0.0
    assert m.to_dict()["f@0.02"] == 0.0
    with pytest.raises(InputError):
        evaluate_meshes(sphere, empty)
    with pytest.raises(InputError):
        evaluate_meshes(sphere, sphere, tau=-1.0)


def test_real_mesh_against_perturbed_copy(shared_data):
    path = shared_data / "meshes" / "common-3d-test-models" / "spot.obj"
    gt = Mesh.from_trimesh(trimesh.load(str(path), force="mesh"))
    side = float(np.max(gt.vertices.max(0) - gt.vertices.min(0)))
    shifted = gt.transformed(offset=np.array([0.01 * side, 0.0, 0.0]))
    m0 = evaluate_meshes(gt, gt, n_samples=50_000)
    m1 = evaluate_meshes(shifted, gt, n_samples=50_000, tau=[0.005, 0.02])
    assert m0.chamfer_l1 < 0.004 * side
    # a rigid shift of 1 % moves the surface by at most 1 % and on average clearly more than the floor
    assert m0.chamfer_l1 < m1.chamfer_l1 < 0.01 * side
    assert m1.fscore[1] > 0.99 and m1.fscore[0] < m1.fscore[1]
