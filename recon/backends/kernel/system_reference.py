"""Slow references of the kernel system assembly (dense or per-cell, float64), for the tests.

Each one computes what a fast path of :mod:`recon.backends.kernel.system` computes, the plain way:
:func:`assemble_reference` the whole system from explicit basis matrices,
:func:`point_moments_reference` the per-cell monomial moments, :func:`to_parents_reference` the
move of cell matrices to their parent cells.
"""

from __future__ import annotations

import numpy as np
import torch

from recon.backends.kernel.basis import basis_reference, bspline
from recon.backends.kernel.bspline_tables import coarse_transform
from recon.backends.kernel.cell_matrices import NormalConstraints, kron3
from recon.backends.kernel.svh import VoxelLevel, unique_coords, unpack_keys


def point_moments_reference(u: torch.Tensor, cell: torch.Tensor, C: int) -> torch.Tensor:
    """Reference of :func:`recon.backends.kernel.cell_matrices.point_moments`: numpy, one ``np.add.at``
    per monomial (float64)."""
    ub = u.detach().cpu().numpy().astype(np.float64)
    tau = ub - np.floor(ub)
    cn = cell.detach().cpu().numpy()
    out = np.zeros((C, 125))
    for a in range(5):
        for b in range(5):
            for c in range(5):
                np.add.at(out[:, a * 25 + b * 5 + c], cn, tau[:, 0] ** a * tau[:, 1] ** b * tau[:, 2] ** c)
    return torch.from_numpy(out)


def to_parents_reference(S: torch.Tensor, r: torch.Tensor, cc: torch.Tensor):
    """Reference of :func:`recon.backends.kernel.system._to_parents`: a Kronecker product per cell,
    batched matrix products."""
    parent, inv = unique_coords(cc >> 1, return_inverse=True)
    q = coarse_transform(1).to(S.device, S.dtype)[cc & 1]
    kq = kron3(q[:, 0], q[:, 1], q[:, 2])
    Sp = torch.zeros(len(parent), 27, 27, dtype=S.dtype, device=S.device)
    rp = torch.zeros(len(parent), 27, dtype=S.dtype, device=S.device)
    Sp.index_add_(0, inv, kq @ S @ kq.transpose(1, 2))
    rp.index_add_(0, inv, (kq @ r[:, :, None])[..., 0])
    return Sp, rp, unpack_keys(parent)


def assemble_reference(u: np.ndarray, levels: list[VoxelLevel], constraints: list[NormalConstraints], *,
                       pos_weight: float, normal_weight: float, reg_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Slow dense reference: build G, Q and K explicitly from :func:`basis_reference` (float64).

    Returns:
        A (V, V) and rhs (V,) as numpy float64 arrays, unknowns ordered level by level.
    """
    N = len(u)
    M = sum(len(c.index) for c in constraints)
    G = np.concatenate([basis_reference(u, lv.coords.cpu().numpy(), lv.level)[0] for lv in levels], 1)
    cen, nrm, wts = [], [], []
    for c in constraints:
        co = levels[c.level].coords[c.index].cpu().numpy()
        cen.append((co + 0.5) * 2.0**c.level)
        nrm.append(c.normals.cpu().numpy().astype(np.float64))
        wts.append(c.weight_vector().cpu().numpy().astype(np.float64))
    cen = np.concatenate(cen) if cen else np.zeros((0, 3))
    nrm = np.concatenate(nrm) if nrm else np.zeros((0, 3))
    wq = np.repeat(np.concatenate(wts), 3) if wts else np.zeros(0)  # per row (j, axis)
    Q = np.concatenate([basis_reference(cen, lv.coords.cpu().numpy(), lv.level)[1] for lv in levels], 1)  # (M, V, 3)
    Q = Q.transpose(0, 2, 1).reshape(-1, Q.shape[1])  # rows (j, axis)
    Ks = []
    for lv in levels:
        co = lv.coords.cpu().numpy().astype(np.float64)
        Ks.append(bspline(co[:, None, :] - co[None, :, :]).prod(-1))
    V = G.shape[1]
    K = np.zeros((V, V))
    o = 0
    for k in Ks:
        K[o:o + len(k), o:o + len(k)] = k
        o += len(k)
    w_p = pos_weight / max(N, 1)
    w_n = normal_weight / max(M, 1)
    A = w_p * G.T @ G + w_n * Q.T @ (wq[:, None] * Q) + reg_weight * K
    rhs = w_n * Q.T @ (wq * nrm.reshape(-1))
    return A, rhs
