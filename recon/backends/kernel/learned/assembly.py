"""Differentiable gradient-fitting system with the learned kernel (matrix-free, torch).

Energy (finest-voxel units, unknowns ordered level by level)::

    E(alpha) = sum_i w_i f(x_i)^2 + w_n sum_j c_j |grad f(c_j) - n_j|^2 + lam alpha^T K alpha

with ``f(x) = sum_d sum_v alpha_v K_d(x, v)``, ``w_i = pos_weight * m_i / sum(m)`` (m_i the
multiplicity of point i, 1 unless points were merged), ``w_n = normal_weight / M``, per-target
confidences ``c_j`` in (0, 1] (the training-free kernel's :func:`~recon.backends.kernel.splat.normal_confidence`,
default 1) and ``K_vv' = B(v - v') <F_v, F_v'>`` within a level. Normal equations ``A alpha = b``::

    A = G^T W G + w_n Q^T C Q + lam K,   b = w_n Q^T C n

G (N x V), Q (3M x V) and K (V x V) are :class:`StencilMatrix` objects: a sparse matrix in
COO form with a fixed number of entries per row (27 per level), stored as (R, J) column
indices and values. The values are ordinary differentiable torch tensors, so the system
depends differentiably on the network; PCG only needs ``A @ x``. :func:`dense_reference`
builds the same matrices densely from first principles for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.backends.kernel.basis import bspline
from recon.backends.kernel.learned.heads import PsiMLP
from recon.backends.kernel.learned.kernel import kernel_stencil
from recon.backends.kernel.learned.sparse_conv import gather_neighbours, neighbour_index
from recon.backends.kernel.svh import OFFSETS27, VoxelLevel

# b(o) of the 1D profile at integer offsets -1, 0, 1: the Gram stencil is their tensor product.
_B_INT = (0.25, 1.5, 0.25)


@dataclass
class StencilMatrix:
    """A sparse (R * B, n) matrix in COO form with J column slots per row group.

    Each of the R row groups has J column indices shared by its B rows (B = 1 for G and K;
    B = 3 for Q, whose three rows d/dx, d/dy, d/dz at a centre touch the same voxels).

    Attributes:
        cols: (R, J) int64 column indices, -1 for unused slots.
        vals: (R, J) values, or (B, R, J) for B > 1 (0 in unused slots); differentiable.
        n: number of columns.
    """

    cols: torch.Tensor
    vals: torch.Tensor
    n: int

    def __post_init__(self) -> None:
        self._flat = torch.where(self.cols >= 0, self.cols, torch.full_like(self.cols, self.n)).reshape(-1)

    @property
    def block(self) -> bool:
        return self.vals.dim() == 3

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) -> (R,) or (R, B)."""
        xp = torch.cat([x, x.new_zeros(1)])[self._flat].reshape(self.cols.shape)
        if self.block:  # elementwise per row of the block: several times faster than an einsum here
            return torch.stack([(v * xp).sum(1) for v in self.vals], 1)
        return (self.vals * xp).sum(1)

    def rmatvec(self, y: torch.Tensor) -> torch.Tensor:
        """(R,) or (R, B) -> (n,): the transpose product."""
        if self.block:
            contrib = self.vals[0] * y[:, :1]
            for b in range(1, len(self.vals)):
                contrib = contrib + self.vals[b] * y[:, b:b + 1]
        else:
            contrib = self.vals * y[:, None]
        out = y.new_zeros(self.n + 1)
        return out.index_add(0, self._flat, contrib.reshape(-1))[: self.n]

    def column_sq_sums(self, row_weights: torch.Tensor | float = 1.0) -> torch.Tensor:
        """(n,) sum_r w_r M_rv^2 (the diagonal of M^T W M)."""
        sq = (self.vals**2).sum(0) if self.block else self.vals**2
        w = row_weights[:, None] if isinstance(row_weights, torch.Tensor) else row_weights
        out = self.vals.new_zeros(self.n + 1)
        return out.index_add(0, self._flat, (w * sq).reshape(-1))[: self.n]

    def to_sparse_coo(self) -> torch.Tensor:
        """The matrix as a torch sparse COO tensor (R * B, n) (coalesced; rows r * B + b)."""
        cols = self.cols[:, None, :].expand(-1, 3, -1).reshape(-1, self.cols.shape[1]) if self.block else self.cols
        vals = self.vals.permute(1, 0, 2).reshape(len(cols), -1) if self.block else self.vals
        ok = cols >= 0
        rows = torch.arange(len(cols), device=cols.device)[:, None].expand_as(cols)
        return torch.sparse_coo_tensor(torch.stack([rows[ok], cols[ok]]), vals[ok], (len(cols), self.n),
                                       check_invariants=False).coalesce()

    def to_dense(self) -> torch.Tensor:
        return self.to_sparse_coo().to_dense()


