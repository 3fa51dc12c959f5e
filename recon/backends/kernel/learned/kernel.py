"""The learned kernel K_d(x, v) = B((x - c_v)/s_d) <psi_d(x), F_v> on the 27 voxels around each query.

psi_d is applied to the interpolation ``z(x) = sum_v B((x - c_v)/s_d) F_v / 8`` of the level's
features (the B-spline weights of the same 27 voxels, a partition of unity up to the factor
8). NKSR interpolates trilinearly; the B-spline weights are C1, so grad K is continuous at the
voxel centres where the normals are fitted (the trilinear derivative jumps exactly there), and
they reuse the 27 gathered features.

Gradient (finest-voxel units): grad K = grad B <psi, F> + B <J psi, F>, with J psi the
interpolation's derivative pushed through psi (:class:`PsiMLP`). With no features
(``feats is None``) the factor is 1 and K is the plain B-spline of the training-free backend.
"""

from __future__ import annotations

import torch

from recon.backends.kernel.basis import level_stencil
from recon.backends.kernel.learned.heads import PsiMLP
from recon.backends.kernel.learned.sparse_conv import gather_neighbours
from recon.backends.kernel.svh import OFFSETS27, VoxelLevel


def kernel_stencil(u: torch.Tensor, level: VoxelLevel, feats: torch.Tensor | None, psi: PsiMLP | None,
                   grad: bool = False):
    """Kernel values (and gradients) of the 27 level-d voxels around each query.

    Args:
        u: (K, 3) positions, finest-voxel units.
        level: the level's voxels.
        feats: (V, k) kernel features F or None (factor 1).
        psi: the level's MLP (ignored when ``feats`` is None).
        grad: also return gradients w.r.t. u.

    Returns:
        idx (K, 27) int64 voxel indices (-1 absent), val (K, 27) (0 where absent) and, with
        ``grad``, (K, 27, 3).
    """
    out = level_stencil(u, level.level, grad)
    base, B = out[0], out[1].to(u.dtype)
    idx = level.lookup_offsets(base, OFFSETS27.to(u.device))
    present = (idx >= 0).to(u.dtype)
    dB = out[2].to(u.dtype) if grad else None
    if feats is None:
        val = B * present
        return (idx, val, dB * present[..., None]) if grad else (idx, val)
    Fn = gather_neighbours(feats, idx)  # (K, 27, k), zeros where absent
    z = torch.einsum("kj,kjc->kc", B, Fn) / 8.0
    dz = torch.einsum("kja,kjc->kca", dB, Fn) / 8.0 if grad else None
    p, dp = psi(z, dz)
    fac = torch.einsum("kjc,kc->kj", Fn, p)
    val = B * fac
    if not grad:
        return idx, val
    dfac = torch.einsum("kjc,kca->kja", Fn, dp)
    return idx, val, dB * fac[..., None] + B[..., None] * dfac


def evaluate_field(u: torch.Tensor, levels: list[VoxelLevel], alphas: list[torch.Tensor],
                   feats: list[torch.Tensor | None], psis: list[PsiMLP | None], grad: bool = False):
    """f(u) = sum_d sum_v alpha_v K_d(u, v) (finest-voxel units), differentiable in alpha and features.

    Args:
        u: (K, 3) positions; levels, alphas (V_d,), feats (V_d, k) or None, psis: per level.

    Returns:
        f (K,) and, with ``grad``, (K, 3).
    """
    f = torch.zeros(len(u), dtype=u.dtype, device=u.device)
    g = torch.zeros(len(u), 3, dtype=u.dtype, device=u.device) if grad else None
    for lv, a, F, psi in zip(levels, alphas, feats, psis):
        if len(lv) == 0:
            continue
        out = kernel_stencil(u, lv, F, psi, grad)
        ap = torch.cat([a, a.new_zeros(1)])
        coef = ap[torch.where(out[0] >= 0, out[0], torch.full_like(out[0], len(a)))]
        f = f + (coef * out[1]).sum(1)
        if grad:
            g = g + (coef[..., None] * out[2]).sum(1)
    return (f, g) if grad else f
