"""HDFE encoder and patch tests (no trained weights needed)."""

from __future__ import annotations

import numpy as np

from recon.normals.hdfe.encoder import density_weights, encode, make_theta, point_encodings
from recon.normals.hdfe.patches import extract_patches


def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_similarity_decays_like_gaussian_kernel():
    alpha, n = 3.0, 8192
    rng = np.random.default_rng(0)
    theta = make_theta(n, alpha, seed=1)
    x = rng.uniform(-0.5, 0.5, (300, 3))
    y = x + rng.normal(size=(300, 3)) * rng.uniform(0, 0.6, (300, 1))
    sim = np.abs(np.sum(point_encodings(x, theta) * np.conj(point_encodings(y, theta)), axis=1)) / n
    kernel = np.exp(-alpha**2 * np.sum((x - y) ** 2, axis=1) / 2)
    assert kernel.min() < 0.01 and kernel.max() > 0.99  # the pairs span the whole decay
    assert np.abs(sim - kernel).max() < 0.05  # crosstalk ~ 1/sqrt(N) = 0.011
    assert np.abs(sim - kernel).mean() < 0.012


def test_theta_is_seeded_and_scaled():
    a, b = make_theta(4096, 5.0, seed=3), make_theta(4096, 5.0, seed=3)
    assert a.shape == (3, 4096) and np.array_equal(a, b)
    assert abs(a.std() - 5.0) < 0.1
    assert not np.array_equal(a, make_theta(4096, 5.0, seed=4))


def test_encode_is_unit_norm_and_weighted_sum():
    rng = np.random.default_rng(1)
    p = rng.uniform(-1, 1, (7, 20, 3)).astype(np.float32)
    theta = make_theta(128, 4.0, 0)
    f = encode(p, theta)
    assert f.shape == (7, 128) and f.dtype == np.complex64
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    direct = point_encodings(p, theta).sum(axis=1)
    direct /= np.linalg.norm(direct, axis=1, keepdims=True)
    np.testing.assert_allclose(f, direct, atol=1e-5)
    w = np.ones((7, 20), np.float32)
    w[:, 10:] = 0
    np.testing.assert_allclose(encode(p, theta, weights=w), encode(p[:, :10], theta), atol=1e-5)


def test_density_invariant_weighting_reduces_bias():
    # A unit disk sampled 12x more densely where x > 0.3: the plain mean is pulled to that side.
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 4000)
    r = np.sqrt(rng.uniform(0, 1, 4000))
    disk = np.stack([r * np.cos(t), r * np.sin(t), np.zeros(4000)], 1)
    keep = rng.random(4000) < np.where(disk[:, 0] > 0.3, 1.0, 0.08)
    patch = disk[keep][:150].astype(np.float32)
    assert (patch[:, 0] > 0.3).mean() > 0.8
    theta = make_theta(512, 4.0, 2)
    w = density_weights(patch[None], theta, iters=64)[0]
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-5
    bias_plain = np.linalg.norm(patch.mean(axis=0))
    bias_refined = np.linalg.norm((w[:, None] * patch).sum(axis=0))
    assert bias_plain > 0.4
    assert bias_refined < 0.7 * bias_plain  # measured 0.47 -> 0.29
    f = encode(patch[None], theta, weighting="refine", refine_iters=64)
    np.testing.assert_allclose(f, encode(patch[None], theta, weights=w[None]), atol=1e-5)


def test_patches_are_rotation_invariant_in_the_local_frame():
    rng = np.random.default_rng(2)
    u, v = rng.uniform(-1, 1, (2, 3000))
    pts = np.stack([u, v, 0.3 * u**2 - 0.2 * v**2 + 0.1 * u * v], 1)
    rot = _rotation(5)
    q = np.arange(0, 3000, 50)
    a = extract_patches(pts, [16, 48], q, frame_k=48, workers=1)
    b = extract_patches(pts @ rot.T + 3.0, [16, 48], q, frame_k=48, workers=1)
    for pa, pb in zip(a.patches, b.patches):
        np.testing.assert_allclose(pa, pb, atol=1e-4)
    np.testing.assert_allclose(b.frames, a.frames @ rot.T, atol=1e-6)
    assert np.all(np.linalg.norm(a.patches[1], axis=2) <= 1 + 1e-6)
    np.testing.assert_allclose(np.linalg.det(a.frames), 1.0, atol=1e-9)


