"""Sparse marching cubes: mesh an implicit field known only on a sparse set of cells.

The field is sampled on the corners of a sparse set of cubes of an integer lattice (no
dense grid is ever allocated), optionally refined MISE-style (only cubes the surface
crosses are split), and polygonised with the marching-cubes table of
:mod:`recon.meshing.tables`. Vertices are keyed by the lattice edge they lie on, so cubes
sharing an edge share the vertex and the mesh is watertight wherever the cell set
encloses the surface.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from recon.meshing.cleanup import remove_unreferenced_vertices
from recon.meshing.lattice import LatticeKeys, lookup
from recon.meshing.tables import CORNERS, EDGE_AXIS, EDGE_HIGH, EDGE_LOW, build_tables
from recon.progress import NULL_PROGRESS, Progress
from recon.types import Mesh

Evaluate = Callable[[np.ndarray], np.ndarray]

#: MISE safety band, in units of (slope x coarse cell size): a coarse cell is also refined
#: when one of its corner values is within ``MISE_BAND * L * h`` of the level, ``L`` being
#: the 90th percentile of the field's slope |dv|/h over all cell edges of that level.
#: If the surface enters a cell at all, its nearest corner is within ``sqrt(3)/2 * h`` of
#: it, so for an L-Lipschitz field (an SDF: L = 1) ``sqrt(3)/2`` catches every such cell,
#: including thin features and grazing surfaces with no corner sign change. Set to 0 to
#: refine sign-changing cells only (about 2-3x fewer evaluations, features thinner than
#: a coarse cell may be lost).
MISE_BAND = float(np.sqrt(3.0) / 2.0)


def empty_mesh() -> Mesh:
    """A mesh with 0 vertices and 0 faces."""
    return Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))


class _Sampler:
    """Calls ``evaluate`` in batches and counts the points it asked for."""

    def __init__(self, evaluate: Evaluate, origin: np.ndarray, batch_size: int, progress: Progress):
        self.evaluate = evaluate
        self.origin = origin
        self.batch_size = int(batch_size)
        self.progress = progress
        self.count = 0

    def __call__(self, lattice: np.ndarray, h: float) -> np.ndarray:
        """Field values at lattice points.

        Args:
            lattice: (K, 3) int64 lattice coordinates.
            h: lattice spacing in world units.

        Returns:
            (K,) float64 values.
        """
        k = lattice.shape[0]
        out = np.empty(k, dtype=np.float64)
        for start in range(0, k, self.batch_size):
            stop = min(start + self.batch_size, k)
            xyz = self.origin + lattice[start:stop].astype(np.float64) * h
            v = self.evaluate(xyz)
            if hasattr(v, "detach"):  # a torch tensor
                v = v.detach().cpu().numpy()
            v = np.asarray(v, dtype=np.float64).reshape(-1)
            if v.shape[0] != stop - start:
                raise ValueError(f"evaluate returned {v.shape[0]} values for {stop - start} points")
            out[start:stop] = v
            self.progress.update("mesh: evaluate field", stop / k)
        self.count += k
        return out


def _unique_cells(cells: np.ndarray) -> np.ndarray:
    """(M, 3) int64 -> (M', 3) int64 unique rows, sorted lexicographically by (x, y, z)."""
    keys = LatticeKeys(cells.min(axis=0), cells.max(axis=0))
    return keys.unpack(np.unique(keys.pack(cells)))


def _cell_corners(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, LatticeKeys]:
    """Unique corner lattice points of a cell set.

    Args:
        cells: (M, 3) int64 cube coordinates.

    Returns:
        ``(points, corner_index, keys)``: (P, 3) int64 unique corner points sorted by key,
        (M, 8) int64 index into ``points`` of each cube's corner ``i`` (see
        :data:`recon.meshing.tables.CORNERS`), and the key packer used.
    """
    keys = LatticeKeys(cells.min(axis=0), cells.max(axis=0) + 1)
    ck = keys.pack(cells[:, None, :] + CORNERS[None, :, :])
    uk, inv = np.unique(ck, return_inverse=True)
    return keys.unpack(uk), inv.reshape(-1, 8).astype(np.int64), keys


def _refine(
    sample: _Sampler,
    cells: np.ndarray,
    corner_index: np.ndarray,
    points: np.ndarray,
    values: np.ndarray,
    level: float,
    h_fine: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One MISE level: split the crossed cells into 8 and sample only the new corners.

    Refined: every cell whose corners straddle the level; every cell with a corner value
    within the safety band :data:`MISE_BAND` of the level (surfaces that enter a cell
    without changing any corner sign: thin features, grazing surfaces); plus (closure) every
    cell of the set that the *fine* surface enters through a face of a refined cell (a sign
    change on a fine face on the refined region's border), iterated to a fixed point, so the
    fine cell set stays closed around the fine surface wherever the coarse set is.

    Args:
        cells: (M, 3) int64 coarse cells, unique, sorted by (x, y, z).
        corner_index: (M, 8) int64 into ``points``.
        points: (P, 3) int64 coarse lattice points, sorted by (x, y, z).
        values: (P,) float64 field values at ``points``.
        level: iso level.
        h_fine: fine lattice spacing (half the coarse one) in world units.

    Returns:
        ``(cells, corner_index, points, values)`` on the fine lattice, same layout.
    """
    inside = values < level
    ci = inside[corner_index]
    active = ci.any(axis=1) & ~ci.all(axis=1)
    if MISE_BAND > 0:
        h = 2.0 * h_fine
        cv = values[corner_index]  # (M, 8)
        with np.errstate(invalid="ignore"):
            slope = np.abs(cv[:, EDGE_HIGH] - cv[:, EDGE_LOW]) / h  # (M, 12)
        slope = slope[np.isfinite(slope)]
        if slope.size:
            lip = float(np.percentile(slope, 90))
            gap = np.where(np.isfinite(cv), np.abs(cv - level), np.inf).min(axis=1)
            active |= gap <= MISE_BAND * lip * h
    if not active.any():
        z = np.zeros((0, 3), dtype=np.int64)
        return z, np.zeros((0, 8), dtype=np.int64), z, np.zeros(0)

    ckeys_packer = LatticeKeys(cells.min(axis=0) - 1, cells.max(axis=0) + 1)
    cell_keys = ckeys_packer.pack(cells)  # sorted: cells are sorted lexicographically
    fine = LatticeKeys(2 * (cells.min(axis=0) - 1), 2 * (cells.max(axis=0) + 1) + 2)
    coarse_pt_keys = fine.pack(2 * points)  # sorted as well
    cache_keys = np.zeros(0, dtype=np.int64)
    cache_vals = np.zeros(0, dtype=np.float64)

    while True:
        parents = cells[active]
        fcells = (2 * parents[:, None, :] + CORNERS[None, :, :]).reshape(-1, 3)
        order = np.argsort(fine.pack(fcells), kind="stable")
        fcells = fcells[order]
        uk, inv = np.unique(fine.pack(fcells[:, None, :] + CORNERS[None, :, :]), return_inverse=True)
        fidx = inv.reshape(-1, 8).astype(np.int64)

        fvals = np.empty(uk.shape[0], dtype=np.float64)
        idx, found = lookup(coarse_pt_keys, uk)
        fvals[found] = values[idx[found]]
        rest = np.flatnonzero(~found)
        idx2, found2 = lookup(cache_keys, uk[rest])
        fvals[rest[found2]] = cache_vals[idx2[found2]]
        new = rest[~found2]
        if new.size:
            fvals[new] = sample(fine.unpack(uk[new]), h_fine)
            cache_keys = np.concatenate([cache_keys, uk[new]])
            cache_vals = np.concatenate([cache_vals, fvals[new]])
            o = np.argsort(cache_keys, kind="stable")
            cache_keys, cache_vals = cache_keys[o], cache_vals[o]

        # closure: fine faces with a sign change on the border of the refined region
        fin = (fvals < level)[fidx]  # (Mf, 8)
        straddle = fin.any(axis=1) & ~fin.all(axis=1)
        add = []
        for d in range(3):
            for s in (0, 1):
                on_face = ((np.arange(8) >> d) & 1) == s
                f = fin[:, on_face]
                change = straddle & f.any(axis=1) & ~f.all(axis=1)
                if not change.any():
                    continue
                nb = fcells[change].copy()
                nb[:, d] += 2 * s - 1
                par = np.floor_divide(nb, 2)
                crossing = par[:, d] != np.floor_divide(fcells[change][:, d], 2)
                if not crossing.any():
                    continue
                pi, pf = lookup(cell_keys, ckeys_packer.pack(par[crossing]))
                pi = pi[pf]
                add.append(pi[~active[pi]])
        add_idx = np.unique(np.concatenate(add)) if add else np.zeros(0, dtype=np.int64)
        if add_idx.size == 0:
            break
        active[add_idx] = True

    return fcells, fidx, fine.unpack(uk), fvals


def polygonise(
    corner_index: np.ndarray,
    points: np.ndarray,
    values: np.ndarray,
    origin: np.ndarray,
    h: float,
    level: float = 0.0,
) -> Mesh:
    """Marching cubes over a sparse cell set whose corners are already sampled.

    A corner is inside when ``value < level`` (a value exactly at the level is outside,
    non-finite values count as outside). One vertex per crossed lattice edge, at
    ``origin + h * (p_low + t * e_axis)``, ``t = (level - v_low) / (v_high - v_low)``
    (``t = 0.5`` if a value is not finite); vertices with ``t`` of exactly 0 or 1 (a corner
    value equal to the level) are merged into one vertex per lattice point, and faces that
    become degenerate (repeated vertex or zero area) are dropped.

    Args:
        corner_index: (M, 8) int64 index into ``points`` of each cube's corners.
        points: (P, 3) int64 lattice coordinates.
        values: (P,) float64 field values.
        origin: (3,) float64 world position of lattice point (0, 0, 0).
        h: lattice spacing in world units.
        level: iso level.

    Returns:
        The mesh: float64 world-unit vertices, int64 faces counter-clockwise seen from the
        positive side (normals towards increasing values).
    """
    tri, ntri = build_tables()
    inside = values < level
    case = (inside[corner_index].astype(np.int64) << np.arange(8, dtype=np.int64)).sum(axis=1)
    nt = ntri[case]
    cell_of, local = [], []
    for t in range(tri.shape[1]):
        sel = np.flatnonzero(nt > t)
        if sel.size == 0:
            break
        cell_of.append(sel)
        local.append(tri[case[sel], t])
    if not cell_of:
        return empty_mesh()
    cell = np.concatenate(cell_of)  # (T,)
    le = np.concatenate(local)  # (T, 3) local edges
    lo = corner_index[cell[:, None], EDGE_LOW[le]]  # (T, 3) point ids
    hi = corner_index[cell[:, None], EDGE_HIGH[le]]
    ekey = lo * 3 + EDGE_AXIS[le]  # a lattice edge is its low point and its axis
    uek, first, inv = np.unique(ekey.ravel(), return_index=True, return_inverse=True)
    elo = lo.ravel()[first]
    ehi = hi.ravel()[first]
    v0, v1 = values[elo], values[ehi]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (level - v0) / (v1 - v0)
    t = np.where(np.isfinite(v0) & np.isfinite(v1), t, 0.5)
    t = np.clip(t, 0.0, 1.0)
    # a vertex exactly on a lattice point is keyed by that point (shared by all its edges)
    at_lo, at_hi = t <= 0.0, t >= 1.0
    vkey = np.where(at_lo, elo * 4 + 3, np.where(at_hi, ehi * 4 + 3, elo * 4 + uek % 3))
    uvk, vfirst, vinv = np.unique(vkey, return_index=True, return_inverse=True)
    e = vfirst
    p0 = points[elo[e]].astype(np.float64)
    p1 = points[ehi[e]].astype(np.float64)
    verts = origin + h * (p0 + t[e, None] * (p1 - p0))
    faces = vinv.reshape(-1)[inv.reshape(-1)].reshape(-1, 3)
    return _drop_degenerate(Mesh(verts, faces))


def _drop_degenerate(mesh: Mesh) -> Mesh:
    """Drop faces with a repeated vertex or exactly zero area, then unused vertices."""

    f = mesh.faces
    ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])
    v = mesh.vertices
    cr = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    ok &= np.any(cr != 0.0, axis=1)
    if ok.all():
        return mesh
    return remove_unreferenced_vertices(Mesh(v, f[ok]))


def sparse_marching_mesh(
    evaluate: Evaluate,
    cells: np.ndarray,
    origin: np.ndarray,
    cell_size: float,
    *,
    level: float = 0.0,
    upsample: int = 1,
    mise_iter: int = 0,
    batch_size: int = 262144,
    progress: Progress | None = None,
) -> Mesh:
    """Mesh the ``level`` set of a field sampled only on a sparse set of cubes.

    Steps: (1) each cell is split into ``upsample**3`` sub-cells; (2) the unique corner
    lattice points of all cells are sampled once; (3) ``mise_iter`` times, the cells whose
    corners straddle the level, plus those within the safety band :data:`MISE_BAND` and the
    closure described in :func:`_refine`, are split
    into 8 and only the new corner points are sampled; (4) the final cells are polygonised
    by marching cubes (:func:`polygonise`). The final lattice spacing is
    ``cell_size / upsample / 2**mise_iter``.

    Args:
        evaluate: maps (K, 3) float64 world positions to (K,) field values (negative
            inside); called with at most ``batch_size`` points at a time. A torch tensor
            result is accepted.
        cells: (M, 3) integer cube coordinates; cube ``c`` spans
            ``[origin + c * cell_size, origin + (c + 1) * cell_size]``. Duplicates allowed.
        origin: (3,) float64 world position of lattice point (0, 0, 0).
        cell_size: cube edge length in world units (> 0).
        level: iso level (a value exactly at the level counts as outside).
        upsample: integer >= 1 sub-division of each input cell before sampling.
        mise_iter: number of MISE refinement levels (>= 0).
        batch_size: largest number of points per ``evaluate`` call.
        progress: optional progress reporter.

    Returns:
        The mesh in world units, faces counter-clockwise seen from the positive side, no
        duplicated vertices; empty (0 faces) when the field never crosses the level.
        Watertight wherever the cell set encloses the surface; open where the surface leaves
        the cell set.

    Raises:
        ValueError: for invalid arguments or an ``evaluate`` returning the wrong length.
        ReconError: when the final lattice spans more than 2**21 steps on an axis.
    """
    progress = progress or NULL_PROGRESS
    if not cell_size > 0:
        raise ValueError(f"cell_size must be > 0, got {cell_size}")
    if int(upsample) != upsample or upsample < 1:
        raise ValueError(f"upsample must be an integer >= 1, got {upsample}")
    if int(mise_iter) != mise_iter or mise_iter < 0:
        raise ValueError(f"mise_iter must be an integer >= 0, got {mise_iter}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    upsample, mise_iter = int(upsample), int(mise_iter)
    origin = np.asarray(origin, dtype=np.float64).reshape(3)
    cells = np.asarray(cells).reshape(-1, 3)
    if cells.shape[0] == 0:
        return empty_mesh()
    if not np.issubdtype(cells.dtype, np.integer):
        raise ValueError(f"cells must be integers, got {cells.dtype}")
    cells = _unique_cells(cells.astype(np.int64))
    h = float(cell_size)
    if upsample > 1:
        sub = np.stack(np.meshgrid(*(np.arange(upsample),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
        cells = _unique_cells((cells[:, None, :] * upsample + sub[None]).reshape(-1, 3))
        h /= upsample

    sample = _Sampler(evaluate, origin, batch_size, progress)
    points, corner_index, _ = _cell_corners(cells)
    values = sample(points, h)
    for it in range(mise_iter):
        progress.update("mesh: refine", it / mise_iter, f"level {it + 1}/{mise_iter}")
        h /= 2.0
        cells, corner_index, points, values = _refine(sample, cells, corner_index, points, values, level, h)
        if cells.shape[0] == 0:
            return empty_mesh()
    progress.update("mesh: polygonise", None)
    mesh = polygonise(corner_index, points, values, origin, h, level)
    return mesh
