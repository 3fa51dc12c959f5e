"""recon.ops.knn against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from recon.errors import InputError
from recon.ops.knn import knn


def _brute(points: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(query[:, None, :] - points[None, :, :], axis=2)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, axis=1), idx


def test_matches_brute_force_with_chunks(rng):
    pts = rng.random((400, 3))
    q = rng.random((137, 3))
    d_ref, i_ref = _brute(pts, q, 7)
    d, i = knn(pts, 7, q, chunk=25)  # several chunks, last one partial
    assert d.dtype == np.float32 and i.dtype == np.int64
    assert d.shape == (137, 7) and i.shape == (137, 7)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-6, atol=1e-7)


def test_self_query_has_self_first(rng):
    pts = rng.normal(size=(300, 3))
    d, i = knn(pts, 4)
    np.testing.assert_array_equal(i[:, 0], np.arange(300))
    assert np.all(d[:, 0] == 0)
    assert np.all(np.diff(d, axis=1) >= 0)


def test_k1_is_2d_and_errors(rng):
    pts = rng.random((10, 3))
    d, i = knn(pts, 1, pts[:3])
    assert d.shape == (3, 1) and i.shape == (3, 1)
    with pytest.raises(InputError):
        knn(pts, 11)
    with pytest.raises(InputError):
        knn(pts, 0)
    with pytest.raises(InputError):
        knn(pts[:, :2], 2)
