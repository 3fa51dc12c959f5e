"""The scale of a kernel problem: the finest voxel size from the point density (the detail
rule, shared by the in-memory and the batch paths) and the memory guard."""

from __future__ import annotations

import contextlib
import math
from typing import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from recon.allocator import reuse_freed_memory
from recon.backends.kernel.svh import COORD_LIMIT, count_unique_cells, splat_keys
from recon.errors import ConfigError

MIN_POINTS_PER_VOXEL = 1.0
MAX_POINTS_PER_VOXEL = 20.0


#: Problems up to this many unknowns (voxels, all levels) reuse freed memory (:mod:`recon.allocator`).
#: Above it the heap, which cannot return or merge blocks the way separate mappings can, fragmented:
#: 3M points (1.0M unknowns) peaked at 7.4 GB in one run and 11 GB in another, against 6.5 GB with
#: fresh mappings. 1M points (0.33M unknowns) peak at about 3 GB either way and run 1.5-1.8x faster.
REUSE_MAX_UNKNOWNS = 500_000


def worth_reusing(unknowns: int) -> bool:
    """Whether a kernel problem of ``unknowns`` voxels should keep freed memory for reuse."""
    return unknowns <= REUSE_MAX_UNKNOWNS


def memory_reuse(levels: Sequence) -> contextlib.AbstractContextManager[bool]:
    """:func:`recon.allocator.reuse_freed_memory` for a hierarchy of this size (a no-op when too large)."""
    return reuse_freed_memory(worth_reusing(sum(len(lv) for lv in levels)))


def target_density(detail: float) -> float:
    """Points per finest voxel for a detail level in [0, 1] (20 at 0, 1 at 1)."""
    return MIN_POINTS_PER_VOXEL + (MAX_POINTS_PER_VOXEL - MIN_POINTS_PER_VOXEL) * (1.0 - detail)


#: Occupied finest voxels per unit of (surface area / h^2) at the density rule's target density:
#: 1.28 is the median over the 18 benchmark meshes (200k clean samples) of the rule that counted
#: occupied voxels directly, so clean inputs keep the voxel size they had (within a few %).
OCCUPANCY = 1.28
#: Neighbours and subsample size of :func:`surface_area`.
AREA_NEIGHBOURS = 8
AREA_SAMPLES = 20_000


def surface_area(points: torch.Tensor, k: int = AREA_NEIGHBOURS, max_samples: int = AREA_SAMPLES,
                 seed: int = 0) -> float:
    """Estimated area of the sampled surface (world units^2) from k-nearest-neighbour spacing.

    On a random subsample of at most ``max_samples`` points, each point's share of the surface is
    pi r_k^2 / k (r_k: distance to its k-th neighbour; unbiased for a uniform sample of a plane),
    and the area is their sum; r_k^2 is clipped at its 99th percentile so isolated outliers do
    not count as surface. Unlike counting occupied voxels it hardly grows with position noise
    (sigma 0.005 on the unit-size benchmark shapes: area +17 %, so h +8 %; the occupied-voxel
    rule gave those inputs voxels 1.3-2x coarser than clean), and unlike the bounding box it
    sees that a thin bar has little surface.

    Args:
        points: (N, 3) float32 positions (any device, world units).
        k: neighbours.
        max_samples: subsample size (the cost is a k-d tree of this many points: ~30 ms).
        seed: subsample seed.

    Returns:
        The area estimate (with k = N - 1 for fewer than k + 1 points); 0.0 for fewer than 2 points.
    """
    n = len(points)
    k = min(k, n - 1)
    if k < 1:
        return 0.0
    if n > max_samples:
        pick = torch.from_numpy(np.random.default_rng(seed).choice(n, max_samples, replace=False))
        sample = points[pick.to(points.device)]
    else:
        sample = points
    s = sample.detach().cpu().numpy().astype(np.float64)
    d, _ = cKDTree(s).query(s, k + 1)
    r2 = d[:, k] ** 2
    r2 = np.minimum(r2, np.quantile(r2, 0.99))
    return float(np.pi * r2.sum() / k)


