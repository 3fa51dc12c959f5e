"""HDFE normal estimator with the committed weights."""

from __future__ import annotations

import numpy as np
import pytest

import recon.normals.hdfe  # noqa: F401 - registers "hdfe"
from recon import synthetic as syn
from recon.errors import InputError
from recon.normals import NORMAL_METHODS, estimate_normals
from recon.normals.hdfe import TRAIN_COMMAND, hdfe_normals, load_model
from recon.normals.hdfe.data import procedural_shapes


def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.abs(np.sum(a * b, axis=1)), 0, 1)))


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(_angle_deg(a, b) ** 2)))


@pytest.fixture(scope="module")
def heldout_shape():
    """A shape not among the procedural training shapes: a rounded box fused with a torus."""
    f = syn.smooth_union(syn.torus(major=0.38, minor=0.11, axis=0),
                         syn.box(half=(0.22, 0.3, 0.18), rounding=0.04), 0.06)
    p, n = syn.sample_sdf_surface(f, np.array([[-0.6] * 3, [0.6] * 3]), 60_000, seed=3, resolution=96)
    return p, n


def test_registered_and_weights_load():
    assert "hdfe" in NORMAL_METHODS
    m = load_model()
    assert m.theta.shape == (3, m.enc.n_dims)
    assert "command" in m.meta and "train.py" not in m.meta["command"]
    from recon.normals.hdfe.model import DEFAULT_WEIGHTS, feature_dim

    assert DEFAULT_WEIGHTS.stat().st_size < 3e6  # a few MB at most
    assert m.head.mlp[0].in_features == feature_dim(m.enc) == 3 * (2 * m.enc.n_dims + 6)
    assert m.meta["held_out_meshes"] and not set(m.meta["held_out_meshes"]) & set(m.meta["train_meshes"])


def test_missing_weights_names_training_command(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(InputError) as e:
        hdfe_normals(np.random.default_rng(0).normal(size=(50, 3)), weights=missing)
    msg = str(e.value)
    assert str(missing) in msg and TRAIN_COMMAND in msg and "\n" not in msg
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="retrain"):
        load_model(bad)


def test_plane_gives_exact_normals():
    rng = np.random.default_rng(4)
    uv = rng.uniform(-1, 1, (3000, 2))
    rot = _rotation(7)
    pts = np.stack([uv[:, 0], uv[:, 1], np.zeros(3000)], 1) @ rot.T + (5.0, -2.0, 1.0)
    n = hdfe_normals(pts, threads=1)
    assert np.isfinite(n).all()
    assert _angle_deg(n, np.tile(rot[:, 2], (3000, 1))).max() < 0.02  # float32 rounding: ~0.007 deg


def test_rotated_input_gives_rotated_normals(heldout_shape):
    p, _ = heldout_shape
    p = p[:20_000] + np.random.default_rng(1).normal(scale=0.004, size=(20_000, 3))
    q = np.arange(0, 20_000, 10)
    rot = _rotation(11)
    a = hdfe_normals(p, query=q, threads=1)
    b = hdfe_normals(p @ rot.T, query=q, threads=1)
    err = _angle_deg(a @ rot.T, b)
    assert np.percentile(err, 99) < 0.5 and err.mean() < 0.05


def test_beats_pca_on_heldout_noisy_shape():
    """A held-out machined part (cylinder with a slot: sharp edges) under PCPNet "low" noise.

    Measured with hdfe_v2: HDFE 5.5 deg vs best-k PCA 8.6 deg (k=20) (v1: 6.2 deg). On smooth shapes at medium noise
    HDFE does NOT beat PCA at k=100 (see benchmarks/results/normals.md).
    """
    from scipy.spatial import cKDTree

    f = syn.difference(syn.cylinder(radius=0.35, half_height=0.3, axis=2),
                       syn.box((0.25, 0, 0), half=(0.2, 0.12, 0.5)))
    p, n = syn.sample_sdf_surface(f, np.array([[-0.6] * 3, [0.6] * 3]), 60_000, seed=3, resolution=96)
    diag = float(np.linalg.norm(np.ptp(p, axis=0)))
    rng = np.random.default_rng(2)
    noisy = p + rng.normal(scale=0.00125 * diag, size=p.shape)  # PCPNet "low" noise
    q = rng.choice(len(p), 2000, replace=False)
    h = _rmse(hdfe_normals(noisy, query=q, threads=1), n[q])
    _, idx = cKDTree(noisy).query(noisy[q], k=101)
    pca = {}
    for k in (10, 20, 50, 100):
        nb = noisy[idx[:, :k + 1]] - noisy[idx[:, :k + 1]].mean(axis=1, keepdims=True)
        pca[k] = _rmse(np.linalg.eigh(np.einsum("mki,mkj->mij", nb, nb))[1][:, :, 0], n[q])
    best = min(pca.values())
    assert h < 0.85 * best, (h, pca)


def test_bad_inputs():
    with pytest.raises(InputError):
        hdfe_normals(np.zeros((2, 3)))
    with pytest.raises(InputError):
        hdfe_normals(np.array([[0, 0, 0], [1, 0, 0], [np.nan, 0, 0]], float))
    rng = np.random.default_rng(0)
    few = rng.normal(size=(5, 3))  # fewer points than any patch size: uses what exists
    assert np.isfinite(hdfe_normals(few)).all()
    dup = np.concatenate([np.zeros((200, 3)), rng.normal(size=(300, 3))])  # duplicates
    line = np.stack([np.linspace(0, 1, 300), 2 * np.linspace(0, 1, 300), np.zeros(300)], 1)  # collinear
    for pts in (dup, line):
        out = hdfe_normals(pts)
        assert out.shape == pts.shape and np.isfinite(out).all()
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    ln = hdfe_normals(line)
    assert np.abs(ln @ np.array([1, 2, 0]) / np.sqrt(5)).max() < 1e-3  # perpendicular to the line


def test_estimate_normals_hdfe_oriented_sphere():
    f, b = procedural_shapes()["sphere"]
    p, n = syn.sample_sdf_surface(f, b, 8000, seed=5, resolution=64)
    out = estimate_normals(p, method="hdfe", orient="mst")
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert np.mean(np.sum(out * n, axis=1) > 0) > 0.99


def test_threads_chunks_and_given_neighbors_agree(heldout_shape):
    """Chunked thread-pool runs and precomputed kNN give the same normals as one serial pass."""
    from recon.ops.knn import knn

    p, n = heldout_shape
    p = p[:6000]
    ref = hdfe_normals(p, threads=1)
    par = hdfe_normals(p, threads=2, chunk=1000)  # 6 work items on 2 threads
    np.testing.assert_allclose(par, ref, atol=1e-6)
    q = np.arange(0, 6000, 7)
    _, idx = knn(p - p.mean(axis=0), 128, workers=1)
    given = hdfe_normals(p, query=q, neighbors=idx[q], threads=1)
    np.testing.assert_allclose(given, ref[q], atol=1e-5)  # (angles of 1e-5 read as ~0.03 deg in float32)
    # sanity: measured 6.5 deg; NOT better than PCA k=10 here (5.4 deg) on this clean, sparse 6000-point cloud
    assert _rmse(ref, n[:6000]) < 7.5
