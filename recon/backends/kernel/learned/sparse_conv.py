"""Sparse 3x3x3 convolution over hashed voxel coordinates (gather + matmul) and GroupNorm over voxels.

A voxel set is a :class:`recon.backends.kernel.svh.VoxelLevel`; features are (V, C) tensors
whose rows follow the level's (sorted) voxel order. The convolution gathers the 27
neighbours of every voxel (missing neighbours read zeros, like zero padding of a dense
grid) and applies one (27 C_in, C_out) matrix: ``out[v] = sum_k W_k x[v + o_k] + bias``
with ``o_k`` = :data:`OFFSETS27` (cross-correlation, as ``torch.nn.functional.conv3d``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recon.backends.kernel.svh import OFFSETS27, VoxelLevel


def neighbour_index(level: VoxelLevel) -> torch.Tensor:
    """(V, 27) int64 indices of each voxel's 3x3x3 neighbours in the same level, -1 where absent."""
    if len(level) == 0:
        return torch.zeros(0, 27, dtype=torch.int64, device=level.coords.device)
    return level.lookup_offsets(level.coords, OFFSETS27.to(level.coords.device))


def gather_neighbours(x: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
    """(V, C) features and (V, 27) neighbour indices -> (V, 27, C), zeros where absent."""
    zero = torch.zeros(1, x.shape[1], dtype=x.dtype, device=x.device)
    xp = torch.cat([x, zero], 0)
    return xp[torch.where(nbr >= 0, nbr, torch.full_like(nbr, len(x)))]


class SparseConv3d(nn.Module):
    """3x3x3 (or 1x1x1) convolution on a sparse voxel set.

    Args:
        c_in, c_out: channels.
        bias: add a bias.
    """

    def __init__(self, c_in: int, c_out: int, bias: bool = True):
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.weight = nn.Parameter(torch.empty(27, c_in, c_out))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        bound = 1.0 / math.sqrt(27 * c_in)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        """(V, C_in) features, (V, 27) neighbour indices -> (V, C_out)."""
        g = gather_neighbours(x, nbr).reshape(len(x), 27 * self.c_in)
        out = g @ self.weight.reshape(27 * self.c_in, self.c_out)
        return out + self.bias if self.bias is not None else out

    def load_dense(self, w: torch.Tensor, b: torch.Tensor | None = None) -> None:
        """Copy a dense conv3d kernel (C_out, C_in, 3, 3, 3) (and bias) into this layer."""
        with torch.no_grad():
            self.weight.copy_(w.permute(2, 3, 4, 1, 0).reshape(27, self.c_in, self.c_out))
            if b is not None and self.bias is not None:
                self.bias.copy_(b)


def sparse_conv_reference(x: torch.Tensor, coords: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor | None) -> torch.Tensor:
    """Slow reference: conv3d (padding 1) on the dense box around the voxels, read back at the voxels.

    Args:
        x: (V, C_in) features; coords: (V, 3) int64 voxel coordinates; weight: (C_out, C_in, 3, 3, 3).

    Returns:
        (V, C_out).
    """
    lo = coords.min(0).values
    dims = (coords.max(0).values - lo + 1).tolist()
    dense = torch.zeros(1, x.shape[1], *dims, dtype=x.dtype, device=x.device)
    loc = coords - lo
    dense[0, :, loc[:, 0], loc[:, 1], loc[:, 2]] = x.T
    out = torch.nn.functional.conv3d(dense, weight, bias, padding=1)
    return out[0, :, loc[:, 0], loc[:, 1], loc[:, 2]].T


class VoxelGroupNorm(nn.Module):
    """GroupNorm over all voxels of one sample: (V, C) -> (V, C)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.groups = max(1, min(groups, channels))
        while channels % self.groups:
            self.groups -= 1
        self.norm = nn.GroupNorm(self.groups, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == 0:
            return x
        return self.norm(x.T[None])[0].T


class ConvBlock(nn.Module):
    """(GroupNorm -> 3x3x3 sparse conv -> ReLU) twice, with a 1x1 residual projection."""

    def __init__(self, c_in: int, c_out: int, groups: int = 4):
        super().__init__()
        self.n1 = VoxelGroupNorm(c_in, groups)
        self.c1 = SparseConv3d(c_in, c_out)
        self.n2 = VoxelGroupNorm(c_out, groups)
        self.c2 = SparseConv3d(c_out, c_out)
        self.skip = nn.Linear(c_in, c_out, bias=False) if c_in != c_out else None

    def forward(self, x: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        """(V, C_in), (V, 27) -> (V, C_out)."""
        h = torch.relu(self.c1(self.n1(x), nbr))
        h = torch.relu(self.c2(self.n2(h), nbr))
        return h + (self.skip(x) if self.skip is not None else x)
