"""Assembly of the gradient-fitting system (fast cell-moment path and a dense reference).

Energy (all lengths in finest-voxel units, coefficients alpha in the same units):

    E(alpha) = w_p sum_i f(x_i)^2 + w_n sum_j |grad f(c_j) - n_j|^2 + lam alpha^T K alpha

with ``f(x) = sum_d sum_v alpha_v B((x / 2^d) - (v + 1/2))``, ``w_p = pos_weight / N``,
``w_n = normal_weight / M`` (N points, M normal centres) and ``K_vv' = B(v - v')`` within
a level. Normal equations ``A alpha = rhs`` with
``A = w_p G^T G + w_n Q^T Q + lam K`` and ``rhs = w_n Q^T n``.

Fast path: every basis function is a triquadratic polynomial inside one finest cell, so
the point term reduces to 125 monomial moments per occupied cell, the normal term to a
fixed 27x27 matrix per constraint, and coarser levels are reached by exact per-axis
basis changes (:mod:`recon.backends.kernel.tables`). Matrix blocks for level pairs
(d <= d') are accumulated in a 5x5x5-stencil layout (rows of level d, column offsets
relative to the row's level-d' ancestor) and compressed to CSR at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon.backends.kernel.svh import OFFSETS27, OFFSETS125, VoxelLevel, pack_keys, unpack_keys
from recon.backends.kernel.tables import centre_gradients, coarse_transform, diag_slots, gram_stencil, product_poly


@dataclass
class NormalConstraints:
    """Normal targets at voxel centres of one level.

    Attributes:
        level: the level d whose voxel centres carry the constraints.
        index: (M_d,) int64 voxel indices into that level.
        normals: (M_d, 3) float32 unit target gradients (outward).
    """

    level: int
    index: torch.Tensor
    normals: torch.Tensor


@dataclass
class LinearSystem:
    """The assembled normal equations.

    Attributes:
        matrix: (V, V) float32 symmetric positive definite; scipy CSR on CPU, torch sparse CSR on CUDA.
        rhs: (V,) float32.
        diagonal: (V,) float32.
        offsets: (depth + 1,) level offsets into the unknown vector.
    """

    matrix: torch.Tensor
    rhs: torch.Tensor
    diagonal: torch.Tensor
    offsets: list[int]


def _constraint_cells(c: NormalConstraints, levels: list[VoxelLevel]) -> tuple[torch.Tensor, float]:
    """(M, 3) int64 finest cells holding the centres and the per-axis fraction of the centre."""
    coords = levels[c.level].coords[c.index]
    if c.level == 0:
        return coords, 0.5
    return coords * 2**c.level + 2 ** (c.level - 1), 0.0


def _kron3(rx: torch.Tensor, ry: torch.Tensor, rz: torch.Tensor) -> torch.Tensor:
    """Per-cell Kronecker product of three (c, 3, 3) per-axis maps -> (c, 27, 27)."""
    return (rx[:, :, None, None, :, None, None] * ry[:, None, :, None, None, :, None]
            * rz[:, None, None, :, None, None, :]).reshape(-1, 27, 27)


def _cell_moments(u: torch.Tensor, w_p: float, constraints: list[NormalConstraints], levels: list[VoxelLevel],
                  w_n: float, batch: int = 1_000_000):
    """Level-0 cell keys (C,), moment matrices (C, 27, 27) and right-hand sides (C, 27)."""
    dev = u.device
    parts = [torch.floor(u).to(torch.int64)]
    cons = []
    for c in constraints:
        cells, tau = _constraint_cells(c, levels)
        parts.append(cells)
        cons.append((cells, tau, c.normals))
    keys, inverse = torch.unique(pack_keys(torch.cat(parts)), return_inverse=True)
    C = len(keys)
    # point term: 125 monomial moments per cell
    mom = torch.zeros(C, 125, dtype=torch.float64, device=dev)
    pw = torch.arange(5, device=dev, dtype=torch.float64)
    for i in range(0, len(u), batch):
        ub = u[i:i + batch].to(torch.float64)
        tau = ub - torch.floor(ub)
        p = tau[:, :, None] ** pw  # (n, 3, 5)
        m = (p[:, 0, :, None, None] * p[:, 1, None, :, None] * p[:, 2, None, None, :]).reshape(-1, 125)
        mom.index_add_(0, inverse[i:i + len(ub)], m)
    poly = product_poly().to(dev)  # (3, 3, 5)
    mom = mom.reshape(C, 5, 5, 5)
    t = torch.einsum("zZc,nabc->nabzZ", poly, mom)
    t = torch.einsum("yYb,nabzZ->nayYzZ", poly, t)
    t = torch.einsum("xXa,nayYzZ->nxyzXYZ", poly, t)
    S = (w_p * t).reshape(C, 27, 27)
    del mom, t
    # normal term: fixed 27x27 per constraint, rhs n @ grads
    r = torch.zeros(C, 27, dtype=torch.float64, device=dev)
    start = len(u)
    for cells, tau, nrm in cons:
        gr = centre_gradients(tau).to(dev)  # (3, 27)
        inv = inverse[start:start + len(cells)]
        start += len(cells)
        cnt = torch.bincount(inv, minlength=C).to(torch.float64)
        S += (w_n * cnt)[:, None, None] * (gr.T @ gr)[None]
        r.index_add_(0, inv, w_n * (nrm.to(torch.float64) @ gr))
    return keys, S.to(torch.float32), r.to(torch.float32)


class _BlockAccumulator:
    """Values of one level-pair block in stencil layout: (V_d + 1, 125); the last row is a sink."""

    def __init__(self, rows: int, device):
        self.vals = torch.zeros((rows + 1) * 125, dtype=torch.float32, device=device)
        self.rows = rows

    def add(self, row: torch.Tensor, slot: torch.Tensor, v: torch.Tensor) -> None:
        self.vals.index_add_(0, (row * 125 + slot).reshape(-1), v.reshape(-1))

    def table(self) -> torch.Tensor:
        return self.vals.reshape(self.rows + 1, 125)[: self.rows]


def assemble(u: torch.Tensor, levels: list[VoxelLevel], constraints: list[NormalConstraints], *,
             pos_weight: float, normal_weight: float, reg_weight: float, cell_batch: int = 8192) -> LinearSystem:
    """Assemble the normal equations with the cell-moment method.

    Args:
        u: (N, 3) float32 points, finest-voxel units.
        levels: the SVH, finest first.
        constraints: normal targets per fine level.
        pos_weight, normal_weight, reg_weight: NKSR weights (divided by N and M here).
        cell_batch: cells processed per batch (bounds temporary memory).

    Returns:
        the :class:`LinearSystem` (float32, on ``u.device``).
    """
    dev = u.device
    depth = len(levels)
    N = len(u)
    M = sum(len(c.index) for c in constraints)
    w_p = pos_weight / max(N, 1)
    w_n = normal_weight / max(M, 1)
    keys, S, r = _cell_moments(u, w_p, constraints, levels, w_n)
    cc = unpack_keys(keys)
    sizes = [len(lv) for lv in levels]
    blocks = {(d, e): _BlockAccumulator(sizes[d], dev) for d in range(depth) for e in range(d, depth)}
    rhs = [torch.zeros(sizes[d] + 1, dtype=torch.float32, device=dev) for d in range(depth)]
    off27 = OFFSETS27.to(dev)
    dslots = diag_slots().to(dev)
    ar = torch.arange(-1, 2, device=dev)
    for d in range(depth):
        for i in range(0, len(cc), cell_batch):
            c = cc[i:i + cell_batch]
            s = S[i:i + cell_batch]
            rows = levels[d].lookup(c[:, None, :] + off27[None])  # (c, 27)
            rows = torch.where(rows < 0, torch.full_like(rows, sizes[d]), rows)
            blocks[(d, d)].add(rows[:, :, None].expand(-1, -1, 27), dslots[None].expand(len(c), -1, -1), s)
            rhs[d].index_add_(0, rows.reshape(-1), r[i:i + cell_batch].reshape(-1))
            for e in range(d + 1, depth):
                k = e - d
                R = coarse_transform(k).to(dev, torch.float32)[c & (2**k - 1)]  # (c, 3 axes, 3, 3)
                x = torch.bmm(s, _kron3(R[:, 0], R[:, 1], R[:, 2]).transpose(1, 2))  # (c, 27 a, 27 b)
                # per-axis slot offset e = (C >> k) - ((C + a) >> k) + b + 2
                ea = (c >> k)[:, :, None] - ((c[:, :, None] + ar) >> k)  # (c, 3 axes, 3 a)
                ex = ea[:, :, :, None] + ar[None, None, None, :] + 2  # (c, 3, 3 a, 3 b)
                slot = (ex[:, 0, :, None, None, :, None, None] * 25 + ex[:, 1, None, :, None, None, :, None] * 5
                        + ex[:, 2, None, None, :, None, None, :]).reshape(len(c), 27, 27)
                blocks[(d, e)].add(rows[:, :, None].expand(-1, -1, 27), slot, x)
        if d + 1 < depth:  # move the moments to the parent cells
            parent, inv = torch.unique(pack_keys(cc >> 1), return_inverse=True)
            R1 = coarse_transform(1).to(dev, torch.float32)
            Sp = torch.zeros(len(parent), 27, 27, dtype=torch.float32, device=dev)
            rp = torch.zeros(len(parent), 27, dtype=torch.float32, device=dev)
            for i in range(0, len(cc), cell_batch):
                q = R1[cc[i:i + cell_batch] & 1]
                kq = _kron3(q[:, 0], q[:, 1], q[:, 2])
                Sp.index_add_(0, inv[i:i + cell_batch], torch.bmm(torch.bmm(kq, S[i:i + cell_batch]), kq.transpose(1, 2)))
                rp.index_add_(0, inv[i:i + cell_batch], torch.bmm(kq, r[i:i + cell_batch, :, None])[..., 0])
            S, r, cc = Sp, rp, unpack_keys(parent)
    del S, r
    # regulariser on the diagonal blocks (offsets within +-1)
    g = gram_stencil().to(dev, torch.float32)
    for d in range(depth):
        blocks[(d, d)].table()[:] += reg_weight * g[None]
    return _compress(blocks, rhs, levels)


def _compress(blocks: dict, rhs: list[torch.Tensor], levels: list[VoxelLevel]) -> LinearSystem:
    """Stencil-layout blocks -> one symmetric CSR matrix."""
    dev = rhs[0].device
    depth = len(levels)
    offsets = [0]
    for lv in levels:
        offsets.append(offsets[-1] + len(lv))
    o125 = OFFSETS125.to(dev)
    R, Cc, V = [], [], []
    for (d, e), blk in blocks.items():
        tab = blk.table()
        row, slot = torch.nonzero(tab, as_tuple=True)
        val = tab[row, slot]
        anc = levels[d].coords[row] >> (e - d)
        col = levels[e].lookup(anc + o125[slot])
        ok = col >= 0
        row, col, val = row[ok] + offsets[d], col[ok] + offsets[e], val[ok]
        R.append(row)
        Cc.append(col)
        V.append(val)
        if e != d:
            R.append(col)
            Cc.append(row)
            V.append(val)
    n = offsets[-1]
    rows = torch.cat(R)
    cols = torch.cat(Cc)
    vals = torch.cat(V)
    del R, Cc, V
    if dev.type == "cpu":  # scipy: O(nnz) COO -> CSR and a faster CPU matvec
        import scipy.sparse as sp

        mat = sp.csr_matrix((vals.numpy(), (rows.numpy().astype(np.int32), cols.numpy().astype(np.int32))),
                            shape=(n, n))
        diag = torch.from_numpy(mat.diagonal().astype(np.float32))
    else:
        order = torch.argsort(rows * n + cols)
        rows, cols, vals = rows[order], cols[order], vals[order]
        crow = torch.zeros(n + 1, dtype=torch.int64, device=dev)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
        mat = torch.sparse_csr_tensor(crow, cols, vals, size=(n, n), check_invariants=False)
        diag = torch.zeros(n, dtype=torch.float32, device=dev)
        isd = rows == cols
        diag[rows[isd]] = vals[isd]
    b = torch.cat([x[:-1] for x in rhs])
    return LinearSystem(mat, b, diag, offsets)


def assemble_reference(u: np.ndarray, levels: list[VoxelLevel], constraints: list[NormalConstraints], *,
                       pos_weight: float, normal_weight: float, reg_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Slow dense reference: build G, Q and K explicitly from :func:`basis_reference` (float64).

    Returns:
        A (V, V) and rhs (V,) as numpy float64 arrays, unknowns ordered level by level.
    """
    from recon.backends.kernel.basis import basis_reference, bspline

    N = len(u)
    M = sum(len(c.index) for c in constraints)
    G = np.concatenate([basis_reference(u, lv.coords.cpu().numpy(), lv.level)[0] for lv in levels], 1)
    cen, nrm = [], []
    for c in constraints:
        co = levels[c.level].coords[c.index].cpu().numpy()
        cen.append((co + 0.5) * 2.0**c.level)
        nrm.append(c.normals.cpu().numpy().astype(np.float64))
    cen = np.concatenate(cen) if cen else np.zeros((0, 3))
    nrm = np.concatenate(nrm) if nrm else np.zeros((0, 3))
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
    A = w_p * G.T @ G + w_n * Q.T @ Q + reg_weight * K
    rhs = w_n * Q.T @ nrm.reshape(-1)
    return A, rhs