@dataclass
class FitSystem:
    """The normal equations ``A alpha = b`` (see the module docstring).

    Attributes:
        G, Q, K: stencil matrices; point_w: (N,) point weights w_i; w_n, lam: scalars.
        rhs: (V,) b.
        offsets: (L + 1,) level boundaries of the unknowns.
        normal_conf: (M,) per-target confidences c_j, or None for all 1.
    """

    G: StencilMatrix
    Q: StencilMatrix
    K: StencilMatrix
    point_w: torch.Tensor
    w_n: float
    lam: float
    rhs: torch.Tensor
    offsets: list[int]
    normal_conf: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.offsets[-1]

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """A x, (V,) -> (V,)."""
        y = self.G.rmatvec(self.point_w * self.G.matvec(x))
        qx = self.Q.matvec(x)
        if self.normal_conf is not None:
            qx = qx * self.normal_conf[:, None]
        y = y + self.w_n * self.Q.rmatvec(qx)
        return y + self.lam * self.K.matvec(x)

    def diagonal(self) -> torch.Tensor:
        """(V,) diag(A) (for the Jacobi preconditioner)."""
        conf = 1.0 if self.normal_conf is None else self.normal_conf
        d = self.G.column_sq_sums(self.point_w) + self.w_n * self.Q.column_sq_sums(conf)
        kd = self.K.vals[:, 13] if self.K.vals.shape[1] == 27 else self.K.to_dense().diagonal()
        return d + self.lam * kd

    def to_dense(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A (V, V), b (V,)) dense, for tests."""
        G, Q, K = self.G.to_dense(), self.Q.to_dense(), self.K.to_dense()
        c = torch.ones(len(Q) // 3, dtype=Q.dtype) if self.normal_conf is None else self.normal_conf.to(Q.dtype)
        cq = c.repeat_interleave(3)[:, None] * Q  # rows (j, axis)
        return G.T @ (self.point_w[:, None] * G) + self.w_n * Q.T @ cq + self.lam * K, self.rhs


def _offsets(levels: list[VoxelLevel]) -> list[int]:
    off = [0]
    for lv in levels:
        off.append(off[-1] + len(lv))
    return off


def design_matrix(u: torch.Tensor, levels: list[VoxelLevel], feats: list[torch.Tensor | None],
                  psis: list[PsiMLP | None], grad: bool = False):
    """Rows K(u_i, .) over all levels: (N, 27 L) global columns and values (and (N, 27 L, 3) gradients)."""
    off = _offsets(levels)
    cols, vals, grads = [], [], []
    for d, lv in enumerate(levels):
        out = kernel_stencil(u, lv, feats[d], psis[d], grad)
        cols.append(torch.where(out[0] >= 0, out[0] + off[d], out[0]))
        vals.append(out[1])
        if grad:
            grads.append(out[2])
    return torch.cat(cols, 1), torch.cat(vals, 1), (torch.cat(grads, 1) if grad else None)


def gram_matrix(levels: list[VoxelLevel], feats: list[torch.Tensor | None], dtype=torch.float32) -> StencilMatrix:
    """K_vv' = B(v - v') <F_v, F_v'> within each level (27 entries per row)."""
    off = _offsets(levels)
    dev = levels[0].coords.device
    b = torch.tensor(_B_INT, dtype=dtype, device=dev)
    o = OFFSETS27.to(dev) + 1
    stencil = b[o[:, 0]] * b[o[:, 1]] * b[o[:, 2]]  # (27,)
    cols, vals = [], []
    for d, lv in enumerate(levels):
        nbr = neighbour_index(lv)
        if feats[d] is None:
            fac = torch.ones(nbr.shape, dtype=dtype, device=dev)
        else:
            fac = torch.einsum("vjc,vc->vj", gather_neighbours(feats[d], nbr), feats[d])
        vals.append(stencil[None] * fac * (nbr >= 0).to(dtype))
        cols.append(torch.where(nbr >= 0, nbr + off[d], nbr))
    return StencilMatrix(torch.cat(cols), torch.cat(vals), off[-1])


