"""The finest cells of the kernel system: normal targets, per-cell moments and matrices.

Inside one finest cell every basis function is a triquadratic polynomial, so the point term of
the energy (see :mod:`recon.backends.kernel.system`) reduces to 125 monomial moments per cell
(:func:`point_moments`) and the normal term to one fixed 27x27 pattern per kind of target;
:func:`fine_cells` turns the points and the :class:`NormalConstraints` into :class:`FineCells`,
from which the assembly gathers the finest level's block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.backends.kernel.bspline_tables import centre_gradients, product_poly
from recon.backends.kernel.svh import VoxelLevel, unique_coords, unpack_keys


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


def _constraint_cells(c: NormalConstraints, levels: list[VoxelLevel]) -> tuple[torch.Tensor, float]:
    """(M, 3) int64 finest cells holding the centres and the per-axis fraction of the centre."""
    coords = levels[c.level].coords[c.index]
    if c.level == 0:
        return coords, 0.5
    return coords * 2**c.level + 2 ** (c.level - 1), 0.0


def kron3(rx: torch.Tensor, ry: torch.Tensor, rz: torch.Tensor) -> torch.Tensor:
    """Per-cell Kronecker product of three (c, 3, 3) per-axis maps -> (c, 27, 27)."""
    return (rx[:, :, None, None, :, None, None] * ry[:, None, :, None, None, :, None]
            * rz[:, None, None, :, None, None, :]).reshape(-1, 27, 27)


def _moment_map() -> torch.Tensor:
    """(125, 729) float64 W: cell matrix ``S[(x,y,z),(X,Y,Z)] = sum_abc mom[a,b,c] W[abc, xyzXYZ]``."""
    poly = product_poly()  # (3, 3, 5): coefficient of tau^a in phi_x phi_X (one axis)
    w = torch.einsum("xXa,yYb,zZc->abcxyzXYZ", poly, poly, poly)
    return w.reshape(125, 729)


def point_moments(u: torch.Tensor, cell: torch.Tensor, C: int, batch: int = 262_144) -> torch.Tensor:
    """(C, 125) float64 monomial moments ``sum_p tau_x^a tau_y^b tau_z^c`` per cell (index a*25 + b*5 + c).

    Per batch of points: the 125 monomials of each point's in-cell position ``tau``, added to the
    point's cell row (``index_add_``, float64).
    :func:`recon.backends.kernel.system_reference.point_moments_reference` is the per-point reference.

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


@dataclass
class FineCells:
    """The finest level's cells, with the point term kept apart from the normal term.

    Most finest cells (about 60 % at 1M points) hold normal targets but no point, and their matrix is
    a fixed rank-3 pattern per target kind times a weight; they are carried as weights, and only the
    P cells with points get a (27, 27) point-term matrix. :func:`recon.backends.kernel.system._fine_level_table` and
    :func:`recon.backends.kernel.system._fine_to_parents` expand the weights with the patterns (a small
    GEMM) where a full matrix is needed.

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


def fine_cells(u: torch.Tensor, w_p: float, constraints: list[NormalConstraints], levels: list[VoxelLevel],
                w_n: float, batch: int = 65536) -> FineCells:
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
    mom = point_moments(u, point_row[pinv], P)
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
    return FineCells(keys, unpack_keys(keys), S, point_row, weights.to(torch.float32), patterns.to(torch.float32),
                      r.to(torch.float32))


def pattern_stencils(patterns: torch.Tensor) -> torch.Tensor:
    """(J, 27, 27) cell patterns -> (27 * J, 125): row (a, j) puts pattern j's row a on a voxel's stencil.

    A voxel that is function ``a`` of a cell sees that cell's pattern row ``a`` at column offsets
    ``o_b - o_a`` (see :func:`recon.backends.kernel.system._same_level_table`).
    """
    J = patterns.shape[0]
    out = torch.zeros(27, J, 5, 5, 5, dtype=patterns.dtype, device=patterns.device)
    for a in range(27):
        ox, oy, oz = a // 9, (a // 3) % 3, a % 3
        out[a, :, 2 - ox:5 - ox, 2 - oy:5 - oy, 2 - oz:5 - oz] = patterns[:, a, :].reshape(J, 3, 3, 3)
    return out.reshape(27 * J, 125)
