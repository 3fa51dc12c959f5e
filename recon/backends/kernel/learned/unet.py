"""Small sparse U-Net with a structure head (NKSR section 1.2, item 2), plain PyTorch.

Encoder: per level a :class:`ConvBlock` on the point-splat grid, 2x max-pool to the parents.
Decoder, coarse to fine: the candidates of the coarsest level are its encoder voxels dilated
by one voxel; the candidates of a finer level are the children of the voxels classified
"subdivide" plus that level's encoder voxels. Each candidate gets the nearest-upsampled
parent feature and the encoder skip feature (zero when it has none), a conv block, and
3-class structure logits (0 not-exist, 1 exist, 2 subdivide). Kept voxels form the
decoder grid of the level. Training uses the ground-truth labels for the decisions
(teacher forcing); inference uses the predicted classes. With ``keep_input`` the encoder
voxels are always kept (sparse input is completed, never thinned).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recon.backends.kernel.learned.encoder import voxel_pool
from recon.backends.kernel.learned.grids import children, dilated, membership, parent_index, parents, union
from recon.backends.kernel.learned.sparse_conv import ConvBlock, neighbour_index
from recon.backends.kernel.svh import VoxelLevel


@dataclass
class DecoderLevel:
    """One decoded level.

    Attributes:
        grid: kept voxels (the fitting system's unknowns at this level).
        features: (V, C) decoder features of the kept voxels.
        candidates: all candidate voxels; logits: (V_cand, 3) structure logits over them.
        labels: (V_cand,) int64 ground-truth classes (training) or None.
    """

    grid: VoxelLevel
    features: torch.Tensor
    candidates: VoxelLevel
    logits: torch.Tensor
    labels: torch.Tensor | None


def subset(level: VoxelLevel, mask: torch.Tensor) -> VoxelLevel:
    """The voxels of ``level`` where ``mask`` (V,) is true (order kept, so keys stay sorted)."""
    return VoxelLevel(level.keys[mask], level.coords[mask], level.level)


def structure_labels(cand: VoxelLevel, gt: list[VoxelLevel], d: int) -> torch.Tensor:
    """(V,) classes of candidates at level d against ground-truth grids: 0 absent, 1 exist, 2 subdivide."""
    inside = membership(cand, gt[d])
    lab = inside.to(torch.int64)
    if d > 0:
        has_child = membership(cand, parents(gt[d - 1]))
        lab = torch.where(inside & has_child, torch.full_like(lab, 2), lab)
    return lab


class SparseUNet(nn.Module):
    """Sparse U-Net over the encoder grids with structure prediction.

    Args:
        channels: per-level channels, finest first (its length is the number of levels).
        c_in: channels of the point-encoder output.
        groups: GroupNorm groups.
    """

    def __init__(self, channels: tuple[int, ...], c_in: int, groups: int = 4):
        super().__init__()
        L = len(channels)
        self.channels = tuple(channels)
        ins = [c_in] + list(channels[:-1])
        self.enc = nn.ModuleList([ConvBlock(ins[d], channels[d], groups) for d in range(L)])
        self.dec_in = nn.ModuleList([nn.Linear(channels[d + 1] + channels[d], channels[d]) for d in range(L - 1)])
        self.dec = nn.ModuleList([ConvBlock(channels[d], channels[d], groups) for d in range(L)])
        self.struct = nn.ModuleList([nn.Linear(channels[d], 3) for d in range(L)])
        with torch.no_grad():  # start by predicting "not-exist" for new candidates (the input grid is kept)
            for s in self.struct:
                s.weight.mul_(0.1)
                s.bias.copy_(torch.tensor([2.0, 0.0, 0.0]))

    def forward(self, x0: torch.Tensor, enc_grids: list[VoxelLevel], gt_grids: list[VoxelLevel] | None = None,
                keep_input: bool = True) -> list[DecoderLevel]:
        """Run encoder and decoder.

        Args:
            x0: (V_0, c_in) point-encoder features on ``enc_grids[0]``.
            enc_grids: encoder grids, finest first, closed under parents.
            gt_grids: ground-truth grids (training: teacher forcing and labels).
            keep_input: always keep encoder voxels.

        Returns:
            :class:`DecoderLevel` per level, finest first.
        """
        L = len(self.channels)
        skips = []
        x = x0
        for d in range(L):
            if d > 0:
                x = voxel_pool(x, parent_index(enc_grids[d - 1], enc_grids[d]).clamp_min(0), len(enc_grids[d]), "amax")
            x = self.enc[d](x, neighbour_index(enc_grids[d]))
            skips.append(x)
        out: list[DecoderLevel] = [None] * L  # type: ignore[list-item]
        prev: DecoderLevel | None = None
        sub_mask = None
        for d in reversed(range(L)):
            cand = dilated(enc_grids[d]) if prev is None else union(children(prev.grid, sub_mask), enc_grids[d])
            ie = enc_grids[d].lookup(cand.coords)
            in_enc = ie >= 0
            sk = torch.cat([skips[d], skips[d].new_zeros(1, skips[d].shape[1])])[torch.where(in_enc, ie, len(skips[d]))]
            if prev is None:
                x = sk
            else:
                ip = prev.grid.lookup(cand.coords >> 1)
                hp = torch.cat([prev.features, prev.features.new_zeros(1, prev.features.shape[1])])
                x = self.dec_in[d](torch.cat([hp[torch.where(ip >= 0, ip, len(prev.features))], sk], 1))
            x = self.dec[d](x, neighbour_index(cand))
            logits = self.struct[d](x)
            labels = structure_labels(cand, gt_grids, d) if gt_grids is not None else None
            cls = labels if labels is not None else logits.argmax(1)
            keep = cls > 0
            if keep_input:
                keep = keep | in_enc
            grid = subset(cand, keep)
            prev = DecoderLevel(grid, x[keep], cand, logits, labels)
            sub_mask = cls[keep] == 2
            out[d] = prev
        return out
