"""Assembly of the gradient-fitting system (fast cell-moment path and a dense reference).

Energy (all lengths in finest-voxel units, coefficients alpha in the same units):

    E(alpha) = w_p sum_i f(x_i)^2 + w_n sum_j c_j |grad f(c_j) - n_j|^2 + lam alpha^T K alpha

with ``f(x) = sum_d sum_v alpha_v B((x / 2^d) - (v + 1/2))``, ``w_p = pos_weight / N``,
``w_n = normal_weight / M`` (N points, M normal centres), per-target weights ``c_j``
(:attr:`NormalConstraints.weights`, 1 when unset) and ``K_vv' = B(v - v')`` within
a level. Normal equations ``A alpha = rhs`` with
``A = w_p G^T G + w_n Q^T C Q + lam K`` and ``rhs = w_n Q^T C n`` (C = diag(c)).

Fast path: every basis function is a triquadratic polynomial inside one finest cell, so
the point term reduces to 125 monomial moments per occupied cell (:func:`_point_moments`),
the normal term to a fixed 27x27 matrix per constraint, and both become the cell's 27x27
matrix in one GEMM. Per level d the same-level block is gathered from the cells' matrices
into a 5x5x5-stencil layout (rows of level d, all 125 neighbour columns, present or not;
:func:`_same_level_table`); the coarser-column blocks (d, d' > d) follow from that table by
the exact B-spline two-scale relation (:func:`_coarsen_table`: a (V_d, 125) x (125, 125)
product per level pair), and the cell matrices move to the parent cells by exact per-axis
basis changes (:mod:`recon.backends.kernel.tables`). Each block becomes CSR straight from
its table (the slots are in key order, so no sort); the CPU matrix keeps the upper blocks
and their transposes (:class:`BlockSymmetricMatrix`). :func:`assemble_reference` (dense,
float64) is the reference the tests compare against.

Measured on the 200k-point bunny (66.5k unknowns): 16 s before this layout (per-cell
basis changes and scatters for every level pair, COO -> CSR), ~2-3 s after; 1M points
(335k unknowns): 90 s -> ~11 s on the earlier machine; on the current (slower) one 18 s with
scattered cell matrices -> 12.7 s gathered, the normal term inside the moment GEMM and
2 torch threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recon.backends.kernel.svh import OFFSETS27, OFFSETS125, VoxelLevel, pack_keys, unique_coords, unpack_keys
from recon.backends.kernel.tables import (centre_gradients, coarse_transform, gram_stencil,
                                          product_poly, two_scale_stencil)


@dataclass
class NormalConstraints:
    """Normal targets at voxel centres of one level.

    Attributes:
        level: the level d whose voxel centres carry the constraints.
        index: (M_d,) int64 voxel indices into that level.
        normals: (M_d, 3) float32 unit target gradients (outward).
        weights: (M_d,) float32 per-target weights (multiplying ``w_n``), or None for all 1.
    """

    level: int
    index: torch.Tensor
    normals: torch.Tensor
    weights: torch.Tensor | None = None

    def weight_vector(self) -> torch.Tensor:
        """(M_d,) float32 per-target weights (ones when none are set)."""
        if self.weights is None:
            return torch.ones(len(self.index), dtype=torch.float32, device=self.index.device)
        return self.weights.to(torch.float32)


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


class BlockSymmetricMatrix:
    """Symmetric matrix stored as its level-pair blocks (scipy CSR), unknowns ordered by level.

    ``A[d, e] = blocks[(d, e)]`` for d <= e and ``A[e, d] = lower[(d, e)]``, the transpose of
    ``blocks[(d, e)]`` converted to CSR once. Both directions are row-major products: scipy's
    product with a transposed CSR (a CSC product, a scatter) took 3-4x as long as a CSR product
    of the same block (1M points: 136 ms of the 200 ms matrix-vector product; 0.46 s to build all
    the transposes once, +28M stored entries).

    ``workers`` > 1 computes the rows of the finest level and those of the coarser levels in two
    threads (scipy's sparse products release the GIL): about 1.3x on a 2-core machine, where the
    products are limited by memory bandwidth.

    Attributes:
        blocks: {(d, e): (V_d, V_e) float32 CSR} for d <= e.
        lower: {(d, e): (V_e, V_d) float32 CSR} for d < e (the transposes).
        offsets: (L + 1,) level boundaries.
    """

    def __init__(self, blocks: dict, offsets: list[int], workers: int = 1):
        self.blocks = blocks
        self.lower = {(d, e): m.T.tocsr() for (d, e), m in blocks.items() if e != d}
        self.offsets = list(offsets)
        self.shape = (self.offsets[-1], self.offsets[-1])
        self.dtype = np.float32
        self.workers = max(1, int(workers))
        self._pool = None

    @property
    def nnz(self) -> int:
        return int(sum(m.nnz * (1 if d == e else 2) for (d, e), m in self.blocks.items()))

    def _sl(self, d: int) -> slice:
        return slice(self.offsets[d], self.offsets[d + 1])

    def row_block(self, a: int, e: int):
        """The CSR block A[a, e] (either stored block or stored transpose)."""
        return self.blocks[(a, e)] if a <= e else self.lower[(e, a)]

    def _rows(self, a: int, x: np.ndarray) -> np.ndarray:
        """(A x) restricted to the rows of level a: (V_a,) float32."""
        L = len(self.offsets) - 1
        y = np.zeros(self.offsets[a + 1] - self.offsets[a], dtype=np.float32)
        for e in range(L):
            if (min(a, e), max(a, e)) in self.blocks:
                y += self.row_block(a, e) @ x[self._sl(e)]
        return y

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        """(V,) -> (V,) float32."""
        L = len(self.offsets) - 1
        y = np.empty(self.shape[0], dtype=np.float32)
        if self.workers > 1 and L > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="recon-matvec")
            coarse = self._pool.submit(lambda: [self._rows(a, x) for a in range(1, L)])
            y[self._sl(0)] = self._rows(0, x)
            for a, ya in zip(range(1, L), coarse.result()):
                y[self._sl(a)] = ya
            return y
        for a in range(L):
            y[self._sl(a)] = self._rows(a, x)
        return y

    def diagonal_block(self, d: int):
        """(V_d, V_d) CSR block A[d, d]."""
        return self.blocks[(d, d)]

    def column_matvec(self, d: int, v: np.ndarray) -> np.ndarray:
        """A[:, d] @ v for a (V_d,) vector -> (V,) float32."""
        y = np.zeros(self.shape[0], dtype=np.float32)
        for a in range(len(self.offsets) - 1):
            if (min(a, d), max(a, d)) in self.blocks:
                y[self._sl(a)] = self.row_block(a, d) @ v
        return y

    def diagonal(self) -> np.ndarray:
        return np.concatenate([self.blocks[(d, d)].diagonal() for d in range(len(self.offsets) - 1)])

    def tocsr(self):
        """The full matrix as one scipy CSR (for tests and small systems)."""
        import scipy.sparse as sp

        L = len(self.offsets) - 1
        grid = [[None] * L for _ in range(L)]
        for (d, e), m in self.blocks.items():
            grid[d][e] = m
            if e != d:
                grid[e][d] = self.lower[(d, e)]
        return sp.bmat(grid, format="csr", dtype=np.float32)

    def toarray(self) -> np.ndarray:
        return self.tocsr().toarray()

    def __del__(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)


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


def _moment_map() -> torch.Tensor:
    """(125, 729) float64 W: cell matrix ``S[(x,y,z),(X,Y,Z)] = sum_abc mom[a,b,c] W[abc, xyzXYZ]``."""
    poly = product_poly()  # (3, 3, 5): coefficient of tau^a in phi_x phi_X (one axis)
    w = torch.einsum("xXa,yYb,zZc->abcxyzXYZ", poly, poly, poly)
    return w.reshape(125, 729)


def _point_moments(u: torch.Tensor, cell: torch.Tensor, C: int, batch: int = 262_144) -> torch.Tensor:
    """(C, 125) float64 monomial moments ``sum_p tau_x^a tau_y^b tau_z^c`` per cell (index a*25 + b*5 + c).

    Per batch of points: the 125 monomials of each point's in-cell position ``tau``, added to the
    point's cell row (``index_add_``, float64). 1M points: 0.7 s (a scipy CSC product did the same
    in 5-15 s, its scattered row writes were the cost). :func:`point_moments_reference` is the
    per-point reference.

    Args:
        u: (N, 3) float32 points, finest-voxel units; cell: (N,) int64 cell index of each point.
        C: number of cells.
    """
    out = torch.zeros(C, 125, dtype=torch.float64, device=u.device)
    pw = torch.arange(5, dtype=torch.float64, device=u.device)
    for i in range(0, len(u), batch):
        ub = u[i:i + batch].to(torch.float64)
        p = (ub - torch.floor(ub))[:, :, None] ** pw  # (n, 3, 5)
        m = (p[:, 0, :, None, None] * p[:, 1, None, :, None] * p[:, 2, None, None, :]).reshape(-1, 125)
        out.index_add_(0, cell[i:i + batch], m)
    return out


def point_moments_reference(u: torch.Tensor, cell: torch.Tensor, C: int) -> torch.Tensor:
    """Reference of :func:`_point_moments`: numpy, one ``np.add.at`` per monomial (float64)."""
    ub = u.detach().cpu().numpy().astype(np.float64)
    tau = ub - np.floor(ub)
    cn = cell.detach().cpu().numpy()
    out = np.zeros((C, 125))
    for a in range(5):
        for b in range(5):
            for c in range(5):
                np.add.at(out[:, a * 25 + b * 5 + c], cn, tau[:, 0] ** a * tau[:, 1] ** b * tau[:, 2] ** c)
    return torch.from_numpy(out)


@dataclass
class _FineCells:
    """The finest level's cells, with the point term kept apart from the normal term.

    Most finest cells (about 60 % at 1M points) hold normal targets but no point, and their matrix is
    a fixed rank-3 pattern per target kind times a weight; they are carried as weights, and only the
    P cells with points get a (27, 27) point-term matrix. :func:`_same_level_table` and
    :func:`_to_parents` expand the weights with the patterns (a small GEMM) where a full matrix is needed.

    Attributes:
        keys: (C,) int64 sorted cell keys; cc: (C, 3) int64 cell coordinates.
        S: (P + 1, 27, 27) float32 point-term matrices of the cells with points; row P is zero.
        point_row: (C + 1,) int64 row of ``S`` for each cell (P for cells without points and for index C).
        weights: (C + 1, J) float32 summed normal-target weights per cell and target kind; row C zero.
        patterns: (J, 27, 27) float32 normal-term matrix of one unit-weight target of each kind (w_n included).
        r: (C + 1, 27) float32 right-hand sides; row C zero.
    """

    keys: torch.Tensor
    cc: torch.Tensor
    S: torch.Tensor
    point_row: torch.Tensor
    weights: torch.Tensor
    patterns: torch.Tensor
    r: torch.Tensor


def _fine_cells(u: torch.Tensor, w_p: float, constraints: list[NormalConstraints], levels: list[VoxelLevel],
                w_n: float, batch: int = 65536) -> _FineCells:
    """Cells of the finest level: point moments -> point-term matrices, normal targets -> weights.

    The target kinds are the in-cell positions of the constraint centres: a level-0 voxel centre is the
    middle of its cell (tau = 1/2), a coarser voxel centre a cell corner (tau = 0); targets of one kind
    share one 27x27 pattern ``w_n g^T g`` (g the (3, 27) basis gradients there).
    """
    dev = u.device
    pcells = torch.floor(u).to(torch.int64)
    parts = [pcells]
    cons = []
    for c in constraints:
        cells, tau = _constraint_cells(c, levels)
        parts.append(cells)
        cons.append((cells, tau, c.normals, c.weight_vector()))
    keys, inverse = unique_coords(torch.cat(parts), return_inverse=True)
    C = len(keys)
    pinv = inverse[:len(u)]
    # point term, on the cells that hold points only
    has_point = torch.zeros(C + 1, dtype=torch.bool, device=dev)
    has_point[pinv] = True
    prow_of_cell = torch.cumsum(has_point, 0) - 1
    P = int(has_point.sum())
    point_row = torch.where(has_point, prow_of_cell, torch.full_like(prow_of_cell, P))
    mom = _point_moments(u, point_row[pinv], P)
    W = (_moment_map() * w_p).to(dev, torch.float32)
    S = torch.empty(P + 1, 27, 27, dtype=torch.float32, device=dev)
    S[P] = 0.0  # the "absent cell" row (see _same_level_table)
    for i in range(0, P, batch):  # GEMM moments -> 27x27 (float32: 2x faster, errors ~1e-7 relative)
        j = min(i + batch, P)
        torch.mm(mom[i:j].to(torch.float32), W, out=S[i:j].view(-1, 729))
    del mom
    # normal term: weights per cell and target kind, right-hand sides
    kinds = sorted({tau for _, tau, _, _ in cons})
    weights = torch.zeros(C + 1, max(len(kinds), 1), dtype=torch.float64, device=dev)
    patterns = torch.zeros(max(len(kinds), 1), 27, 27, dtype=torch.float64, device=dev)
    r = torch.zeros(C + 1, 27, dtype=torch.float64, device=dev)
    start = len(u)
    for cells, tau, nrm, wt in cons:
        gr = centre_gradients(tau).to(dev)  # (3, 27)
        j = kinds.index(tau)
        inv = inverse[start:start + len(cells)]
        start += len(cells)
        wt = wt.to(torch.float64)
        weights[:, j].index_add_(0, inv, wt)
        patterns[j] = w_n * (gr.T @ gr)
        r.index_add_(0, inv, w_n * wt[:, None] * (nrm.to(torch.float64) @ gr))
    return _FineCells(keys, unpack_keys(keys), S, point_row, weights.to(torch.float32), patterns.to(torch.float32),
                      r.to(torch.float32))


def _pattern_stencils(patterns: torch.Tensor) -> torch.Tensor:
    """(J, 27, 27) cell patterns -> (27 * J, 125): row (a, j) puts pattern j's row a on a voxel's stencil.

    A voxel that is function ``a`` of a cell sees that cell's pattern row ``a`` at column offsets
    ``o_b - o_a`` (see :func:`_same_level_table`).
    """
    J = patterns.shape[0]
    out = torch.zeros(27, J, 5, 5, 5, dtype=patterns.dtype, device=patterns.device)
    for a in range(27):
        ox, oy, oz = a // 9, (a // 3) % 3, a % 3
        out[a, :, 2 - ox:5 - ox, 2 - oy:5 - oy, 2 - oz:5 - oz] = patterns[:, a, :].reshape(J, 3, 3, 3)
    return out.reshape(27 * J, 125)


def _same_level_table(S: torch.Tensor, r: torch.Tensor, cc: torch.Tensor, level: VoxelLevel,
                      batch: int = 65536, fine: _FineCells | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-level block of one level in stencil layout, and its right-hand side, gathered from the cells.

    Cell ``c``'s matrix couples its 27 neighbour voxels ``c + o_a``; voxel ``v`` is function ``a`` of
    cell ``v - o_a``, whose row ``a`` lands on the 3x3x3 sub-cube of ``v``'s 5x5x5 stencil that starts
    at ``2 - o_a`` (column offsets ``o_b - o_a``). Per voxel batch and row offset this is one gather
    of 27-value rows and one add into a strided view: no scatter (a scatter of the same C x 729 values
    with ``index_add_`` took 2.6x as long at 1M points). :func:`assemble_reference` checks the result.

    Args:
        S: (C + 1, 27, 27) float32 cell matrices, row C zero; r: (C + 1, 27) float32, row C zero.
            With ``fine`` both are ignored (its point-term matrices, weights and rhs are used).
        cc: (C, 3) int64 cell coordinates of this level, sorted by key (as ``unique_coords`` returns them).
        level: the voxel level (rows).
        batch: voxels per batch.
        fine: the finest level's cells (:class:`_FineCells`), for level 0.

    Returns:
        (V, 125) float32 values at the 125 stencil offsets (OFFSETS125 order), and (V,) float32 rhs.
    """
    if fine is not None:
        S, r, cc = fine.S, fine.r, fine.cc
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
    pst = _pattern_stencils(fine.patterns) if fine is not None else None
    for i in range(0, V, batch):
        cidx = cells.lookup_offsets(coords[i:i + batch], neg)  # (b, 27): cell v - o_a
        cidx = torch.where(cidx >= 0, cidx, torch.full_like(cidx, C))
        srow = fine.point_row[cidx] if fine is not None else cidx
        flat = srow * 27 + a27
        Tb = T[i:i + batch]
        if fine is not None:  # normal targets: weights x patterns
            Tb += (fine.weights[cidx].reshape(len(cidx), -1) @ pst).view(-1, 5, 5, 5)
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


