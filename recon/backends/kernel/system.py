"""Assembly of the gradient-fitting system (the fast cell-moment path).

Energy (all lengths in finest-voxel units, coefficients alpha in the same units):

    E(alpha) = w_p sum_i f(x_i)^2 + w_n sum_j c_j |grad f(c_j) - n_j|^2 + lam alpha^T K alpha

with ``f(x) = sum_d sum_v alpha_v B((x / 2^d) - (v + 1/2))``, ``w_p = pos_weight / N``,
``w_n = normal_weight / M`` (N points, M normal centres), per-target weights ``c_j``
(:attr:`NormalConstraints.weights`, 1 when unset) and ``K_vv' = B(v - v')`` within
a level. Normal equations ``A alpha = rhs`` with
``A = w_p G^T G + w_n Q^T C Q + lam K`` and ``rhs = w_n Q^T C n`` (C = diag(c)).

Every basis function is a triquadratic polynomial inside one finest cell, so the point term
reduces to 125 monomial moments per occupied cell
(:func:`recon.backends.kernel.cell_matrices.point_moments`), the normal term to
a fixed 27x27 matrix per constraint, and both become the cell's 27x27 matrix in one GEMM. Per
level d the same-level block is gathered from the cells' matrices into a 5x5x5-stencil layout
(rows of level d, all 125 neighbour columns, present or not; :func:`_fine_level_table` on the
finest level, :func:`_same_level_table` above it); the coarser-column blocks (d, d' > d) follow
from that table by the exact B-spline two-scale relation (:func:`_coarsen_table`: a
(V_d, 125) x (125, 125) product per level pair), and the cell matrices move to the parent cells
by exact per-axis basis changes (:func:`_fine_to_parents`, :func:`_to_parents`;
:mod:`recon.backends.kernel.bspline_tables`). Each block becomes CSR straight from its table
(the slots are in key order, so no sort); on the CPU the blocks form a
:class:`recon.backends.kernel.block_matrix.BlockSymmetricMatrix`.
:mod:`recon.backends.kernel.system_reference` holds the slow references the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch

from recon.backends.kernel.block_matrix import BlockSymmetricMatrix
from recon.backends.kernel.bspline_tables import coarse_transform, gram_stencil, two_scale_stencil
from recon.backends.kernel.cell_matrices import FineCells, NormalConstraints, fine_cells, kron3, pattern_stencils
from recon.backends.kernel.svh import OFFSETS27, OFFSETS125, VoxelLevel, pack_keys, unique_coords, unpack_keys


@dataclass
class LinearSystem:
    """The assembled normal equations.

    Attributes:
        matrix: (V, V) float32 symmetric positive definite: a :class:`BlockSymmetricMatrix` (scipy
            CSR blocks) on CPU, a torch sparse CSR tensor on CUDA.
        rhs: (V,) float32.
        diagonal: (V,) float32.
        offsets: (depth + 1,) level offsets into the unknown vector.
    """

    matrix: Any
    rhs: torch.Tensor
    diagonal: torch.Tensor
    offsets: list[int]


def _same_level_table(S: torch.Tensor, r: torch.Tensor, cc: torch.Tensor, level: VoxelLevel,
                      batch: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-level block of a level above the finest in stencil layout, and its right-hand side,
    gathered from the cells' full matrices.

    Cell ``c``'s matrix couples its 27 neighbour voxels ``c + o_a``; voxel ``v`` is function ``a`` of
    cell ``v - o_a``, whose row ``a`` lands on the 3x3x3 sub-cube of ``v``'s 5x5x5 stencil that starts
    at ``2 - o_a`` (column offsets ``o_b - o_a``). Per voxel batch and row offset this is one gather
    of 27-value rows and one add into a strided view, no scatter.
    :func:`recon.backends.kernel.system_reference.assemble_reference` checks the result.

    Args:
        S: (C + 1, 27, 27) float32 cell matrices, row C zero; r: (C + 1, 27) float32, row C zero.
        cc: (C, 3) int64 cell coordinates of this level, sorted by key (as ``unique_coords`` returns them).
        level: the voxel level (rows).
        batch: voxels per batch.

    Returns:
        (V, 125) float32 values at the 125 stencil offsets (OFFSETS125 order), and (V,) float32 rhs.
    """
    return _gather_table(S, r, cc, level, batch, lambda cidx: cidx, None)


