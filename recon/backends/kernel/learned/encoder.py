"""PointNet-style point encoder into the finest voxels (NKSR section 1.2, item 1).

Per point: the offset from the centre of its finest cell (in [-1/2, 1/2)^3), its normal
(given or estimated) and a flag (1 = normals were given). Linear -> C, residual blocks
that concatenate the per-voxel max-pooled feature, then a per-voxel mean
(``Tensor.scatter_reduce``) gives one feature per level-0 voxel.
"""

from __future__ import annotations

import torch
from torch import nn

from recon.backends.kernel.svh import VoxelLevel

IN_DIM = 7


def voxel_pool(x: torch.Tensor, index: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    """(P, C) point features, (P,) voxel index -> (n, C) per-voxel "amax" or "mean" (0 where empty)."""
    out = x.new_zeros(n, x.shape[1])
    return out.scatter_reduce(0, index[:, None].expand_as(x), x, reduce=reduce, include_self=False)


class _ResFC(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.fc1 = nn.Linear(2 * c, c)
        self.fc2 = nn.Linear(c, c)
        self.short = nn.Linear(2 * c, c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.short(x) + self.fc2(torch.relu(self.fc1(torch.relu(x))))


class PointEncoder(nn.Module):
    """Points -> (V_0, c_out) features on the finest voxels.

    Args:
        hidden: width of the point MLP.
        c_out: output channels.
        blocks: residual blocks.
    """

    def __init__(self, hidden: int = 32, c_out: int = 16, blocks: int = 2):
        super().__init__()
        self.inp = nn.Linear(IN_DIM, hidden)
        self.blocks = nn.ModuleList([_ResFC(hidden) for _ in range(blocks)])
        self.out = nn.Linear(hidden, c_out)

    @staticmethod
    def point_inputs(u: torch.Tensor, normals: torch.Tensor, has_normals: bool) -> torch.Tensor:
        """(N, 3) positions (finest-voxel units), (N, 3) normals -> (N, 7) per-point inputs."""
        frac = u - torch.floor(u) - 0.5
        flag = torch.full((len(u), 1), 1.0 if has_normals else 0.0, dtype=u.dtype, device=u.device)
        return torch.cat([frac, normals.to(u.dtype), flag], 1)

    def forward(self, u: torch.Tensor, normals: torch.Tensor, has_normals: bool, level0: VoxelLevel) -> torch.Tensor:
        """Encode points into the level-0 voxels containing them.

        Args:
            u: (N, 3) points, finest-voxel units; normals: (N, 3); has_normals: whether they were given.
            level0: the finest encoder grid (contains every point's cell).

        Returns:
            (V_0, c_out) features (zeros in voxels without points).
        """
        cell = level0.lookup(torch.floor(u).to(torch.int64)).clamp_min(0)
        n = len(level0)
        x = self.inp(self.point_inputs(u, normals, has_normals))
        for blk in self.blocks:
            pooled = voxel_pool(x, cell, n, "amax")[cell]
            x = blk(torch.cat([x, pooled], 1))
        return voxel_pool(self.out(torch.relu(x)), cell, n, "mean")
