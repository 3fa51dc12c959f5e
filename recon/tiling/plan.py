"""Pass 1 and the tile plan: bounds and point counts per grid cell, then voxel size and tile size.

Pass 1 (:func:`count_piece`, one task per piece) reads a piece in chunks and returns its
bounds and the point counts on an absolute power-of-two grid (cell ``G = 2**k`` world units,
anchored at 0, so grids of different pieces nest and merge exactly; a piece coarsens its
grid until it has at most :data:`MAX_PIECE_CELLS` occupied cells). :class:`CountGrid` merges
them as they arrive, coarsening to stay under :data:`MAX_GRID_CELLS`; the driver never holds
points, only this grid.

:func:`make_lattice` then picks the finest voxel ``h`` (the kernel's detail rule,
:func:`recon.backends.kernel.scale.voxel_size_for_area`, fed with areas read off the counts, unless
given), the lattice origin, the blend margin and the tile edge: the largest
multiple of the coarsest voxel for which the fullest shard (core + margin) holds at most
``max_tile_points`` points (or the given ``tile_size``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from recon.backends.kernel.frontend import check_spread
from recon.backends.kernel.scale import OCCUPANCY, target_density, voxel_size_for_area
from recon.errors import ConfigError, InputError
from recon.tiling.cloudcheck import Moments
from recon.tiling.lattice import Lattice, unique_rows
from recon.tiling.streams import Piece, iter_chunks

MAX_PIECE_CELLS = 300_000
"""A piece's count grid is coarsened until it has at most this many occupied cells."""
MAX_GRID_CELLS = 2_000_000
"""The merged count grid is coarsened until it has at most this many occupied cells."""
_TARGET_CELLS_PER_AXIS = 512
MAX_AXIS_VOXELS = 2 ** 31
"""Most finest voxels across the scene, a tile or the overlap (lattice indices stay far inside int64)."""
MAX_TILES = 100_000
"""Most tiles a job may have (each is a task, a manifest row and a folder of files)."""


@dataclass
class PieceStats:
    """Result of pass 1 on one piece.

    Attributes:
        piece: piece index.
        points: finite points read.
        dropped: rows dropped for a non-finite coordinate.
        lo, hi: (3,) float64 bounds of the finite points (inf/-inf when none).
        level: grid exponent k (cell G = 2**k world units).
        cells: (C, 3) int64 occupied cells floor(xyz / G).
        counts: (C,) int64 points per cell.
        moments: mean and scatter of the finite points (for the collinearity check).
    """

    piece: int
    points: int
    dropped: int
    lo: np.ndarray
    hi: np.ndarray
    level: int
    cells: np.ndarray
    counts: np.ndarray
    moments: Moments = field(default_factory=Moments)