def voxel_size_for_area(n_points: float, area: float, detail: float, min_resolution: float | None = None,
                        cap_area: float | None = None) -> float:
    """The detail rule: the finest voxel edge (world units) giving ``target_density(detail)`` points
    per occupied voxel. Every kernel path (plain, learned, chunked, batch) sizes its voxels here.

    A surface of area A sampled by N points occupies about OCCUPANCY * A / h^2 voxels of edge h,
    so h = sqrt(OCCUPANCY * target * A / N). With ``min_resolution`` R the result is capped at
    sqrt(A_cap) / R: sparse inputs otherwise get voxels far coarser than their sample spacing
    allows (5k points on a unit bunny: h = 0.06 by density, best ~0.015), and the cap follows the
    surface, not the bounding box (a 1 x 0.16 x 0.05 bar with 5k points wants h ~ 0.005, a bunny
    with as many points 0.015).

    Args:
        n_points: N.
        area: A, world units^2 (:func:`surface_area` on the points, or a streamed estimate).
        detail: in [0, 1].
        min_resolution: R, at least this many finest voxels along sqrt(A_cap) (None: no cap).
        cap_area: A_cap, the area the cap is measured on (None: ``area``).

    Returns:
        h; 1.0 when there is no point or no area (the callers then report coincident points).
    """
    if n_points == 0 or not area > 0:
        return 1.0
    h = math.sqrt(OCCUPANCY * target_density(detail) * area / n_points)
    if min_resolution:
        h = min(h, math.sqrt(area if cap_area is None else cap_area) / min_resolution)
    return h


def voxel_size_from_detail(points: torch.Tensor, detail: float, min_resolution: float | None = None) -> float:
    """:func:`voxel_size_for_area` of points held in memory (area from :func:`surface_area`).

    Args:
        points: (N, 3) float32 positions (any frame, world units).
        detail: in [0, 1].
        min_resolution: see :func:`voxel_size_for_area`.
    """
    return voxel_size_for_area(len(points), surface_area(points), detail, min_resolution)


def check_memory(points: torch.Tensor, voxel_size: float, depth: int, max_voxels: int) -> int:
    """Estimate the number of voxels of all levels and refuse when above ``max_voxels``.

    Cheap first: 8 voxels per occupied finest cell is an upper bound of level 0. When that
    bound is too large the level-0 splat is counted exactly (hashed, no dense grid).

    Returns:
        the estimated number of voxels.

    Raises:
        ConfigError: the coordinates do not fit the hash or the estimate exceeds ``max_voxels``;
            the message suggests a voxel size.
    """
    ext = float((points.max(0).values - points.min(0).values).max()) if len(points) else 0.0
    centre = 0.5 * (points.max(0).values + points.min(0).values) if len(points) else 0.0
    extent_voxels = 0.5 * ext / voxel_size + float(centre.abs().max() / voxel_size if len(points) else 0.0)
    if extent_voxels + 4 >= COORD_LIMIT:
        h = 2.5 * ext / COORD_LIMIT
        raise ConfigError(f"voxel_size {voxel_size:g} is too small for an extent of {ext:g} (over {COORD_LIMIT} "
                          f"voxels per axis)", None, f"use voxel_size >= {h:.3g} or chunk_size")
    est = estimate_voxels(points, voxel_size, depth, max_voxels)
    if est > max_voxels:
        suggest, est_s = voxel_size, est
        for _ in range(40):  # grow until the estimate fits (isolated points do not scale as h^-2)
            suggest = _round_up(suggest * max(1.25, math.sqrt(est_s / max_voxels) * 1.05))
            est_s = estimate_voxels(points, suggest, depth, max_voxels)
            if est_s <= 0.9 * max_voxels:  # margin: counts are not monotonic in h
                break
        raise ConfigError(f"voxel_size {voxel_size:g} needs about {int(est):,} voxels, above max_voxels "
                          f"{max_voxels:,}", None, f"use voxel_size >= {suggest:.3g} (or lower detail, or set "
                          f"chunk_size, or raise max_voxels)")
    return int(est)


def _round_up(x: float) -> float:
    """x rounded up to 3 significant digits."""
    step = 10.0 ** (math.floor(math.log10(x)) - 2)
    return math.ceil(x / step - 1e-9) * step


def estimate_voxels(points: torch.Tensor, voxel_size: float, depth: int, max_voxels: int) -> float:
    """Estimated voxels of all levels: 8 x occupied cells (cheap bound), exact level-0 count when large."""
    u = points / voxel_size
    occ = count_unique_cells(u)
    factor = sum(4.0 ** -d for d in range(depth))  # surfaces: each level ~1/4 of the previous
    est = 8.0 * occ * factor
    if est > max_voxels:
        v0 = int(torch.unique(torch.cat([torch.unique(splat_keys(u[i:i + 2_000_000], 0))
                                         for i in range(0, len(u), 2_000_000)])).numel())
        est = v0 * factor
    return est
