"""Analytic fields and small mesh metrics shared by the meshing tests."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

CENTRE = np.array([0.13, -0.07, 0.21])
RADIUS = 0.5


def sphere_sdf(x: np.ndarray, c: np.ndarray = CENTRE, r: float = RADIUS) -> np.ndarray:
    """(K, 3) -> (K,) signed distance to a sphere, negative inside."""
    return np.linalg.norm(x - c, axis=1) - r


def torus_sdf(x: np.ndarray, big: float = 0.5, small: float = 0.2) -> np.ndarray:
    """(K, 3) -> (K,) signed distance to a torus around the z axis centred at CENTRE."""
    p = x - CENTRE
    q = np.linalg.norm(p[:, :2], axis=1) - big
    return np.hypot(q, p[:, 2]) - small


def grid_cells(lo: int, hi: int) -> np.ndarray:
    """(M, 3) int64 all cells with coordinates in [lo, hi) on each axis."""
    ax = np.arange(lo, hi)
    return np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1).reshape(-1, 3)


def band_cells(sdf, origin: np.ndarray, h: float, lo: int, hi: int, width: float) -> np.ndarray:
    """Cells of [lo, hi)^3 whose centre is within ``width`` cells of the zero level."""
    cells = grid_cells(lo, hi)
    centre = origin + (cells + 0.5) * h
    return cells[np.abs(sdf(centre)) < width * h]


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance between (Na, 3) and (Nb, 3) point sets."""
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float(0.5 * (da.mean() + db.mean()))


def max_nn(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a point of ``a`` to its nearest point of ``b``."""
    d, _ = cKDTree(b).query(a)
    return float(d.max())