def _aggregate(cells: np.ndarray, counts: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts on the grid 2**shift times coarser (floor division nests power-of-two grids)."""
    if len(cells) == 0:
        return cells, counts
    c = np.floor_divide(cells, 2 ** shift) if shift > 0 else cells
    u, inv = unique_rows(c)
    return u, np.bincount(inv, weights=counts, minlength=len(u)).astype(np.int64)


def count_piece(piece: Piece, chunk_points: int = 1_000_000) -> PieceStats:
    """Pass 1 on one piece: bounds and counts per cell (a Dask task; holds one chunk at a time)."""
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    n = dropped = 0
    level: int | None = None
    cells = np.zeros((0, 3), np.int64)
    counts = np.zeros(0, np.int64)
    moments = Moments()
    for ch in iter_chunks(piece, chunk_points):
        dropped += ch.dropped
        if len(ch.xyz) == 0:
            continue
        n += len(ch.xyz)
        moments = moments.merged(Moments.of(ch.xyz))
        lo = np.minimum(lo, ch.xyz.min(0))
        hi = np.maximum(hi, ch.xyz.max(0))
        if level is None:  # the first chunk fixes the finest grid of this piece
            ext = max(float((hi - lo).max()), 1e-9)
            level = int(math.floor(math.log2(ext / _TARGET_CELLS_PER_AXIS)))
        c, k = _aggregate(np.floor(ch.xyz / 2.0 ** level).astype(np.int64), np.ones(len(ch.xyz), np.int64), 0)
        cells, counts = _aggregate(np.concatenate([cells, c]), np.concatenate([counts, k]), 0)
        while len(cells) > MAX_PIECE_CELLS:
            cells, counts = _aggregate(cells, counts, 1)
            level += 1
    return PieceStats(piece.index, n, dropped, lo, hi, 0 if level is None else level, cells, counts, moments)


@dataclass
class CountGrid:
    """Merged pass-1 statistics of all pieces (the only thing the driver keeps of the points)."""

    points: int = 0
    dropped: int = 0
    lo: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    hi: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))
    level: int | None = None
    cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    moments: Moments = field(default_factory=Moments)

    @property
    def cell(self) -> float:
        """Grid cell G, world units."""
        return 2.0 ** (self.level or 0)

    def add(self, s: PieceStats) -> None:
        """Merge one piece's statistics."""
        self.points += s.points
        self.dropped += s.dropped
        self.lo = np.minimum(self.lo, s.lo)
        self.hi = np.maximum(self.hi, s.hi)
        self.moments = self.moments.merged(s.moments)
        if s.points == 0:
            return
        cells, counts, level = s.cells, s.counts, s.level
        if self.level is None:
            self.level = level
        if level > self.level:  # coarsen what we have
            self.cells, self.counts = _aggregate(self.cells, self.counts, level - self.level)
            self.level = level
        elif level < self.level:
            cells, counts = _aggregate(cells, counts, self.level - level)
        self.cells, self.counts = _aggregate(np.concatenate([self.cells, cells]),
                                             np.concatenate([self.counts, counts]), 0)
        while len(self.cells) > MAX_GRID_CELLS:
            self.cells, self.counts = _aggregate(self.cells, self.counts, 1)
            self.level += 1

    def to_dict(self) -> dict:
        return {"points": int(self.points), "dropped": int(self.dropped), "lo": self.lo.tolist(),
                "hi": self.hi.tolist(), "cell": self.cell, "occupied_cells": int(len(self.cells)),
                "spread": self.moments.singular_values().tolist()}


def density_area(grid: CountGrid, detail: float) -> float:
    """Surface area (world units^2) the count grid shows at the scale of the detail rule: the
    streamed stand-in for :func:`recon.backends.kernel.scale.surface_area` (which needs the points).

    A surface of area A holds about OCCUPANCY * A / s^2 occupied cells of size s, so each size s
    measures A(s) = occupied(s) s^2 / OCCUPANCY. The grid and its power-of-two coarsenings are
    counted until a cell holds ``target_density(detail)`` points on average; the size s* where that
    happens is interpolated log-log between the last two sizes (below the grid cell the surface
    law is extrapolated), and A(s*) = N s*^2 / (OCCUPANCY * target) is returned, so that
    :func:`voxel_size_for_area` gives h = s*.
    """
    target = target_density(detail)
    n = float(grid.counts.sum())
    cells, counts, g = grid.cells, grid.counts, grid.cell
    sizes, ppv = [], []
    for _ in range(40):
        sizes.append(g)
        ppv.append(n / max(len(cells), 1))
        if ppv[-1] >= target or len(cells) <= 1:
            break
        cells, counts = _aggregate(cells, counts, 1)
        g *= 2
    if len(sizes) == 1:  # the surface law below the grid cell
        s = float(sizes[-1] * math.sqrt(target / ppv[-1]))
    elif ppv[-1] < target:  # never reached (a few isolated points): the coarsest size counted
        s = float(sizes[-1])
    else:  # interpolate log(ppv) linearly in log(size) between the last two sizes
        x0, x1 = math.log(sizes[-2]), math.log(sizes[-1])
        y0, y1 = math.log(ppv[-2]), math.log(ppv[-1])
        t = (math.log(target) - y0) / (y1 - y0) if y1 > y0 else 1.0
        s = float(math.exp(x0 + t * (x1 - x0)))
    return n * s * s / (OCCUPANCY * target)


def grid_surface_area(grid: CountGrid) -> float:
    """Surface area (world units^2) the count grid's occupied cells suggest: cells * G^2 / OCCUPANCY.

    The area the ``min_resolution`` cap is measured on (as :func:`density_area`, at the finest size
    counted); within ~30 % (a surface crosses 1..1.5 cells per G^2 of area depending on its orientation).
    """
    return float(len(grid.cells)) * grid.cell ** 2 / OCCUPANCY


def grid_voxel_size(grid: CountGrid, detail: float, min_resolution: float | None) -> float:
    """The detail rule (:func:`voxel_size_for_area`) on the pass-1 counts, rounded to 3 significant digits."""
    h = voxel_size_for_area(float(grid.counts.sum()), density_area(grid, detail), detail,
                            min_resolution if len(grid.cells) else None, cap_area=grid_surface_area(grid))
    return _round_sig(h)


def _round_sig(x: float, digits: int = 3) -> float:
    """x rounded to ``digits`` significant digits (readable voxel sizes in logs and names)."""
    return float(f"{x:.{digits - 1}e}")


def shard_load(grid: CountGrid, lattice: Lattice) -> np.ndarray:
    """Estimated points per shard (core + margin) of every tile, from the count grid.

    Each grid cell's count goes to every tile whose shard box holds the cell centre.
    """
    centres = (grid.cells.astype(np.float64) + 0.5) * grid.cell
    pts, tiles, _ = lattice.memberships(centres)
    if len(pts) == 0:
        return np.zeros(0, np.int64)
    _, inv = unique_rows(tiles)
    return np.bincount(inv, weights=grid.counts[pts]).astype(np.int64)


def make_lattice(grid: CountGrid, *, depth: int, voxel_size: float | None, detail: float,
                 min_resolution: float | None, tile_size: float | None, overlap: float | None,
                 max_tile_points: int, shape: str = "auto") -> tuple[Lattice, dict]:
    """Choose the lattice (voxel size, origin, margin, tile edges) from the pass-1 counts.

    Tiles are columns spanning the scene's height when those fit the point budget (airborne
    scenes: one layer, the least margin overlap), else cubes.

    Args:
        grid: merged pass-1 statistics.
        depth: kernel hierarchy depth.
        voxel_size: finest voxel h (None: the density rule with ``detail``).
        detail, min_resolution: as in :class:`recon.backends.kernel.KernelConfig`.
        tile_size: wanted x/y tile edge, world units (rounded to the coarsest voxel), or None: the
            largest edge whose fullest shard holds at most ``max_tile_points`` points.
        overlap: blend half-width m, world units (None: 4 finest voxels, as the kernel's chunked mode).
        max_tile_points: the per-tile point budget (from the worker memory limit).
        shape: "auto" (columns when they fit the budget), "column" or "cube".

    Returns:
        The lattice and notes (estimated tiles, largest shard, how h was chosen).

    Raises:
        InputError: no finite point at all.
        ConfigError: options that cannot be met (overlap too wide for the tile size, ...).
    """
    if grid.points == 0:
        raise InputError("no finite points in the input", None, "check the files: every coordinate is NaN or infinite")
    notes: dict = {}
    if voxel_size is None:
        h = grid_voxel_size(grid, detail, min_resolution)
        notes["voxel_rule"] = f"density rule (detail {detail})"
    else:
        h = float(voxel_size)
        notes["voxel_rule"] = "given"
    extent = float(np.max(grid.hi - grid.lo))
    check_spread(h, extent)
    if extent / h > MAX_AXIS_VOXELS:
        raise ConfigError(f"voxel size {h:g} is too small for a scene {extent:g} wide ({extent / h:.3g} voxels across)",
                          None, f"use a larger --voxel-size (at least {extent / MAX_AXIS_VOXELS:.3g})")
    if overlap is not None and overlap / h > MAX_AXIS_VOXELS / 8:
        raise ConfigError(f"overlap {overlap:g} is {overlap / h:.3g} voxels wide", None,
                          "use an --overlap of a few voxels (default: 4)")
    coarse_vox = 2 ** (depth - 1)
    a = h * coarse_vox
    margin_vox = 4 if overlap is None else max(1, int(math.ceil(overlap / h - 1e-9)))
    shard_m = 2 * margin_vox * h
    lo = np.floor(grid.lo / a) * a
    # columns start a shard margin below the data and end one above, so no tile sits above or below
    lo_col = lo.copy()
    lo_col[2] = math.floor((grid.lo[2] - shard_m) / a) * a
    cover_z = int(math.floor((grid.hi[2] + shard_m - lo_col[2]) / a)) + 1
    n_min = (4 * margin_vox) // coarse_vox + 1  # 4 m < tile edge
    cover = np.floor((grid.hi - lo) / a).astype(np.int64) + 1  # cells covering each axis
    n_max = max(n_min, int(cover[:2].max()))

    def lattice(n: int, column: bool) -> Lattice:
        origin = tuple(float(v) for v in (lo_col if column else lo))
        return Lattice(origin, h, depth, (n, n, max(n, cover_z) if column else n), margin_vox)

    def fits(n: int, column: bool) -> bool:
        load = shard_load(grid, lattice(n, column))
        return bool(load.size == 0 or load.max() <= max_tile_points)

    if tile_size is not None:
        if tile_size / h > MAX_AXIS_VOXELS:
            raise ConfigError(f"tile size {tile_size:g} is {tile_size / h:.3g} voxels wide", None,
                              f"use a --tile-size near the scene's size ({extent:.4g}) or smaller")
        n = int(round(tile_size / a))
        if n < n_min:
            raise ConfigError(f"tile size {tile_size:g} is too small for an overlap of {margin_vox * h:g}", None,
                              f"use --tile-size >= {n_min * a:.4g} or a smaller --overlap")
        column = shape == "column" or (shape == "auto" and fits(n, True))
    else:
        column = shape == "column" or (shape == "auto" and fits(n_min, True))
        if fits(n_max, column):
            n = n_max
        elif not fits(n_min, column):
            n = n_min
            notes["warning"] = (f"even the smallest tile ({n_min * a:.4g} wide) holds more than {max_tile_points:,} "
                                "points; raise --memory-limit or --voxel-size")
        else:  # largest fitting n by bisection (the load grows with n)
            good, bad = n_min, n_max
            while bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (mid, bad) if fits(mid, column) else (good, mid)
            n = good
    lat = lattice(n, column)
    load = shard_load(grid, lat)
    # tiles smaller than a count-grid cell: a surface through a cell meets about (G / T)^2 of them
    ratios = np.sort(np.maximum(1.0, grid.cell / lat.tile_edge))
    tiles = max(float(load.size), len(grid.cells) * float(ratios[-1] * ratios[-2]))
    if tiles > MAX_TILES:
        raise ConfigError(f"tiles {lat.tile_edge[0]:.4g} wide cut the scene into about {tiles:,.0f} tiles "
                          f"(at most {MAX_TILES:,})", None,
                          "use a larger --tile-size, --voxel-size or --max-tile-points")
    notes.update(voxel_size=h, tile_edge=[float(v) for v in lat.tile_edge], margin=lat.margin,
                 shape="column" if column else "cube", estimated_tiles=int(load.size),
                 largest_shard_estimate=int(load.max()) if load.size else 0, max_tile_points=int(max_tile_points))
    return lat, notes