def _to_parents(S: torch.Tensor | None, r: torch.Tensor | None, cc: torch.Tensor | None, cell_batch: int = 65536,
                fine: _FineCells | None = None):
    """Cells' moment matrices and right-hand sides expressed in, and summed into, their parent cells.

    A cell with coordinate parity ``k`` (3 bits) sees its parent's 27 functions through the fixed
    27x27 map ``K_k = kron(R[kx], R[ky], R[kz])`` (:func:`coarse_transform`): ``S_p += K S K^T`` and
    ``r_p += K r``. Cells are grouped by parity so each group needs one ``K_k``; ``S K^T`` is one
    (c * 27, 27) x (27, 27) GEMM, then ``K (S K^T)`` a batched product
    (:func:`to_parents_reference` builds the per-cell Kronecker products instead).

    Args:
        S: (C [+ 1], 27, 27) float32; r: (C [+ 1], 27) float32; cc: (C, 3) int64 cell coordinates
            (a row C beyond the cells, the zero "absent cell", is ignored).
        fine: the finest level's cells instead of S, r, cc (point-term matrices of the cells with points
            moved as above; the normal targets' weights summed per parent, child parity and kind, then
            expanded with the moved patterns ``K_k G_j K_k^T`` in one GEMM).

    Returns:
        parent (C' + 1, 27, 27) matrices, (C' + 1, 27) right-hand sides (row C' zero: the absent cell)
        and (C', 3) coordinates.
    """
    if fine is not None:
        S, r, cc = fine.S, fine.r, fine.cc
    dev = S.device
    parent, inv = unique_coords(cc >> 1, return_inverse=True)
    C1 = len(parent)
    R1 = coarse_transform(1).to(dev, torch.float32)
    Sp = torch.zeros(C1 + 1, 27, 27, dtype=torch.float32, device=dev)
    rp = torch.zeros(C1 + 1, 27, dtype=torch.float32, device=dev)
    par = cc & 1
    cls = par[:, 0] * 4 + par[:, 1] * 2 + par[:, 2]
    if fine is not None:
        J = fine.weights.shape[1]
        wp = torch.zeros(C1, 8, J, dtype=torch.float32, device=dev)  # parent weights per child parity and kind
        pk = []
    for k in range(8):
        K = _kron3(R1[k >> 2][None], R1[(k >> 1) & 1][None], R1[k & 1][None])[0]  # (27, 27)
        members = torch.nonzero(cls == k).squeeze(1)
        for i in range(0, len(members), cell_batch):
            idx = members[i:i + cell_batch]
            rp.index_add_(0, inv[idx], r[idx] @ K.T)
            if fine is not None:
                wp[:, k].index_add_(0, inv[idx], fine.weights[idx])
                idx = idx[fine.point_row[idx] < len(S) - 1]  # the point-term matrices: cells with points only
                if len(idx) == 0:
                    continue
                Sidx, target = S[fine.point_row[idx]], inv[idx]
            else:
                Sidx, target = S[idx], inv[idx]
            Y = (Sidx.reshape(-1, 27) @ K.T).reshape(-1, 27, 27)
            Sp.index_add_(0, target, torch.matmul(K, Y))
        if fine is not None:
            pk.append(K @ fine.patterns @ K.T)  # (J, 27, 27)
    if fine is not None:  # normal targets of the children, expanded with their patterns in the parent
        G = torch.stack(pk).reshape(8 * J, 729)
        for i in range(0, C1, cell_batch):
            j = min(i + cell_batch, C1)
            Sp[i:j] += (wp[i:j].reshape(j - i, 8 * J) @ G).view(-1, 27, 27)
    return Sp, rp, unpack_keys(parent)


