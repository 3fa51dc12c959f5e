"""The global tile lattice: where tiles, their margins and their fields' frames lie.

Every length here is an integer number of finest voxels ``h`` from one world origin ``O``
(float64), so the kernel's voxel grids of all tiles, the meshing lattice and the tile
borders coincide exactly:

* tile ``(i, j, k)`` has the core box ``[O + h * i * E, O + h * (i + 1) * E)`` per axis,
  ``E = tile_cells * 2**(depth - 1)`` finest voxels per axis (a multiple of the coarsest voxel,
  so every hierarchy level's voxels line up across tiles); tiles may be taller than wide
  (columns: one layer of tiles for airborne scenes, whose points do not grow with height);
* its field is solved in the local frame whose origin is the core's low corner;
* fields are blended with partition-of-unity ramps of half-width ``m = margin_voxels * h``
  around each core (:func:`recon.backends.kernel.chunked.blend_weights`);
* its shard holds the points of the core box grown by ``M = 2 m`` (the field must be
  supported by data beyond the blend ramp, and trimming must see every point near a border).

All box tests use :meth:`Lattice.plane` for the plane positions, the one float64 expression
that the spilling, the tests and the meshing share, so "inside" means the same everywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

#: (27, 3) int64 neighbour offsets {-1, 0, 1}^3 (x slowest).
OFFSETS27 = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(np.int64)


@dataclass(frozen=True)
class Lattice:
    """Geometry of the tiling (see the module docstring).

    Attributes:
        origin: (3,) world position O of lattice point (0, 0, 0), world units (float64).
        voxel_size: finest voxel edge h, world units.
        depth: kernel hierarchy depth (coarsest voxel 2**(depth-1) h).
        tile_cells: (3,) tile edge per axis in coarsest voxels.
        margin_voxels: blend half-width m in finest voxels (the shard margin is 2 m).
    """

    origin: tuple[float, float, float]
    voxel_size: float
    depth: int
    tile_cells: tuple[int, int, int]
    margin_voxels: int

    def __post_init__(self) -> None:
        cells = tuple(int(c) for c in np.broadcast_to(np.asarray(self.tile_cells), (3,)))
        object.__setattr__(self, "tile_cells", cells)
        if not (self.voxel_size > 0 and min(cells) >= 1 and self.margin_voxels >= 1 and self.depth >= 1):
            raise ValueError(f"invalid lattice {self}")
        if 4 * self.margin_voxels >= int(self.tile_voxels.min()):
            raise ValueError(f"margin ({self.margin_voxels} voxels) must be under a quarter of the tile edge "
                             f"({int(self.tile_voxels.min())} voxels)")

    # ------------------------------------------------------------------ sizes
    @property
    def tile_voxels(self) -> np.ndarray:
        """(3,) int64 tile edge E per axis in finest voxels."""
        return np.asarray(self.tile_cells, dtype=np.int64) * 2 ** (int(self.depth) - 1)

    @property
    def tile_edge(self) -> np.ndarray:
        """(3,) tile edge T = E h per axis, world units."""
        return self.tile_voxels * self.voxel_size

    @property
    def margin(self) -> float:
        """Blend half-width m, world units."""
        return self.margin_voxels * self.voxel_size

    @property
    def shard_margin(self) -> float:
        """Shard margin M = 2 m, world units."""
        return 2 * self.margin_voxels * self.voxel_size

    @property
    def origin_array(self) -> np.ndarray:
        return np.asarray(self.origin, dtype=np.float64)

    # ------------------------------------------------------------------ planes and boxes
    def plane(self, index: np.ndarray, axis: int | np.ndarray | None = None) -> np.ndarray:
        """World coordinate of the lattice plane ``index`` (finest-voxel units) on ``axis``.

        ``O[axis] + h * float(index)``: the expression marching cubes uses for lattice
        points (origin + h * p), so vertices on a tile border equal it bit for bit.

        Args:
            index: integer plane indices, any shape; with ``axis=None`` the last dimension is 3.
            axis: the axis (or per-element axes) of the planes.
        """
        idx = np.asarray(index, dtype=np.int64).astype(np.float64)
        o = self.origin_array if axis is None else self.origin_array[np.asarray(axis)]
        return o + self.voxel_size * idx

    def core_index(self, ijk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) integer plane indices (finest voxels) of the cores of (..., 3) tiles."""
        ijk = np.asarray(ijk, dtype=np.int64)
        return ijk * self.tile_voxels, (ijk + 1) * self.tile_voxels

    def core_box(self, ijk: np.ndarray) -> np.ndarray:
        """(..., 2, 3) float64 world [lo, hi] of the tile cores (half-open boxes)."""
        lo, hi = self.core_index(ijk)
        return np.stack([self.plane(lo), self.plane(hi)], -2)

    def shard_box(self, ijk: np.ndarray) -> np.ndarray:
        """(..., 2, 3) float64 world [lo, hi] of the shard boxes (core grown by M, half-open)."""
        box = self.core_box(ijk)
        return box + np.array([-self.shard_margin, self.shard_margin])[:, None]

    def field_offset(self, ijk: np.ndarray) -> np.ndarray:
        """(..., 3) float64 world origin of the tiles' field frames (their cores' low corners)."""
        return self.plane(self.core_index(ijk)[0])

    # ------------------------------------------------------------------ points -> tiles
    def tile_of(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) int64 tile whose core holds each point (consistent with :meth:`plane`).

        Args:
            xyz: (N, 3) float64 world positions.
        """
        xyz = np.asarray(xyz, dtype=np.float64)
        e = self.tile_voxels
        c = np.floor((xyz - self.origin_array) / self.tile_edge).astype(np.int64)
        # the division may round across a plane: fix with the exact plane comparison
        c -= (xyz < self.plane(c * e)).astype(np.int64)
        c += (xyz >= self.plane((c + 1) * e)).astype(np.int64)
        return c

    def memberships(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (point, tile) pair whose shard box holds the point.

        Args:
            xyz: (N, 3) float64 world positions.

        Returns:
            ``(point, tile, core)``: (K,) int64 point index, (K, 3) int64 tile, (K,) bool
            whether the point is in that tile's core (exactly one True per point). Pairs are
            ordered by offset first, then by point.
        """
        xyz = np.asarray(xyz, dtype=np.float64)
        c = self.tile_of(xyz)
        e, m = self.tile_voxels, self.shard_margin
        # per axis, is the point inside the shard box of tile c + d, d in {-1, 0, 1}
        ok = np.empty((len(xyz), 3, 3), dtype=bool)
        for d in (-1, 0, 1):
            lo = self.plane((c + d) * e) - m
            hi = self.plane((c + d + 1) * e) + m
            ok[:, :, d + 1] = (xyz >= lo) & (xyz < hi)
        pts, tiles, core = [], [], []
        for off in OFFSETS27:
            sel = np.flatnonzero(ok[:, 0, off[0] + 1] & ok[:, 1, off[1] + 1] & ok[:, 2, off[2] + 1])
            if sel.size:
                pts.append(sel)
                tiles.append(c[sel] + off)
                core.append(np.full(sel.size, not off.any()))
        if not pts:
            return np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros(0, bool)
        return np.concatenate(pts), np.concatenate(tiles), np.concatenate(core)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        d = asdict(self)
        d["origin"] = [float(v) for v in self.origin]
        d["tile_cells"] = [int(v) for v in self.tile_cells]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Lattice":
        return cls(tuple(float(v) for v in d["origin"]), float(d["voxel_size"]), int(d["depth"]),
                   tuple(int(v) for v in np.broadcast_to(np.asarray(d["tile_cells"]), (3,))), int(d["margin_voxels"]))

    def key(self) -> str:
        """Stable text of the lattice (for hashes)."""
        return json.dumps(self.to_dict(), sort_keys=True)


def unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique rows of an (N, 3) int64 array and the (N,) inverse index.

    Same result as ``np.unique(a, axis=0, return_inverse=True)``; when the rows span fewer than
    2**21 values per axis they are packed into one int64 key first (several times faster).
    """
    a = np.asarray(a, dtype=np.int64).reshape(-1, 3)
    if len(a) == 0:
        return a.copy(), np.zeros(0, np.int64)
    lo = a.min(0)
    span = a.max(0) - lo
    if (span < (1 << 21)).all():
        r = a - lo
        keys = (r[:, 0] << 42) | (r[:, 1] << 21) | r[:, 2]
        uk, inv = np.unique(keys, return_inverse=True)
        u = np.stack([uk >> 42, (uk >> 21) & ((1 << 21) - 1), uk & ((1 << 21) - 1)], 1) + lo
        return u, inv.reshape(-1)
    u, inv = np.unique(a, axis=0, return_inverse=True)
    return u, inv.reshape(-1)


def tile_id(ijk) -> str:
    """Text id of a tile, e.g. ``"3_-1_0"`` (used in file names and the manifest)."""
    return "_".join(str(int(v)) for v in ijk)


def parse_tile_id(text: str) -> tuple[int, int, int]:
    """Inverse of :func:`tile_id`."""
    i, j, k = (int(v) for v in text.split("_"))
    return i, j, k


def neighbours(ijk, existing: set[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The existing tiles among the 27 around ``ijk`` (itself included), sorted."""
    base = np.asarray(ijk, dtype=np.int64)
    out = {tuple(int(v) for v in base + off) for off in OFFSETS27}
    return sorted(out & existing)
