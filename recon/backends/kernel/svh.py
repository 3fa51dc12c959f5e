"""Sparse voxel hierarchy (SVH): hashed integer voxel coordinates per level.

All coordinates here are in *finest-voxel units*: a world position ``x`` becomes
``u = x / h`` with ``h`` the finest voxel edge. Level ``d`` has voxels of edge
``2**d`` (in these units); voxel ``i`` of level ``d`` has its centre at
``(i + 1/2) * 2**d`` and covers ``[i * 2**d, (i + 1) * 2**d)`` per axis.

Voxels are stored as sorted int64 keys (three 21-bit fields), looked up with
``torch.searchsorted``; nothing dense is ever allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_BITS = 21
_OFF = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
COORD_LIMIT = _OFF - 8
"""Largest |integer coordinate| a key can hold (with a small safety margin)."""

# (8, 3) corner offsets {0,1}^3 and (27, 3) neighbour offsets {-1,0,1}^3, z fastest.
CORNERS8 = torch.stack(torch.meshgrid(*[torch.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)
OFFSETS27 = torch.stack(torch.meshgrid(*[torch.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
OFFSETS125 = torch.stack(torch.meshgrid(*[torch.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)


def pack_keys(ijk: torch.Tensor) -> torch.Tensor:
    """(..., 3) int64 coordinates in [-2^20, 2^20) -> (...) int64 keys (order-preserving per axis)."""
    s = ijk + _OFF
    return (s[..., 0] << (2 * _BITS)) | (s[..., 1] << _BITS) | s[..., 2]


def unpack_keys(keys: torch.Tensor) -> torch.Tensor:
    """(...) int64 keys -> (..., 3) int64 coordinates (inverse of :func:`pack_keys`)."""
    return torch.stack([(keys >> (2 * _BITS)) & _MASK, (keys >> _BITS) & _MASK, keys & _MASK], -1) - _OFF


@dataclass
class VoxelLevel:
    """One level of the hierarchy.

    Attributes:
        keys: (V,) int64 sorted unique keys.
        coords: (V, 3) int64 integer voxel coordinates of this level.
        level: level number d (voxel edge 2**d finest voxels).
    """

    keys: torch.Tensor
    coords: torch.Tensor
    level: int

    @classmethod
    def from_keys(cls, keys: torch.Tensor, level: int) -> "VoxelLevel":
        keys = torch.unique(keys)  # sorted
        return cls(keys, unpack_keys(keys), level)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def lookup_keys(self, q: torch.Tensor) -> torch.Tensor:
        """(...) int64 keys -> (...) int64 voxel index, -1 where absent."""
        if len(self) == 0:
            return torch.full_like(q, -1)
        pos = torch.searchsorted(self.keys, q).clamp_(max=len(self) - 1)
        return torch.where(self.keys[pos] == q, pos, torch.full_like(pos, -1))

    def lookup(self, ijk: torch.Tensor) -> torch.Tensor:
        """(..., 3) int64 coordinates -> (...) int64 voxel index, -1 where absent."""
        return self.lookup_keys(pack_keys(ijk))

    def to(self, device: torch.device | str) -> "VoxelLevel":
        return VoxelLevel(self.keys.to(device), self.coords.to(device), self.level)


def splat_keys(u: torch.Tensor, level: int) -> torch.Tensor:
    """Keys of the 2x2x2 level-``level`` voxels whose centres surround each point.

    Args:
        u: (N, 3) float positions in finest-voxel units.
        level: level d.

    Returns:
        (N * 8,) int64 keys (with duplicates).
    """
    g = u / float(2**level) - 0.5
    lo = torch.floor(g).to(torch.int64)
    return pack_keys(lo[:, None, :] + CORNERS8.to(u.device)[None]).reshape(-1)


def count_unique_cells(u: torch.Tensor, batch: int = 4_000_000) -> int:
    """Number of distinct finest cells ``floor(u)`` occupied by (N, 3) points (finest-voxel units)."""
    keys = [torch.unique(pack_keys(torch.floor(u[i:i + batch]).to(torch.int64))) for i in range(0, len(u), batch)]
    return int(torch.unique(torch.cat(keys)).numel()) if keys else 0


def dilate(level: VoxelLevel) -> VoxelLevel:
    """The level grown by one voxel in all 26 directions."""
    k = pack_keys(level.coords[:, None, :] + OFFSETS27.to(level.coords.device)[None]).reshape(-1)
    return VoxelLevel.from_keys(k, level.level)


def build_hierarchy(u: torch.Tensor, depth: int, dilate_from: int | None = None,
                    batch: int = 2_000_000) -> list[VoxelLevel]:
    """Build the SVH from points.

    Args:
        u: (N, 3) float32 points in finest-voxel units.
        depth: number of levels (level 0 finest).
        dilate_from: levels >= this are dilated by one voxel (None: no dilation).
        batch: points per batch when splatting (bounds temporary memory).

    Returns:
        ``depth`` :class:`VoxelLevel` objects, finest first.
    """
    levels = []
    for d in range(depth):
        parts = [torch.unique(splat_keys(u[i:i + batch], d)) for i in range(0, len(u), batch)]
        lev = VoxelLevel.from_keys(torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64, device=u.device), d)
        if dilate_from is not None and d >= dilate_from:
            lev = dilate(lev)
        levels.append(lev)
    return levels
