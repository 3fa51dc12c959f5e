"""HDFE normal estimation: learned unoriented normals from hyper-dimensional patch encodings.

Importing this package registers the method ``"hdfe"`` with
:func:`recon.normals.register_normal_method`, so that
``estimate_normals(points, method="hdfe")`` works (orientation is done by
``estimate_normals`` itself). Each point's kNN patches (three sizes, prefixes of one kNN
query, see :class:`~recon.normals.hdfe.model.EncoderSpec`) are centred at the point,
PCA-aligned, scaled to the unit ball and encoded with the fractional power encoding; a
small MLP maps the encodings to the normal in the patch frame, which is rotated back.

Speed (v2 weights: N = 64, at most 32 encoded points per scale, k up to 128): about
70-80 us per point on one core, dominated by the k = 128 kNN query and the 5120
sin/cos per point; chunks of points run on a thread pool (numpy and cKDTree release
the GIL). 1M points with MST orientation took about 67 s on the shared 2-core machine
at load ~3.3 (``benchmarks/results/normals.md``).

The patch sizes are part of the trained model, so the ``k`` argument is not used
by this method. Exactly planar neighbourhoods (surface variation below
:data:`~recon.normals.hdfe.model.PLANAR_EPS` at the largest patch size) return the
PCA normal, which is exact there.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from recon.errors import InputError
from recon.normals import register_normal_method
from recon.normals.hdfe.model import DEFAULT_WEIGHTS, PLANAR_EPS, TRAIN_COMMAND, HDFEModel, load_model, patch_features
from recon.normals.hdfe.patches import extract_patches
from recon.ops.knn import build_tree

#: Query points per work item (features of one item: chunk * S * (2N + 6) float32, ~ 26 MB at 16384
#: with the v2 weights; patches ~ 16 MB; kNN gathers run in sub-batches of patches.CHUNK rows).
CHUNK = 16384


def _predict_chunk(model: HDFEModel, pts: np.ndarray, q: np.ndarray, neighbors: np.ndarray | None,
                   tree, workers: int) -> np.ndarray:
    enc = model.enc
    ps = extract_patches(pts, enc.scales, q, frame_k=enc.frame_k, tree=tree, workers=workers,
                         neighbors=neighbors, max_points=enc.max_points)
    local = model.predict_local(patch_features(ps, model.theta, enc))
    big = int(np.argmax(enc.scales))
    planar = ps.eig[:, big, 0] < PLANAR_EPS
    local[planar] = (0.0, 0.0, 1.0)
    local = local.astype(np.float64)
    bad = ~np.isfinite(local).all(axis=1)
    local[bad] = (0.0, 0.0, 1.0)
    world = np.einsum("mji,mj->mi", ps.frames, local)  # R^T @ local
    norm = np.linalg.norm(world, axis=1, keepdims=True)
    ok = np.isfinite(norm[:, 0]) & (norm[:, 0] > 0)
    world[~ok] = (0.0, 0.0, 1.0)
    world[ok] /= norm[ok]
    return world.astype(np.float32)


def _usable_cores() -> int:
    """Cores this process may run on (affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def hdfe_normals(points: np.ndarray, *, k: int | None = None, neighbors: np.ndarray | None = None,
                 query: np.ndarray | None = None, weights: str | os.PathLike | None = None,
                 threads: int | None = None, chunk: int = CHUNK) -> np.ndarray:
    """Unoriented unit normals by HDFE patch encodings and the trained head.

    Args:
        points: (N, 3) float positions, world units, N >= 3.
        k: ignored (the patch sizes are fixed by the weights); accepted for the registry.
        neighbors: optional (N, K) int64 kNN indices with each point first (as
            ``recon.ops.knn.knn`` returns); used when K covers the model's largest patch.
            Rows must match ``query`` when it is given.
        query: optional (M,) indices: estimate only these points (default: all).
        weights: weights file (default: the committed ``weights/hdfe_v2.pt``).
        threads: worker threads (default: the cores in this process's affinity mask);
            each handles a chunk of points.
        chunk: query points per work item.

    Returns:
        (M, 3) float32 unit normals, arbitrary sign, never NaN.

    Raises:
        InputError: bad points (shape, NaN, fewer than 3) or missing/unreadable weights.
    """
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"points must have shape (N, 3), got {p.shape}")
    if p.shape[0] < 3:
        raise InputError(f"normal estimation needs at least 3 points, got {p.shape[0]}")
    p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise InputError("points contain NaN or infinite coordinates", None, "drop invalid points first")
    model = load_model(weights)
    p = p - p.mean(axis=0)
    n = p.shape[0]
    qidx = np.arange(n) if query is None else np.asarray(query, dtype=np.int64)
    need = min(max(max(model.enc.scales), model.enc.frame_k), n)
    nb = neighbors if neighbors is not None and neighbors.shape[1] >= need else None
    tree = None
    threads = max(1, int(threads if threads is not None else _usable_cores()))
    if nb is None:

        tree = build_tree(p)
    out = np.empty((len(qidx), 3), dtype=np.float32)
    starts = list(range(0, len(qidx), chunk))
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # parallelism comes from the chunk threads

    def work(s: int) -> None:
        e = min(len(qidx), s + chunk)
        out[s:e] = _predict_chunk(model, p, qidx[s:e], None if nb is None else nb[s:e], tree, 1)

    try:
        if threads == 1 or len(starts) == 1:
            for s in starts:  # chunks of points
                work(s)
        else:
            with ThreadPoolExecutor(threads) as ex:
                list(ex.map(work, starts))
    finally:
        torch.set_num_threads(old)
    return out


def _registered(points: np.ndarray, *, k: int | None, neighbors: np.ndarray | None) -> np.ndarray:
    return hdfe_normals(points, k=k, neighbors=neighbors)


def _register() -> None:

    # The shared kNN of estimate_normals is kept small (it serves the orientation); the
    # larger HDFE patches are queried chunk by chunk, which bounds memory on big clouds.
    register_normal_method("hdfe", _registered, default_k=20)


_register()

__all__ = ["hdfe_normals", "load_model", "DEFAULT_WEIGHTS", "TRAIN_COMMAND", "Path"]
