"""kNN patches around query points: centring, scaling and PCA alignment.

For each query point q the patch of scale k is its k nearest neighbours (q
included), centred at q, rotated into a local frame and divided by the distance
of the farthest of them, so every patch lies in the unit ball. All scales are
prefixes of one kNN query at the largest k (neighbours sorted by distance).

The frame is the PCA basis of the ``frame_k`` neighbourhood (covariance about the
neighbourhood mean):

* z: eigenvector of the smallest eigenvalue (the PCA normal), sign chosen so that the
  neighbours' mean offset from q along z is >= 0;
* x: eigenvector of the largest eigenvalue, sign chosen so that the third moment of
  the offsets along x is >= 0;
* y = z cross x (right-handed).

These sign rules make the frame (and so the whole estimator) equivariant under
rotations of the input. Rows of the returned (3, 3) rotation are the axes, so
``local = R @ (p - q)`` and ``world = R.T @ local``.

Cost per query point: one kNN query, one gather of the k_max neighbours, nested
second moments (one pass over k_max points: the moments of the smaller scales are
prefix sums), one 3x3 ``eigh`` per distinct scale, and a rotation of only the
points that are encoded (``max_points`` per scale at most).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from recon.ops.knn import build_tree

#: Query rows per batch when gathering neighbourhoods ((B, k_max, 3) float64 ~ 13 MB at 4096 x 128).
CHUNK = 4096


@dataclass
class PatchSet:
    """Aligned patches of M query points at S scales.

    Attributes:
        frames: (M, 3, 3) float64 rotations, rows = local x, y, z axes (z = PCA normal).
        patches: S arrays (M, m_s, 3) float32, offsets from the query in the local frame
            divided by the largest neighbour distance of that scale (unit ball); m_s = k_s,
            or ``max_points`` neighbours at evenly spaced ranks (the nearest and the
            farthest included) when k_s is larger (same extent, less encoding work).
        eig: (M, S, 3) float32 covariance eigenvalues / their sum, ascending, per scale
            (all k_s neighbours).
        normal: (M, S, 3) float32 PCA normal of each scale in the local frame, z >= 0.
        scale: (M, S) float32 largest neighbour distance per scale, world units.
    """

    frames: np.ndarray
    patches: list[np.ndarray]
    eig: np.ndarray
    normal: np.ndarray
    scale: np.ndarray


def subsample_ranks(k: int, max_points: int | None) -> np.ndarray:
    """(m,) int64 neighbour ranks kept for a patch of size k: all, or ``max_points``
    evenly spaced ranks from 0 to k - 1 (both ends included) when k > max_points."""
    if not max_points or k <= max_points:
        return np.arange(k)
    return np.round(np.linspace(0.0, k - 1, int(max_points))).astype(np.int64)


def pca_frames(nb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sign-disambiguated PCA frames of centred neighbourhoods.

    Args:
        nb: (M, k, 3) float64 neighbour offsets from their query point, world units.

    Returns:
        frames: (M, 3, 3) float64, rows x, y, z (z = smallest-variance direction).
        evals: (M, 3) float64 covariance eigenvalues, ascending, >= 0 (world units^2).
    """
    m1 = nb.mean(axis=1)
    cov = np.matmul(nb.transpose(0, 2, 1), nb) / nb.shape[1] - m1[:, :, None] * m1[:, None, :]
    w, v = np.linalg.eigh(cov)  # columns ascending
    return _orient_frame(nb, m1, v), np.maximum(w, 0.0)