def constraint_centres(levels: list[VoxelLevel], level: int, index: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(M, 3) finest-voxel positions of the centres of voxels ``index`` of ``level``."""
    return ((levels[level].coords[index].to(dtype) + 0.5) * float(2**level))


def build_system(u: torch.Tensor, levels: list[VoxelLevel], feats: list[torch.Tensor | None],
                 psis: list[PsiMLP | None], centres: torch.Tensor, normals: torch.Tensor, *,
                 pos_weight: float, normal_weight: float, reg_weight: float,
                 multiplicity: torch.Tensor | None = None, normal_conf: torch.Tensor | None = None) -> FitSystem:
    """Assemble the learned gradient-fitting system.

    Args:
        u: (N, 3) points, finest-voxel units.
        levels: decoder voxel levels, finest first.
        feats: per level (V_d, k) kernel features or None (training-free kernel).
        psis: per level psi MLPs or None.
        centres: (M, 3) normal-constraint positions (finest-voxel units).
        normals: (M, 3) target gradients (outward unit normals), differentiable.
        pos_weight, normal_weight, reg_weight: NKSR weights (1e4, 1e4, 1).
        multiplicity: (N,) counts of merged points (default ones).
        normal_conf: (M,) per-target confidences in (0, 1] (default ones; not differentiated).

    Returns:
        The :class:`FitSystem`, differentiable w.r.t. feats, psi parameters and normals.
    """
    off = _offsets(levels)
    gc, gv, _ = design_matrix(u, levels, feats, psis)
    qc, _, qg = design_matrix(centres, levels, feats, psis, grad=True)
    M = len(centres)
    Q = StencilMatrix(qc, qg.permute(2, 0, 1).contiguous(), off[-1])  # rows (j, axis): Q_(j,a),v = d_a K(c_j, v)
    m = torch.ones(len(u), dtype=u.dtype, device=u.device) if multiplicity is None else multiplicity.to(u.dtype)
    point_w = pos_weight * m / m.sum().clamp_min(1.0)
    w_n = normal_weight / max(M, 1)
    conf = None if normal_conf is None else normal_conf.detach().to(u.dtype)
    target = normals.to(u.dtype) if conf is None else normals.to(u.dtype) * conf[:, None]
    rhs = w_n * Q.rmatvec(target)
    return FitSystem(StencilMatrix(gc, gv, off[-1]), Q, gram_matrix(levels, feats, u.dtype), point_w, w_n,
                     reg_weight, rhs, off, conf)


def dense_reference(u: torch.Tensor, levels: list[VoxelLevel], feats: list[torch.Tensor | None],
                    psis: list[PsiMLP | None], centres: torch.Tensor, normals: torch.Tensor, *,
                    pos_weight: float, normal_weight: float, reg_weight: float,
                    normal_conf: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Slow dense reference of :func:`build_system` (use float64): every kernel at every point.

    K(x, v) = B((x/s - c_v - 1/2)) <psi(z(x)), F_v> with z = sum over all voxels of B F / 8, and
    grad K by autograd through all of it.

    Returns:
        A (V, V) and b (V,).
    """
    def kernel_row(x: torch.Tensor) -> torch.Tensor:  # (K, 3) -> (K, V)
        cols = []
        for d, lv in enumerate(levels):
            s = 2.0**d
            c = lv.coords.to(x.dtype)
            t = x[:, None, :] / s - (c[None] + 0.5)
            B = bspline(t).prod(-1)
            if feats[d] is None:
                cols.append(B)
                continue
            z = (B / 8.0) @ feats[d]  # B-spline interpolation over all voxels
            p, _ = psis[d](z)
            cols.append(B * (p @ feats[d].T))
        return torch.cat(cols, 1)

    G = kernel_row(u)
    x = centres.detach().clone().requires_grad_(True)
    Kc = kernel_row(x)
    V = Kc.shape[1]
    rows = []
    for v in range(V):  # slow on purpose: one autograd pass per column (reference only)
        (gv,) = torch.autograd.grad(Kc[:, v].sum(), x, retain_graph=True, create_graph=True)
        rows.append(gv)
    Q = torch.stack(rows, 1).permute(0, 2, 1).reshape(-1, V)  # rows (j, axis)
    Kmat = torch.zeros(V, V, dtype=u.dtype)
    o = 0
    for d, lv in enumerate(levels):
        c = lv.coords.to(u.dtype)
        Bv = bspline(c[:, None, :] - c[None]).prod(-1)
        fac = torch.ones_like(Bv) if feats[d] is None else feats[d] @ feats[d].T
        Kmat[o:o + len(lv), o:o + len(lv)] = Bv * fac
        o += len(lv)
    N, M = len(u), len(centres)
    c = torch.ones(M, dtype=u.dtype) if normal_conf is None else normal_conf.to(u.dtype)
    C = torch.diag(c.repeat_interleave(3))
    A = pos_weight / N * G.T @ G + normal_weight / max(M, 1) * Q.T @ C @ Q + reg_weight * Kmat
    b = normal_weight / max(M, 1) * Q.T @ C @ normals.reshape(-1).to(u.dtype)
    return A, b