def _fine_level_table(fine: FineCells, level: VoxelLevel, batch: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-level block of the finest level in stencil layout, and its right-hand side.

    As :func:`_same_level_table`, from :class:`FineCells`: the point-term matrices of the cells
    with points (rows ``fine.point_row``) plus, per voxel, its cells' normal-target weights times
    the kinds' patterns (one (b, 27 J) x (27 J, 125) product per batch).

    Returns:
        (V, 125) float32 stencil values and (V,) float32 rhs of ``level`` (the finest).
    """
    pst = pattern_stencils(fine.patterns)

    def normal_term(cidx: torch.Tensor) -> torch.Tensor:
        return (fine.weights[cidx].reshape(len(cidx), -1) @ pst).view(-1, 5, 5, 5)

    return _gather_table(fine.S, fine.r, fine.cc, level, batch, lambda cidx: fine.point_row[cidx], normal_term)


def _gather_table(S: torch.Tensor, r: torch.Tensor, cc: torch.Tensor, level: VoxelLevel, batch: int,
                  matrix_row: Callable[[torch.Tensor], torch.Tensor],
                  normal_term: Callable[[torch.Tensor], torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The gather of :func:`_same_level_table` / :func:`_fine_level_table`.

    Args:
        S: (P + 1, 27, 27) float32 matrices, row P zero; r: (C + 1, 27) float32 rhs per cell, row C zero.
        cc: (C, 3) int64 sorted cell coordinates; level: the rows; batch: voxels per batch.
        matrix_row: (b, 27) cell indices (C: absent) -> their rows of ``S``.
        normal_term: (b, 27) cell indices -> (b, 5, 5, 5) added to the batch's stencils first, or None.
    """
    dev = S.device
    C = len(cc)
    cells = VoxelLevel(pack_keys(cc), cc, level.level)
    coords = level.coords
    V = len(coords)
    T = torch.zeros(V, 5, 5, 5, dtype=torch.float32, device=dev)
    rhs = torch.zeros(V, dtype=torch.float32, device=dev)
    Sf = S.reshape(-1, 27)  # row c * 27 + a = S[c, a, :]
    rf = r.reshape(-1)
    neg = -OFFSETS27.to(dev)
    a27 = torch.arange(27, device=dev)
    for i in range(0, V, batch):
        cidx = cells.lookup_offsets(coords[i:i + batch], neg)  # (b, 27): cell v - o_a
        cidx = torch.where(cidx >= 0, cidx, torch.full_like(cidx, C))
        flat = matrix_row(cidx) * 27 + a27
        Tb = T[i:i + batch]
        if normal_term is not None:
            Tb += normal_term(cidx)
        for a in range(27):
            ox, oy, oz = a // 9, (a // 3) % 3, a % 3  # o_a + 1 (z fastest, as OFFSETS27)
            Tb[:, 2 - ox:5 - ox, 2 - oy:5 - oy, 2 - oz:5 - oz] += Sf.index_select(0, flat[:, a]).view(-1, 3, 3, 3)
        rhs[i:i + batch] = rf[cidx * 27 + a27].sum(1)
    return T.reshape(V, 125), rhs


def _coarsen_table(T: torch.Tensor, residue: torch.Tensor) -> torch.Tensor:
    """Stencil table with level-(e-1) columns -> level-e columns (exact two-scale map).

    Args:
        T: (V, 125) float32 rows' values at the 5x5x5 level-(e-1) columns around their ancestor.
        residue: (V, 3) int64 in {0, 1}: the ancestor's coordinate parity per axis.

    Returns:
        (V, 125) float32 values at the 5x5x5 level-e columns (see :func:`two_scale_stencil`).
    """
    maps = two_scale_stencil().to(T.device, torch.float32)  # (8, 125, 125); a GEMM beat 3 separable einsums
    cls = residue[:, 0] * 4 + residue[:, 1] * 2 + residue[:, 2]
    out = torch.empty_like(T)
    for k in range(8):
        idx = torch.nonzero(cls == k).squeeze(1)
        if len(idx):
            out[idx] = T[idx] @ maps[k]
    return out


def _parent_cells(cc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(C', ) parent keys, (C,) parent index of each cell and (C,) parity class ``kx*4 + ky*2 + kz``."""
    parent, inv = unique_coords(cc >> 1, return_inverse=True)
    par = cc & 1
    return parent, inv, par[:, 0] * 4 + par[:, 1] * 2 + par[:, 2]


def _parity_map(R1: torch.Tensor, k: int) -> torch.Tensor:
    """(27, 27) map ``K_k = kron(R[kx], R[ky], R[kz])`` of the cells of parity class ``k``."""
    return kron3(R1[k >> 2][None], R1[(k >> 1) & 1][None], R1[k & 1][None])[0]


def _moved(S: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(c, 27, 27) cell matrices in their parent's basis: ``K S K^T`` (one GEMM, then a batched product)."""
    Y = (S.reshape(-1, 27) @ K.T).reshape(-1, 27, 27)
    return torch.matmul(K, Y)


def _parent_buffers(cc: torch.Tensor, dev: torch.device):
    """What both moves to the parent level start from: the parent cells (``_parent_cells``), the
    one-level refinement matrix and zeroed (C' + 1, 27, 27) matrices and (C' + 1, 27) right-hand sides."""
    parent, inv, cls = _parent_cells(cc)
    R1 = coarse_transform(1).to(dev, torch.float32)
    Sp = torch.zeros(len(parent) + 1, 27, 27, dtype=torch.float32, device=dev)
    rp = torch.zeros(len(parent) + 1, 27, dtype=torch.float32, device=dev)
    return parent, inv, cls, R1, Sp, rp


def _to_parents(S: torch.Tensor, r: torch.Tensor, cc: torch.Tensor, cell_batch: int = 65536):
    """Cells' moment matrices and right-hand sides expressed in, and summed into, their parent cells.

    A cell with coordinate parity ``k`` (3 bits) sees its parent's 27 functions through the fixed
    27x27 map ``K_k = kron(R[kx], R[ky], R[kz])`` (:func:`coarse_transform`): ``S_p += K S K^T`` and
    ``r_p += K r``. Cells are grouped by parity so each group needs one ``K_k``
    (:func:`recon.backends.kernel.system_reference.to_parents_reference` builds the per-cell
    Kronecker products instead).

    Args:
        S: (C [+ 1], 27, 27) float32; r: (C [+ 1], 27) float32; cc: (C, 3) int64 cell coordinates
            (a row C beyond the cells, the zero "absent cell", is ignored).

    Returns:
        parent (C' + 1, 27, 27) matrices, (C' + 1, 27) right-hand sides (row C' zero: the absent cell)
        and (C', 3) coordinates.
    """
    dev = S.device
    parent, inv, cls, R1, Sp, rp = _parent_buffers(cc, dev)
    for k in range(8):
        K = _parity_map(R1, k)
        members = torch.nonzero(cls == k).squeeze(1)
        for i in range(0, len(members), cell_batch):
            idx = members[i:i + cell_batch]
            rp.index_add_(0, inv[idx], r[idx] @ K.T)
            Sp.index_add_(0, inv[idx], _moved(S[idx], K))
    return Sp, rp, unpack_keys(parent)


def _fine_to_parents(fine: FineCells, cell_batch: int = 65536):
    """:func:`_to_parents` of the finest level's cells (:class:`FineCells`).

    The point-term matrices of the cells with points move as in :func:`_to_parents`; the normal
    targets' weights are summed per parent, child parity and kind, then expanded with the moved
    patterns ``K_k G_j K_k^T`` in one GEMM.

    Returns:
        as :func:`_to_parents`.
    """
    S, r, cc = fine.S, fine.r, fine.cc
    dev = S.device
    parent, inv, cls, R1, Sp, rp = _parent_buffers(cc, dev)
    C1 = len(parent)
    J = fine.weights.shape[1]
    wp = torch.zeros(C1, 8, J, dtype=torch.float32, device=dev)  # parent weights per child parity and kind
    pk = []
    for k in range(8):
        K = _parity_map(R1, k)
        members = torch.nonzero(cls == k).squeeze(1)
        for i in range(0, len(members), cell_batch):
            idx = members[i:i + cell_batch]
            rp.index_add_(0, inv[idx], r[idx] @ K.T)
            wp[:, k].index_add_(0, inv[idx], fine.weights[idx])
            idx = idx[fine.point_row[idx] < len(S) - 1]  # the point-term matrices: cells with points only
            if len(idx):
                Sp.index_add_(0, inv[idx], _moved(S[fine.point_row[idx]], K))
        pk.append(K @ fine.patterns @ K.T)  # (J, 27, 27)
    G = torch.stack(pk).reshape(8 * J, 729)  # normal targets of the children, expanded in the parent
    for i in range(0, C1, cell_batch):
        j = min(i + cell_batch, C1)
        Sp[i:j] += (wp[i:j].reshape(j - i, 8 * J) @ G).view(-1, 27, 27)
    return Sp, rp, unpack_keys(parent)


def _table_to_csr(T: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stencil table -> CSR arrays of one block (no sort: slots are in key order, so columns ascend).

    Args:
        T: (V, 125) float32 values; cols: (V, 125) column indices (-1 where the voxel is absent).

    Returns:
        indptr (V + 1,) int64, indices (nnz,) int32, data (nnz,) float32.
    """
    if T.device.type == "cpu":  # numpy boolean indexing is several times faster than torch's here
        Tn, cn = T.numpy(), cols.numpy()
        mask = cn >= 0
        mask &= Tn != 0
        indptr = np.zeros(len(Tn) + 1, dtype=np.int64)
        np.cumsum(mask.sum(1), out=indptr[1:])
        return (torch.from_numpy(indptr), torch.from_numpy(cn[mask].astype(np.int32, copy=False)),
                torch.from_numpy(Tn[mask]))
    mask = (cols >= 0) & (T != 0)
    indptr = torch.zeros(len(T) + 1, dtype=torch.int64, device=T.device)
    indptr[1:] = torch.cumsum(mask.sum(1), 0)
    return indptr, cols[mask].to(torch.int32), T[mask]


def assemble(u: torch.Tensor, levels: list[VoxelLevel], constraints: list[NormalConstraints], *,
             pos_weight: float, normal_weight: float, reg_weight: float, cell_batch: int = 65536) -> LinearSystem:
    """Assemble the normal equations with the cell-moment method.

    Per level d: the same-level block is gathered from the cells' 27x27 matrices in stencil
    layout (all 125 neighbour columns, present or not: the "virtual" columns;
    :func:`_same_level_table`; on the finest level :func:`_fine_level_table` from
    :class:`FineCells`, point-term matrices plus normal-target weights); the blocks with coarser
    columns e > d follow from it by the exact two-scale relation of the B-splines
    (:func:`_coarsen_table`, one (V_d, 125) x (125, 125) product per level pair) instead of
    per-cell basis changes; then the cell matrices move to the parent cells
    (:func:`_fine_to_parents`, then :func:`_to_parents`). The regulariser is added to the
    same-level blocks. Each block becomes CSR directly from its table (columns of a row are
    already sorted).

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
    fine = fine_cells(u, w_p, constraints, levels, w_n)
    S = r = cc = None
    sizes = [len(lv) for lv in levels]
    o125 = OFFSETS125.to(dev)
    g = gram_stencil().to(dev, torch.float32)
    nbr: dict[int, torch.Tensor] = {}

    def neighbours(e: int) -> torch.Tensor:  # (V_e, 125) int32 same-level neighbour indices
        if e not in nbr:
            c = levels[e].coords
            nbr[e] = torch.cat([levels[e].lookup_offsets(c[i:i + cell_batch], o125).to(torch.int32)
                                for i in range(0, len(c), cell_batch)]) if len(c) else \
                torch.zeros(0, 125, dtype=torch.int32, device=dev)
        return nbr[e]

    blocks: dict[tuple[int, int], tuple] = {}
    rhs = []
    diag = []
    for d in range(depth):
        if d == 0:
            T, rb = _fine_level_table(fine, levels[0], cell_batch)
        else:
            T, rb = _same_level_table(S, r, cc, levels[d], cell_batch)
        rhs.append(rb)
        coords = levels[d].coords
        for e in range(d, depth):
            if e > d:
                T = _coarsen_table(T, (coords >> (e - 1 - d)) & 1)
            Te = T + reg_weight * g[None] if e == d else T
            if e == d:
                diag.append(Te[:, 62].clone())  # slot of offset (0, 0, 0)
                cols = neighbours(d)
            else:
                cols = neighbours(e)[levels[e].lookup(coords >> (e - d))]  # ancestors always exist
            blocks[(d, e)] = _table_to_csr(Te, cols)
            del Te, cols
        del T
        if d + 1 < depth:  # move the moments to the parent cells
            S, r, cc = _fine_to_parents(fine, cell_batch) if d == 0 else _to_parents(S, r, cc, cell_batch)
            fine = None
    del S, r, nbr, fine
    return _compress(blocks, rhs, torch.cat(diag), sizes)


def _compress(blocks: dict, rhs: list[torch.Tensor], diagonal: torch.Tensor, sizes: list[int]) -> LinearSystem:
    """Upper level-pair CSR blocks -> one symmetric matrix (scipy CSR on CPU, torch CSR on CUDA)."""
    dev = diagonal.device
    depth = len(sizes)
    offsets = [0]
    for v in sizes:
        offsets.append(offsets[-1] + v)
    n = offsets[-1]
    b = torch.cat(rhs)
    if dev.type == "cpu":
        mats = {(d, e): sp.csr_matrix((data.numpy(), indices.numpy(), indptr.numpy()), shape=(sizes[d], sizes[e]))
                for (d, e), (indptr, indices, data) in blocks.items()}
        return LinearSystem(BlockSymmetricMatrix(mats, offsets), b, diagonal, offsets)
    R, Cc, V = [], [], []
    for (d, e), (indptr, indices, data) in blocks.items():
        row = torch.repeat_interleave(torch.arange(sizes[d], device=dev), indptr[1:] - indptr[:-1]) + offsets[d]
        col = indices.to(torch.int64) + offsets[e]
        R += [row] + ([col] if e != d else [])
        Cc += [col] + ([row] if e != d else [])
        V += [data] + ([data] if e != d else [])
    rows, cols, vals = torch.cat(R), torch.cat(Cc), torch.cat(V)
    order = torch.argsort(rows * n + cols)
    rows, cols, vals = rows[order], cols[order], vals[order]
    crow = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    mat = torch.sparse_csr_tensor(crow, cols, vals, size=(n, n), check_invariants=False)
    return LinearSystem(mat, b, diagonal, offsets)
