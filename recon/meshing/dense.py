"""Dense marching cubes (scikit-image), the reference the sparse mesher is checked against."""

from __future__ import annotations

from typing import Callable

import numpy as np

from recon.meshing.sparse import _drop_degenerate, empty_mesh
from recon.types import Mesh


def _refine_vertices(verts: np.ndarray, values: np.ndarray, level: float) -> np.ndarray:
    """Recompute skimage's float32 edge vertices by float64 linear interpolation.

    Each vertex (index units) is matched to the sign-changing grid edge whose float64
    interpolated point is nearest (6 candidate edges: 3 axes x 2 possible low ends); if
    that point is within 1e-3 index units it replaces the vertex. Vertices matching no
    edge (interior vertices of some Lewiner cases) are kept as they are.

    Args:
        verts: (V, 3) float vertex positions in index units.
        values: (X, Y, Z) float64 grid values.
        level: iso level.

    Returns:
        (V, 3) float64 refined positions in index units.
    """
    vi = verts.astype(np.float64)
    shape = np.array(values.shape)
    base = np.rint(vi).astype(np.int64)
    best = vi.copy()
    best_d = np.full(vi.shape[0], 1e-3)
    for a in range(3):
        for off in (0, -1):
            lo = base.copy()
            lo[:, a] = np.floor(vi[:, a]).astype(np.int64) + off
            ok = np.all(lo >= 0, axis=1) & np.all(lo < shape, axis=1) & (lo[:, a] + 1 < shape[a])
            lo = np.where(ok[:, None], lo, 0)
            hi = lo.copy()
            hi[:, a] += 1
            hi = np.where(ok[:, None], hi, 0)
            v0 = values[lo[:, 0], lo[:, 1], lo[:, 2]]
            v1 = values[hi[:, 0], hi[:, 1], hi[:, 2]]
            ok &= (v0 < level) != (v1 < level)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.clip((level - v0) / (v1 - v0), 0.0, 1.0)
            p = lo.astype(np.float64)
            p[:, a] += t
            d = np.abs(p - vi).max(axis=1)
            better = ok & (d < best_d)
            best[better] = p[better]
            best_d[better] = d[better]
    return best


def dense_marching_cubes(values: np.ndarray, origin: np.ndarray, spacing: float, level: float = 0.0) -> Mesh:
    """Marching cubes over a dense grid (scikit-image's Lewiner variant).

    Args:
        values: (X, Y, Z) field samples, negative inside; sample ``[i, j, k]`` is at
            ``origin + (i, j, k) * spacing``.
        origin: (3,) float64 world position of sample [0, 0, 0].
        spacing: grid step in world units.
        level: iso level.

    Returns:
        The mesh in world units, normals (counter-clockwise faces) pointing towards
        increasing values, i.e. outward for a negative-inside field. Edge vertices are
        recomputed in float64 (scikit-image works in float32), coincident vertices are
        merged and degenerate faces dropped. Empty when the values never cross the level.
    """
    vol = np.asarray(values, dtype=np.float64)
    if vol.ndim != 3 or min(vol.shape) < 2:
        raise ValueError(f"values must be a 3D array of at least 2x2x2, got shape {vol.shape}")
    origin = np.asarray(origin, dtype=np.float64).reshape(3)
    inside = vol < level
    if not inside.any() or inside.all():
        return empty_mesh()
    from skimage.measure import marching_cubes

    try:
        verts, faces, _, _ = marching_cubes(vol, level=level, gradient_direction="descent", allow_degenerate=True)
    except (ValueError, RuntimeError):  # the float32 copy lost the crossing
        return empty_mesh()
    idx = _refine_vertices(verts, vol, level)
    uniq, inv = np.unique(idx, axis=0, return_inverse=True)
    faces = inv.reshape(-1)[faces]
    return _drop_degenerate(Mesh(origin + spacing * uniq, faces))


def mesh_field_dense(
    evaluate: Callable[[np.ndarray], np.ndarray],
    bounds: np.ndarray,
    resolution: int,
    *,
    level: float = 0.0,
    batch_size: int = 262144,
) -> Mesh:
    """Sample a field on a dense grid over a box and run :func:`dense_marching_cubes`.

    Args:
        evaluate: (K, 3) float64 world positions -> (K,) values, negative inside.
        bounds: (2, 3) min and max corner of the box, world units.
        resolution: number of grid cells along the box's longest side; the spacing is
            ``max(extent) / resolution`` and the grid starts at ``bounds[0]`` with
            ``ceil(extent / spacing) + 1`` samples per axis (so it may overshoot the box by
            less than one step).
        level: iso level.
        batch_size: largest number of points per ``evaluate`` call.

    Returns:
        The mesh in world units, as :func:`dense_marching_cubes`.
    """
    b = np.asarray(bounds, dtype=np.float64).reshape(2, 3)
    ext = b[1] - b[0]
    if resolution < 1 or not np.all(ext >= 0) or ext.max() <= 0:
        raise ValueError(f"need resolution >= 1 and a non-empty box, got {resolution}, {b.tolist()}")
    h = float(ext.max()) / int(resolution)
    n = np.maximum(np.ceil(ext / h - 1e-9).astype(np.int64) + 1, 2)
    grid = np.stack(np.meshgrid(*(np.arange(k) for k in n), indexing="ij"), axis=-1).reshape(-1, 3)
    vals = np.empty(grid.shape[0], dtype=np.float64)
    for s in range(0, grid.shape[0], batch_size):
        xyz = b[0] + grid[s : s + batch_size].astype(np.float64) * h
        v = evaluate(xyz)
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        vals[s : s + batch_size] = np.asarray(v, dtype=np.float64).reshape(-1)
    return dense_marching_cubes(vals.reshape(tuple(n)), b[0], h, level)
