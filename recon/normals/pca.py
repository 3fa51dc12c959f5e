"""Unoriented normals by principal component analysis of k-nearest neighbourhoods.

The normal of a point is the eigenvector of the smallest eigenvalue of the
covariance of its neighbourhood (the point and its k nearest neighbours). The
3x3 covariances are built and diagonalised in batches (``np.linalg.eigh`` on
(B, 3, 3) stacks), never point by point.

Degenerate neighbourhoods (all points coincide, or all lie on a line) have no
defined normal; they take the normal of their nearest non-degenerate neighbour,
or else a deterministic direction perpendicular to the line (or +z when the
neighbourhood is a single repeated point). The result never contains NaN.
"""

from __future__ import annotations

import numpy as np

from recon.errors import InputError
from recon.ops.knn import knn

DEFAULT_K = 20
#: the neighbourhood sizes a user may ask for (checked by recon.normals.estimate_normals): 3 neighbours span a plane; 200 is the widest any
#: benchmark finds useful and keeps the (N, k) neighbour index under 1.6 GB at 1M points
MIN_K, MAX_K = 3, 200
#: Points per batch of covariance + eigh; (B, k+1, 3) float64 gathers ~ 100 MB at k = 20.
CHUNK = 1 << 18
#: A neighbourhood is degenerate when its middle eigenvalue is below this fraction of the largest.
DEGENERATE_RATIO = 1e-10


def check_points(points: np.ndarray, min_points: int = 3) -> np.ndarray:
    """(N, 3) finite float64 copy of ``points``; InputError otherwise."""
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"points must have shape (N, 3), got {p.shape}")
    if p.shape[0] < min_points:
        raise InputError(f"normal estimation needs at least {min_points} points, got {p.shape[0]}")
    p = p.astype(np.float64, copy=False)
    if not np.isfinite(p).all():
        raise InputError("points contain NaN or infinite coordinates", None, "drop invalid points first")
    return p


def clip_k(k: int | None, n: int, default: int = DEFAULT_K) -> int:
    """Neighbours per point (excluding itself), clipped to [1, n - 1]."""
    k = default if k is None else int(k)
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    return max(1, min(k, n - 1))


def _perpendicular(d: np.ndarray) -> np.ndarray:
    """(M, 3) unit vectors perpendicular to the (M, 3) unit directions ``d``.

    Uses the cross product with the coordinate axis least aligned with each row,
    which is deterministic and well conditioned.
    """
    axis = np.zeros_like(d)
    axis[np.arange(len(d)), np.argmin(np.abs(d), axis=1)] = 1.0
    c = np.cross(d, axis)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def pca_normals(
    points: np.ndarray,
    k: int | None = None,
    *,
    neighbors: np.ndarray | None = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Unoriented unit normals by PCA of k-nearest neighbourhoods.

    Args:
        points: (N, 3) positions, world units, N >= 3.
        k: neighbours per point excluding itself (default 20), clipped to N - 1.
        neighbors: optional precomputed (N, K) int64 kNN indices with the point
            itself first (as :func:`recon.ops.knn.knn` returns for ``query=None``),
            K >= k + 1; only the first k + 1 columns are used.
        return_info: also return a dict with "degenerate" (N,) bool and
            "surface_variation" (N,) float32 = lambda_min / (lambda_0 + lambda_1 + lambda_2).

    Returns:
        (N, 3) float32 unit normals with arbitrary sign (and the info dict).
    """
    p = check_points(points)
    n = p.shape[0]
    k = clip_k(k, n)
    if neighbors is None or neighbors.shape[1] < k + 1:
        _, idx = knn(p, k + 1)
    else:
        idx = np.asarray(neighbors)[:, : k + 1]
    p = p - p.mean(axis=0)  # precision for georeferenced input; PCA is translation invariant

    normals = np.empty((n, 3), dtype=np.float64)
    line_dir = np.empty((n, 3), dtype=np.float64)
    evals = np.empty((n, 3), dtype=np.float64)
    for s in range(0, n, CHUNK):  # chunks of points, each fully vectorised
        e = min(n, s + CHUNK)
        nb = p[idx[s:e]]  # (B, k+1, 3)
        nb -= nb.mean(axis=1, keepdims=True)
        cov = np.matmul(nb.transpose(0, 2, 1), nb)  # (B, 3, 3), unnormalised
        w, v = np.linalg.eigh(cov)  # ascending eigenvalues, eigenvectors in columns
        normals[s:e] = v[:, :, 0]
        line_dir[s:e] = v[:, :, 2]
        evals[s:e] = w

    evals = np.maximum(evals, 0.0)
    top = evals[:, 2]
    degenerate = evals[:, 1] <= DEGENERATE_RATIO * top
    # neighbourhoods of coincident points (up to rounding): no extent at all
    extent = float(np.linalg.norm(p.max(axis=0) - p.min(axis=0)))
    has_extent = top > (1e-9 * extent) ** 2 * (k + 1)
    degenerate |= ~has_extent
    if degenerate.any():
        _fill_degenerate(p, normals, degenerate, idx, line_dir, has_extent)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    out = normals.astype(np.float32)
    if return_info:
        total = evals.sum(axis=1)
        sv = np.where(total > 0, evals[:, 0] / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)
        return out, {"degenerate": degenerate, "surface_variation": sv}
    return out


def _fill_degenerate(p: np.ndarray, normals: np.ndarray, degenerate: np.ndarray, idx: np.ndarray,
                     line_dir: np.ndarray, has_extent: np.ndarray, rounds: int = 3) -> None:
    """In place: normals for degenerate neighbourhoods.

    In order: the normal of the first non-degenerate kNN neighbour (a few
    propagation rounds); for clusters of coincident points, the normal of the
    nearest non-degenerate point anywhere; for collinear neighbourhoods, a
    deterministic perpendicular to the line; +z when nothing else applies.
    """
    bad = degenerate.copy()
    for _ in range(rounds):  # a few propagation rounds, each vectorised over all bad points
        ids = np.flatnonzero(bad)
        if ids.size == 0:
            return
        nb = idx[ids, 1:]
        good = ~bad[nb]
        has = good.any(axis=1)
        if not has.any():
            break
        first = np.argmax(good, axis=1)
        src = nb[np.arange(len(ids)), first]
        take = ids[has]
        normals[take] = normals[src[has]]
        bad[take] = False
    ids = np.flatnonzero(bad)
    if ids.size == 0:
        return
    point_like = ids[~has_extent[ids]]
    good_ids = np.flatnonzero(~bad)
    if point_like.size and good_ids.size:
        _, j = knn(p[good_ids], 1, p[point_like])
        normals[point_like] = normals[good_ids[j[:, 0]]]
        bad[point_like] = False
        ids = np.flatnonzero(bad)
    if ids.size:
        line = ids[has_extent[ids]]
        normals[line] = _perpendicular(line_dir[line] / np.linalg.norm(line_dir[line], axis=1, keepdims=True))
        normals[ids[~has_extent[ids]]] = (0.0, 0.0, 1.0)


__all__ = ["DEFAULT_K", "check_points", "clip_k", "pca_normals"]
