"""Voxel-set helpers for the learned kernel: encoder grids, parents, children, unions, dilation.

All coordinates are integer voxel coordinates of a level (finest-voxel units scaled by 2^-d),
as in :mod:`recon.backends.kernel.svh`; the parent of voxel ``v`` is ``v >> 1``.
"""

from __future__ import annotations

import torch

from recon.backends.kernel.svh import CORNERS8, VoxelLevel, build_hierarchy, dilate, pack_keys


def union(a: VoxelLevel, b: VoxelLevel) -> VoxelLevel:
    """Voxels in either level (same level number)."""
    return VoxelLevel.from_keys(torch.cat([a.keys, b.keys]), a.level)


def from_coords(coords: torch.Tensor, level: int) -> VoxelLevel:
    """(K, 3) int64 coordinates (duplicates allowed) -> level."""
    return VoxelLevel.from_keys(pack_keys(coords), level)


def parents(level: VoxelLevel) -> VoxelLevel:
    """The level-(d+1) voxels containing the voxels of ``level``."""
    return from_coords(level.coords >> 1, level.level + 1)


def children(level: VoxelLevel, mask: torch.Tensor | None = None) -> VoxelLevel:
    """The 8 level-(d-1) children of (the masked) voxels of ``level``."""
    c = level.coords if mask is None else level.coords[mask]
    ch = (c[:, None, :] * 2 + CORNERS8.to(c.device)[None]).reshape(-1, 3)
    return from_coords(ch, level.level - 1)


def parent_index(child: VoxelLevel, parent: VoxelLevel) -> torch.Tensor:
    """(V_child,) int64 index of each child's parent in ``parent`` (-1 where absent)."""
    return parent.lookup(child.coords >> 1)


def encoder_grids(u: torch.Tensor, depth: int) -> list[VoxelLevel]:
    """Point-splat grids (2x2x2 voxels around each point per level), closed under parents.

    Args:
        u: (N, 3) float32 points, finest-voxel units.
        depth: number of levels.

    Returns:
        ``depth`` levels, finest first; every voxel's parent is in the next level.
    """
    levels = build_hierarchy(u, depth)
    for d in range(1, depth):
        levels[d] = union(levels[d], parents(levels[d - 1]))
    return levels


def dilated(level: VoxelLevel) -> VoxelLevel:
    """The level grown by one voxel in all 26 directions."""
    return dilate(level)


def membership(level: VoxelLevel, other: VoxelLevel) -> torch.Tensor:
    """(V,) bool: which voxels of ``level`` are also in ``other``."""
    return other.lookup(level.coords) >= 0
