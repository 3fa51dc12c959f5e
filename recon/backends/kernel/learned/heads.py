"""Per-level heads: kernel features F_d, the interpolator MLP psi_d (with its Jacobian), normals, UDF.

Kernel features are bounded residuals around a fixed unit vector ``e = (1, ..., 1) / sqrt(k)``:
``F_v = e + r tanh(head(h_v)) / sqrt(k)`` and ``psi_d(z) = e + r tanh(mlp(z)) / sqrt(k)`` with
``r`` = :data:`RESIDUAL` and the last layers zero-initialised. An untrained model therefore has
``<psi_d(x), F_v> = 1`` everywhere, i.e. it *is* the training-free hierarchical B-spline kernel;
training learns the deviation, and the factor stays in [1 - 2r - r^2, 1 + 2r + r^2]
(0.31..1.69): the system stays as well conditioned as the training-free one up to that factor,
so the training-free multilevel preconditioner keeps working (an unbounded first run drifted
to 300+ CG iterations within 40 steps). Normal and structure heads are residual / biased the same way (see
:mod:`recon.backends.kernel.learned.model`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recon.backends.kernel.svh import CORNERS8, VoxelLevel


RESIDUAL = 0.3
"""Bound of the learned deviation of F and psi per component, in units of 1/sqrt(k)."""


def unit_vector(k: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(k,) the vector (1, ..., 1) / sqrt(k)."""
    return torch.full((k,), 1.0 / math.sqrt(k), device=device, dtype=dtype)


class PsiMLP(nn.Module):
    """psi: R^k -> R^k, ``e + r tanh(mlp(z)) / sqrt(k)`` with mlp k -> h -> h -> k (ReLU).

    Forward-mode Jacobian propagation; the last layer starts at zero (see module docstring).
    """

    def __init__(self, k: int, hidden: int):
        super().__init__()
        self.k = k
        self.layers = nn.ModuleList([nn.Linear(k, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, k)])
        with torch.no_grad():
            self.layers[-1].weight.zero_()
            self.layers[-1].bias.zero_()

    def forward(self, z: torch.Tensor, dz: torch.Tensor | None = None):
        """(K, k) inputs and optional (K, k, 3) tangents -> (K, k) outputs and (K, k, 3) tangents."""
        for i, lin in enumerate(self.layers):
            z = lin(z)
            if dz is not None:
                dz = torch.einsum("kic,oi->koc", dz, lin.weight)
            if i + 1 < len(self.layers):
                if dz is not None:
                    dz = dz * (z > 0).to(dz.dtype)[..., None]
                z = torch.relu(z)
        t = torch.tanh(z)
        scale = RESIDUAL / math.sqrt(self.k)
        out = unit_vector(self.k, z.device, z.dtype) + scale * t
        if dz is not None:
            dz = dz * (scale * (1 - t * t))[..., None]
        return out, dz


def trilinear(u: torch.Tensor, level: VoxelLevel, feats: torch.Tensor, grad: bool = False):
    """Trilinear interpolation of per-voxel features at points (absent voxels read zero).

    Args:
        u: (K, 3) positions, finest-voxel units.
        level: the voxel level (voxel centres at (i + 1/2) 2^d).
        feats: (V, C) features in the level's voxel order.
        grad: also return the derivative w.r.t. u.

    Returns:
        (K, C) values, and with ``grad`` (K, C, 3) derivatives; also (K,) occupancy (sum of the
        weights of present corners, in [0, 1]).
    """
    s = float(2**level.level)
    g = u / s - 0.5
    lo = torch.floor(g)
    fr = g - lo
    corners = CORNERS8.to(u.device)
    idx = level.lookup_offsets(lo.to(torch.int64), corners)  # (K, 8)
    cb = corners.bool()[None]  # (1, 8, 3)
    f3 = torch.where(cb, fr[:, None, :], 1 - fr[:, None, :])  # (K, 8, 3) per-axis factors
    present = (idx >= 0).to(u.dtype)
    w = f3.prod(-1) * present
    fp = torch.cat([feats, torch.zeros(1, feats.shape[1], dtype=feats.dtype, device=feats.device)], 0)
    vals = fp[torch.where(idx >= 0, idx, torch.full_like(idx, len(feats)))]  # (K, 8, C)
    out = (w[..., None] * vals).sum(1)
    occ = w.sum(1)
    if not grad:
        return out, None, occ
    sign = torch.where(cb, 1.0, -1.0).to(u.dtype)  # d f3 / d fr
    dw = torch.stack([sign[..., 0] * f3[..., 1] * f3[..., 2], f3[..., 0] * sign[..., 1] * f3[..., 2],
                      f3[..., 0] * f3[..., 1] * sign[..., 2]], -1) * present[..., None] / s  # (K, 8, 3)
    return out, torch.einsum("kjc,kja->kca", vals, dw), occ


class LevelHeads(nn.Module):
    """Heads of one decoder level: kernel features, (optionally) normals, UDF features.

    Args:
        channels: decoder feature channels of the level.
        kernel_dim: k (0 = no learned kernel).
        psi_hidden: hidden width of psi.
        normals: whether this level carries a normal head.
        udf_dim: UDF feature channels.
        normal_hidden: hidden width of the normal head (0 = one linear layer).
    """

    def __init__(self, channels: int, kernel_dim: int, psi_hidden: int, normals: bool, udf_dim: int,
                 normal_hidden: int = 0):
        super().__init__()
        self.kernel_dim = kernel_dim
        if kernel_dim > 0:
            self.feat = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, kernel_dim))
            nn.init.zeros_(self.feat[-1].weight)
            nn.init.zeros_(self.feat[-1].bias)
            self.psi = PsiMLP(kernel_dim, psi_hidden)
        self.normal: nn.Module | None = None
        if normals:  # residual on the splatted input normals; the last layer starts at zero
            last = nn.Linear(normal_hidden or channels, 3)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.normal = last if not normal_hidden else \
                nn.Sequential(nn.Linear(channels, normal_hidden), nn.ReLU(), last)
        self.udf = nn.Linear(channels, udf_dim)

    def kernel_features(self, h: torch.Tensor) -> torch.Tensor | None:
        """(V, C) decoder features -> (V, k) kernel features F = e + bounded residual (None when k = 0)."""
        if self.kernel_dim == 0:
            return None
        return unit_vector(self.kernel_dim, h.device, h.dtype) + \
            RESIDUAL / math.sqrt(self.kernel_dim) * torch.tanh(self.feat(h))


class UDFDecoder(nn.Module):
    """Unsigned distance (finest-voxel units) from interpolated per-level UDF features.

    Input per query: for each level the trilinear UDF features (udf_dim) and the occupancy.
    Output: softplus, bias-initialised to ~1.3 voxels.
    """

    def __init__(self, n_levels: int, udf_dim: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_levels * (udf_dim + 1), hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 1))
        with torch.no_grad():
            self.net[-1].bias.fill_(1.0)

    def forward(self, u: torch.Tensor, levels: list[VoxelLevel], feats: list[torch.Tensor]) -> torch.Tensor:
        """(K, 3) finest-voxel positions -> (K,) predicted unsigned distance (finest-voxel units)."""
        parts = []
        for lv, f in zip(levels, feats):
            v, _, occ = trilinear(u, lv, f)
            parts += [v, occ[:, None]]
        return nn.functional.softplus(self.net(torch.cat(parts, 1)))[:, 0]