def test_patches_subsample_large_neighbourhoods_keeping_extent():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(2000, 3))
    ps = extract_patches(pts, [16, 128], np.arange(10), workers=1, max_points=64)
    assert ps.patches[0].shape == (10, 16, 3) and ps.patches[1].shape == (10, 64, 3)
    assert np.all(np.linalg.norm(ps.patches[1], axis=2).max(axis=1) > 0.95)


def test_degenerate_patches_are_finite():
    dup = np.zeros((50, 3))
    line = np.stack([np.linspace(0, 1, 50), np.zeros(50), np.zeros(50)], 1)
    for pts in (dup, line):
        ps = extract_patches(pts, [16, 48], workers=1)
        assert all(np.isfinite(p).all() for p in ps.patches)
        assert np.isfinite(ps.eig).all() and np.isfinite(ps.frames).all() and np.isfinite(ps.normal).all()


def test_fused_encoding_matches_reference_encode():
    from recon.normals.hdfe.encoder import as_real_features, encode_features

    rng = np.random.default_rng(5)
    theta = make_theta(64, 8.0, 0)
    sets = [rng.uniform(-1, 1, (700, k, 3)).astype(np.float32) for k in (16, 32, 32)]
    fused = encode_features(sets, theta, chunk=256)  # several batches, the last one partial
    assert fused.shape == (700, 3, 128)
    for j, p in enumerate(sets):
        ref = as_real_features(encode(p, theta))
        np.testing.assert_allclose(fused[:, j], ref, atol=2e-5)
    # unit norm before the sqrt(N) scaling
    np.testing.assert_allclose(np.linalg.norm(fused, axis=2), np.sqrt(64), rtol=1e-5)


def test_subsample_ranks_keep_ends_and_count():
    from recon.normals.hdfe.patches import subsample_ranks

    r = subsample_ranks(128, 32)
    assert len(r) == 32 and r[0] == 0 and r[-1] == 127 and np.all(np.diff(r) >= 3)
    r = subsample_ranks(48, 32)
    assert len(r) == 32 and len(np.unique(r)) == 32 and r[-1] == 47
    np.testing.assert_array_equal(subsample_ranks(16, 32), np.arange(16))


def test_nested_moments_match_direct_pca_per_scale():
    """The prefix-sum covariances give the same per-scale PCA as a direct eigh of each patch."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(6)
    u, v = rng.uniform(-1, 1, (2, 4000))
    pts = np.stack([u, v, 0.4 * u * v + 0.02 * rng.normal(size=4000)], 1)
    q = np.arange(0, 4000, 40)
    ps = extract_patches(pts, [16, 48, 128], q, frame_k=48, workers=1, max_points=32)
    _, idx = cKDTree(pts).query(pts[q], k=128)
    for j, k in enumerate((16, 48, 128)):
        nb = pts[idx[:, :k]] - pts[q][:, None]
        c = nb - nb.mean(axis=1, keepdims=True)
        ev, vec = np.linalg.eigh(np.einsum("mki,mkj->mij", c, c) / k)
        np.testing.assert_allclose(ps.eig[:, j], ev / ev.sum(axis=1, keepdims=True), atol=1e-5)
        world = np.einsum("mji,mj->mi", ps.frames, ps.normal[:, j].astype(np.float64))  # back to world
        assert np.abs(np.abs(np.sum(world * vec[:, :, 0], axis=1)) - 1).max() < 1e-5
        np.testing.assert_allclose(ps.scale[:, j], np.linalg.norm(nb, axis=2).max(axis=1), rtol=1e-6)
    assert np.all(ps.normal[:, :, 2] >= 0)
