"""Evaluation of a hierarchical B-spline field sum_d sum_v alpha_v B_v(x) (torch, any device)."""

from __future__ import annotations

import numpy as np
import torch

from recon.backends.kernel.basis import basis_reference, level_stencil
from recon.backends.kernel.svh import OFFSETS27, VoxelLevel


def evaluate_levels(u: torch.Tensor, levels: list[VoxelLevel], alphas: list[torch.Tensor], grad: bool = False):
    """Field value (and gradient) in finest-voxel units.

    Args:
        u: (K, 3) float32 positions, finest-voxel units.
        levels: the hierarchy, finest first.
        alphas: per level (V_d,) float32 coefficients.
        grad: also return the gradient.

    Returns:
        f (K,) and, with ``grad``, g (K, 3) (d f / d u).
    """
    off = OFFSETS27.to(u.device)
    f = torch.zeros(len(u), dtype=u.dtype, device=u.device)
    g = torch.zeros(len(u), 3, dtype=u.dtype, device=u.device) if grad else None
    for lv, a in zip(levels, alphas):
        if len(lv) == 0:
            continue
        out = level_stencil(u, lv.level, grad)
        idx = lv.lookup_offsets(out[0], off)  # (K, 27)
        coef = torch.where(idx >= 0, a[idx.clamp_min(0)], torch.zeros((), dtype=a.dtype, device=a.device))
        f += (coef * out[1]).sum(1)
        if grad:
            g += (coef[:, :, None] * out[2]).sum(1)
    return (f, g) if grad else f


def evaluate_reference(u, levels: list[VoxelLevel], alphas: list[torch.Tensor]):
    """Slow dense reference of :func:`evaluate_levels` (numpy float64): every basis at every point."""
    f = np.zeros(len(u))
    g = np.zeros((len(u), 3))
    for lv, a in zip(levels, alphas):
        v, gr = basis_reference(np.asarray(u, dtype=np.float64), lv.coords.cpu().numpy(), lv.level)
        an = a.cpu().numpy().astype(np.float64)
        f += v @ an
        g += np.einsum("kvc,v->kc", gr, an)
    return f, g
