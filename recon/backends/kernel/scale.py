"""Finest voxel size from the point density (detail rule) and the memory guard."""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch

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
    from recon.allocator import reuse_freed_memory

    return reuse_freed_memory(worth_reusing(sum(len(lv) for lv in levels)))


def target_density(detail: float) -> float:
    """Points per finest voxel for a detail level in [0, 1] (20 at 0, 1 at 1)."""
    return MIN_POINTS_PER_VOXEL + (MAX_POINTS_PER_VOXEL - MIN_POINTS_PER_VOXEL) * (1.0 - detail)


def voxel_size_from_detail(points: torch.Tensor, detail: float, iterations: int = 3,
                           min_resolution: float | None = None) -> float:
    """Finest voxel edge (world units) giving ``target_density(detail)`` points per occupied voxel.

    The density of a surface sample scales with h^2, so h <- h * sqrt(target / current),
    repeated a few times from a probe of 1/64 of the longest bounding-box side. With
    ``min_resolution`` the result is capped at ``extent / min_resolution``: sparse inputs
    (a few thousand points) otherwise get voxels far coarser than their sample spacing
    allows (5k points on a unit bunny: h = 0.07 from the density rule, best h ~ 0.013).

    Args:
        points: (N, 3) float32 positions (any frame, world units).
        detail: in [0, 1].
        min_resolution: at least this many finest voxels along the longest bounding-box side (None: no cap).
    """
    n = len(points)
    ext = float((points.max(0).values - points.min(0).values).max())
    if n == 0 or not ext > 0:
        return 1.0
    cap = ext / min_resolution if min_resolution else math.inf
    h = ext / 64.0
    target = target_density(detail)
    for _ in range(iterations):
        occ = count_unique_cells(points / h)
        h_new = h * math.sqrt(target / (n / occ))
        if abs(h_new / h - 1) < 0.02:
            return min(h_new, cap)
        h = h_new
    return min(h, cap)


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
