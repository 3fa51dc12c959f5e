"""Inside/outside cue for normal signs from a voxel occupancy grid of the cloud.

Each point splats a small disc in its (unoriented) tangent plane into a voxel grid, so
the occupied voxels form a hole-free shell without thickening the surface along its
normal. Free voxels connected (6-neighbourhood) to the grid's border are *outside*;
enclosed free components are *inside* (tiny enclosed pockets, which noise leaves in
the shell, count as occupied). A short probe from each point along +n and along -n
stops at the first free voxel; the side whose first free voxel is outside is the
outward side. A point votes ``+1`` when only +n reaches outside, ``-1`` when only -n
does, and ``0`` otherwise (open surfaces, where both sides are outside; parts thinner
than about two voxels, where a probe crosses to the far side; probes that stay inside
the shell).

Everything is vectorised over points; the only Python loops run over the fixed
number of splat offsets and probe steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Most voxels of the grid (memory: 1 byte occupancy + 4 bytes labels per voxel).
VOXEL_BUDGET = 1 << 24
#: Grid levels, finest first: (voxel edge as a fraction of the median splat radius, voxel budget).
#: The fine level resolves thin parts but leaks (holes in the shell) on sparse or irregular
#: samples; the coarse one is closed on those. Each point takes the first level that is sure.
LEVELS = ((0.5, VOXEL_BUDGET), (1.0, VOXEL_BUDGET >> 2))
#: Enclosed free components with fewer voxels than this count as occupied.
MIN_POCKET = 8
#: Probe steps (each ``PROBE_STEP`` voxels long) along +n and -n.
PROBE_STEPS = 8
PROBE_STEP = 0.5
#: Splat disc: rings at these fractions of the point's radius, ``SPLAT_ANGLES`` samples each.
SPLAT_RINGS = (0.35, 0.7)
SPLAT_ANGLES = 8


@dataclass
class SideGrid:
    """A voxel grid of inside/outside labels.

    Attributes:
        origin: (3,) float64 world position of voxel (0, 0, 0)'s lower corner.
        h: voxel edge, world units.
        state: (X, Y, Z) int8: 1 occupied, 2 free outside, 3 free inside.
    """

    origin: np.ndarray
    h: float
    state: np.ndarray


OCCUPIED, OUTSIDE, INSIDE = 1, 2, 3


def tangent_basis(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two (N, 3) float64 unit vectors spanning the plane orthogonal to each (N, 3) unit normal."""
    n = np.asarray(normals, dtype=np.float64)
    helper = np.where((np.abs(n[:, 0]) < 0.9)[:, None], [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    t1 = np.cross(n, helper)
    t1 /= np.maximum(np.linalg.norm(t1, axis=1, keepdims=True), 1e-30)
    return t1, np.cross(n, t1)


def build_side_grid(points: np.ndarray, normals: np.ndarray, radius: np.ndarray,
                    budget: int = VOXEL_BUDGET, voxel_per_radius: float = 1.0) -> SideGrid:
    """Occupancy of tangent discs, then outside/inside labels of the free voxels.

    Args:
        points: (N, 3) positions, world units.
        normals: (N, 3) unit normals (sign irrelevant).
        radius: (N,) splat disc radius per point (e.g. distance to the k-th neighbour), world units.
        budget: most voxels in the grid; the voxel grows beyond ``voxel_per_radius * median(radius)``
            when the bounding box would need more.
        voxel_per_radius: voxel edge as a fraction of the median radius.

    Returns:
        The labelled :class:`SideGrid`.
    """
    p = np.asarray(points, dtype=np.float64)
    r = np.minimum(np.asarray(radius, dtype=np.float64), 3.0 * float(np.median(radius)))
    lo, hi = p.min(axis=0), p.max(axis=0)
    h = max(float(voxel_per_radius) * float(np.median(r)), 1e-12)
    for _ in range(2):  # the margin depends on h; two rounds settle it
        pad = float(r.max()) + 2.0 * h
        ext = hi - lo + 2.0 * pad
        h = max(h, float(np.prod(ext) / budget) ** (1.0 / 3.0), float(ext.max()) / 2048.0)
    pad = float(r.max()) + 2.0 * h
    origin = lo - pad
    shape = tuple(int(s) for s in np.ceil((hi - lo + 2.0 * pad) / h).astype(np.int64) + 1)
    occ = np.zeros(shape, dtype=bool)
    t1, t2 = tangent_basis(normals)
    offsets = [(0.0, 0.0)] + [(f * np.cos(a), f * np.sin(a)) for f in SPLAT_RINGS
                              for a in np.arange(SPLAT_ANGLES) * (2 * np.pi / SPLAT_ANGLES)]
    lim = np.array(shape) - 1
    for u, v in offsets:  # a fixed set of disc samples, each vectorised over all points
        q = p + (u * r)[:, None] * t1 + (v * r)[:, None] * t2
        ijk = np.clip(np.floor((q - origin) / h).astype(np.int64), 0, lim)
        occ[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    labels, n_lab = ndimage.label(~occ)  # 6-connected free components
    sizes = np.bincount(labels.ravel(), minlength=n_lab + 1)
    kind = np.full(n_lab + 1, INSIDE, dtype=np.int8)
    kind[0] = OCCUPIED
    kind[(sizes < MIN_POCKET)] = OCCUPIED
    border = np.unique(np.concatenate([labels[[0, -1], :, :].ravel(), labels[:, [0, -1], :].ravel(),
                                       labels[:, :, [0, -1]].ravel()]))
    kind[border[border > 0]] = OUTSIDE
    state = kind[labels]
    return SideGrid(origin=origin, h=h, state=state)


def first_free_state(grid: SideGrid, points: np.ndarray, directions: np.ndarray,
                     steps: int = PROBE_STEPS, step: float = PROBE_STEP) -> np.ndarray:
    """State of the first free voxel met along ``p + t d``, t = step * h * (1..steps).

    Args:
        grid: a labelled grid from :func:`build_side_grid`.
        points: (M, 3) probe origins, world units.
        directions: (M, 3) unit directions.
        steps: samples along each probe.
        step: sample spacing in voxels.

    Returns:
        (M,) int8: OUTSIDE or INSIDE (first free voxel's kind), or OCCUPIED when every sample
        was occupied. Samples leaving the grid count as OUTSIDE.
    """
    p = np.asarray(points, dtype=np.float64)
    d = np.asarray(directions, dtype=np.float64)
    shape = np.array(grid.state.shape)
    res = np.full(p.shape[0], OCCUPIED, dtype=np.int8)
    todo = np.arange(p.shape[0])
    for j in range(1, steps + 1):  # a fixed number of steps, vectorised over the open probes
        if todo.size == 0:
            break
        ijk = np.floor((p[todo] + (j * step * grid.h) * d[todo] - grid.origin) / grid.h).astype(np.int64)
        inside_grid = np.all((ijk >= 0) & (ijk < shape), axis=1)
        s = np.full(todo.size, OUTSIDE, dtype=np.int8)
        g = ijk[inside_grid]
        s[inside_grid] = grid.state[g[:, 0], g[:, 1], g[:, 2]]
        hit = s != OCCUPIED
        res[todo[hit]] = s[hit]
        todo = todo[~hit]
    return res


def side_votes(points: np.ndarray, normals: np.ndarray, radius: np.ndarray,
               levels: tuple[tuple[float, int], ...] = LEVELS) -> np.ndarray:
    """Per-point vote on the sign of its normal: +1 (n points outside), -1 (-n does), 0 (unsure).

    A vote is sure when one side's first free voxel is outside and the other side's is
    inside (an enclosed component); the finest level that is sure decides.

    Args:
        points: (N, 3) positions, world units.
        normals: (N, 3) unit normals with the signs to judge.
        radius: (N,) splat radius per point, world units (see :func:`build_side_grid`).
        levels: (voxel_per_radius, budget) per grid level, finest first.

    Returns:
        (N,) int8 votes.
    """
    p = np.asarray(points, dtype=np.float64)
    n = np.asarray(normals, dtype=np.float64)
    votes = np.zeros(p.shape[0], dtype=np.int8)
    last_h = -1.0
    for frac, budget in levels:  # a few grid levels
        todo = np.flatnonzero(votes == 0)
        if todo.size == 0:
            break
        grid = build_side_grid(p, n, radius, budget, frac)
        if grid.h <= last_h * 1.01:  # the budget made this level no coarser than the last
            continue
        last_h = grid.h
        plus = first_free_state(grid, p[todo], n[todo])
        minus = first_free_state(grid, p[todo], -n[todo])
        v = ((plus == OUTSIDE) & (minus == INSIDE)).astype(np.int8) - ((minus == OUTSIDE) & (plus == INSIDE))
        votes[todo] = v
    return votes


__all__ = ["INSIDE", "LEVELS", "OCCUPIED", "OUTSIDE", "SideGrid", "build_side_grid", "first_free_state",
           "side_votes", "tangent_basis"]