def _orient_frame(nb: np.ndarray, mean: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(M, 3, 3) frames from eigenvectors ``v`` (M, 3, 3; columns ascending) of the
    neighbourhoods ``nb`` (M, k, 3) with mean offsets ``mean`` (M, 3)."""
    z = v[:, :, 0]
    x = v[:, :, 2]
    z = np.where((np.einsum("mi,mi->m", mean, z) < 0)[:, None], -z, z)
    sx = (np.matmul(nb, x[:, :, None])[:, :, 0] ** 3).sum(axis=1)
    x = np.where((sx < 0)[:, None], -x, x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def extract_patches(points: np.ndarray, scales: tuple[int, ...] | list[int], query: np.ndarray | None = None,
                    frame_k: int | None = None, tree: cKDTree | None = None, workers: int = -1,
                    neighbors: np.ndarray | None = None, max_points: int | None = None) -> PatchSet:
    """Aligned multi-scale kNN patches.

    Args:
        points: (N, 3) float positions, world units, N >= 3.
        scales: neighbourhood sizes k_s (query included), each clipped to N.
        query: optional (M,) int indices of the query points (default: all points).
        frame_k: neighbourhood size for the PCA frame (default: the largest scale).
        tree: optional prebuilt cKDTree over ``points``.
        workers: cKDTree query threads (-1 = all cores).
        neighbors: optional (M, K) int kNN indices of the query points, nearest first
            (the query itself first); used instead of a tree query when K is at least
            the largest patch size needed (after clipping to N).
        max_points: cap on encoded points per patch (evenly spaced ranks), None = no cap.

    Returns:
        A :class:`PatchSet` for the M query points.
    """
    pts = np.asarray(points, dtype=np.float64)
    n = pts.shape[0]
    ks = [max(1, min(int(k), n)) for k in scales]
    kf = max(ks) if frame_k is None else max(1, min(int(frame_k), n))
    kmax = max(max(ks), kf)
    cuts = sorted(set(ks) | {kf})  # nested prefixes whose moments are needed
    qidx = np.arange(n) if query is None else np.asarray(query, dtype=np.int64)
    m = qidx.shape[0]
    use_nb = neighbors is not None and neighbors.shape[1] >= kmax
    if not use_nb and tree is None:
        tree = build_tree(pts)
    sub = [subsample_ranks(k, max_points) for k in ks]
    frames = np.empty((m, 3, 3), dtype=np.float64)
    patches = [np.empty((m, len(sb), 3), dtype=np.float32) for sb in sub]
    eig = np.empty((m, len(ks), 3), dtype=np.float32)
    nrm = np.empty((m, len(ks), 3), dtype=np.float32)
    scale = np.empty((m, len(ks)), dtype=np.float32)
    for s in range(0, m, CHUNK):  # batches of query points
        e = min(m, s + CHUNK)
        q = pts[qidx[s:e]]
        if use_nb:
            idx = np.asarray(neighbors[s:e, :kmax], dtype=np.int64)  # type: ignore[index]
        else:
            _, idx = tree.query(q, k=kmax, workers=workers)  # type: ignore[union-attr]
            idx = np.asarray(idx).reshape(e - s, kmax)
        nb = pts[idx]
        nb -= q[:, None, :]  # (B, kmax, 3), sorted by distance
        # nested raw moments: prefix sums over the distance-sorted neighbours
        s1 = np.zeros((e - s, 3))
        s2 = np.zeros((e - s, 3, 3))
        lo = 0
        cov: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in cuts:  # a few nested scales
            blk = nb[:, lo:c]
            s1 += blk.sum(axis=1)
            s2 += np.matmul(blk.transpose(0, 2, 1), blk)
            mean = s1 / c
            cov[c] = (mean, s2 / c - mean[:, :, None] * mean[:, None, :])
            lo = c
        dec = {c: np.linalg.eigh(cov[c][1]) for c in cuts}  # (B, 3) ascending, (B, 3, 3) columns
        fr = _orient_frame(nb[:, :kf], cov[kf][0], dec[kf][1])
        frames[s:e] = fr
        for j, k in enumerate(ks):  # a few scales
            r = np.sqrt((nb[:, k - 1] ** 2).sum(axis=1))  # farthest of the k (sorted)
            r = np.where(r > 0, r, 1.0)
            scale[s:e, j] = r
            loc = np.matmul(nb[:, sub[j]], fr.transpose(0, 2, 1))  # (B, m_s, 3) in the frame
            patches[j][s:e] = loc / r[:, None, None]
            ev = np.maximum(dec[k][0], 0.0)
            v0 = np.matmul(fr, dec[k][1][:, :, :1])[:, :, 0]  # smallest eigenvector, local frame
            nrm[s:e, j] = np.where((v0[:, 2] < 0)[:, None], -v0, v0)
            eig[s:e, j] = ev / np.maximum(ev.sum(axis=1, keepdims=True), 1e-300)
    return PatchSet(frames, patches, eig, nrm, scale)


__all__ = ["PatchSet", "subsample_ranks", "pca_frames", "extract_patches"]
