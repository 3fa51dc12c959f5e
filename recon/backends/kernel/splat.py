"""Normal splatting: average input normals onto voxel centres of the fine levels."""

from __future__ import annotations

import torch

from recon.backends.kernel.svh import CORNERS8, VoxelLevel


def splat_normals(u: torch.Tensor, normals: torch.Tensor, level: VoxelLevel, min_norm: float = 0.3,
                  batch: int = 2_000_000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Trilinear splat of point normals onto the centres of one level's voxels.

    Each point spreads its normal to the 8 voxels whose centres surround it (the voxels
    it activated) with trilinear weights. The weighted mean is kept where its length is
    at least ``min_norm`` (voxels with conflicting orientations are dropped) and then
    normalised.

    Args:
        u: (N, 3) float32 points, finest-voxel units.
        normals: (N, 3) float32 unit normals (outward).
        level: the voxel level to splat onto.
        min_norm: drop voxels whose averaged normal is shorter than this.
        batch: points per batch.

    Returns:
        index: (M,) int64 voxel indices into ``level``; target: (M, 3) float32 unit normals;
        mass: (M,) float32 splatted mass, the sum of the points' trilinear weights (points' worth
        of evidence behind each target; see :func:`normal_confidence`).
    """
    V = len(level)
    dev = u.device
    acc = torch.zeros(V, 3, dtype=torch.float32, device=dev)
    wsum = torch.zeros(V, dtype=torch.float32, device=dev)
    s = float(2**level.level)
    corners = CORNERS8.to(dev)
    for i in range(0, len(u), batch):
        g = u[i:i + batch] / s - 0.5
        lo = torch.floor(g)
        fr = g - lo
        # (n, 8) trilinear weights of the corners {0,1}^3
        wc = torch.where(corners[None].bool(), fr[:, None, :], 1 - fr[:, None, :]).prod(-1)
        idx = level.lookup_offsets(lo.to(torch.int64), corners)  # all present when the level is these points' splat
        contrib = normals[i:i + batch, None, :] * wc[:, :, None]  # (n, 8, 3)
        ok = idx >= 0
        if bool(ok.all()):
            idx, wc, contrib = idx.reshape(-1), wc.reshape(-1), contrib.reshape(-1, 3)
        else:
            idx, wc, contrib = idx[ok], wc[ok], contrib[ok]
        acc.index_add_(0, idx, contrib)
        wsum.index_add_(0, idx, wc)
    mean = acc / wsum.clamp_min(1e-12)[:, None]
    length = mean.norm(dim=1)
    keep = (length >= min_norm) & (wsum > 1e-6)
    index = torch.nonzero(keep).squeeze(1)
    return index, mean[index] / length[index, None], wsum[index]


#: Splatted mass at which a normal target gets full weight (see :func:`normal_confidence`).
FULL_CONFIDENCE_MASS = 1.0


def normal_confidence(mass: torch.Tensor, full: float = FULL_CONFIDENCE_MASS) -> torch.Tensor:
    """Per-target weight in (0, 1]: ``min(mass / full, 1)``.

    A target splatted from less than one point's worth of trilinear weight (sparse input: the
    only point lies near the far corner of the centre's dual cell) is a guess about a normal at
    a place no point is near; it gets proportionally less weight. Dense inputs (several points
    per voxel) keep weight 1 almost everywhere.

    Args:
        mass: (M,) float32 splatted mass from :func:`splat_normals`.
        full: mass at which the weight reaches 1.
    """
    return (mass / full).clamp(max=1.0)