def to_parents_reference(S: torch.Tensor, r: torch.Tensor, cc: torch.Tensor):
    """Reference of :func:`_to_parents`: a Kronecker product per cell, batched matrix products."""
    parent, inv = unique_coords(cc >> 1, return_inverse=True)
    q = coarse_transform(1).to(S.device, S.dtype)[cc & 1]
    kq = _kron3(q[:, 0], q[:, 1], q[:, 2])
    Sp = torch.zeros(len(parent), 27, 27, dtype=S.dtype, device=S.device)
    rp = torch.zeros(len(parent), 27, dtype=S.dtype, device=S.device)
    Sp.index_add_(0, inv, kq @ S @ kq.transpose(1, 2))
    rp.index_add_(0, inv, (kq @ r[:, :, None])[..., 0])
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
    :func:`_same_level_table`; on the finest level from :class:`_FineCells`, point-term matrices
    plus normal-target weights); the blocks with coarser columns e > d follow from it by the
    exact two-scale relation of the B-splines (:func:`_coarsen_table`, one (V_d, 125) x
    (125, 125) product per level pair) instead of per-cell basis changes; then the cell
    matrices move to the parent cells (:func:`_to_parents`). The regulariser is added to the
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
    fine = _fine_cells(u, w_p, constraints, levels, w_n)
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
        T, rb = _same_level_table(S, r, cc, levels[d], cell_batch, fine=fine if d == 0 else None)
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
            S, r, cc = _to_parents(S, r, cc, cell_batch, fine=fine if d == 0 else None)
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
        import scipy.sparse as sp

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
