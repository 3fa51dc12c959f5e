"""Multilevel preconditioner for the hierarchical B-spline system (CPU, scipy CSR).

The unknowns are ordered level by level (finest first); the level blocks are the natural
subspaces of a multiplicative Schwarz method. One application of the preconditioner is a
symmetric sweep over the levels, fine -> coarse -> fine::

    for d in 0, 1, ..., L-1, L-2, ..., 0:
        dz_d = S_d (r - A z)_d ;  z_d += dz_d

with ``S_d`` one symmetric Gauss-Seidel sweep on the diagonal block ``A_dd`` and an exact
(Cholesky) solve on the coarsest level. The residual is updated with the column block
``A[:, d] dz_d`` after each level, so one application costs about two matrix-vector
products. The operator is symmetric positive definite (symmetric sweep order, symmetric
sub-solvers), so it is a valid CG preconditioner.

Measured on the 200k-point bunny (66.5k unknowns, 18.4M non-zeros, tol 1e-5): Jacobi-PCG
228 iterations / 2.7 s, this one 37 iterations / 2.0 s. The fast Gauss-Seidel sweeps use
pyamg's compiled relaxation when it is installed; :func:`sgs_reference` (scipy triangular
solves, slower) is the reference used in the tests and the fallback.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from recon.backends.kernel.solver import Operator

try:  # optional compiled Gauss-Seidel
    from pyamg.relaxation.relaxation import gauss_seidel as _pyamg_gs
except Exception:  # noqa: BLE001 - pyamg missing or broken: use the scipy reference
    _pyamg_gs = None

COARSE_DENSE_LIMIT = 2500
"""The coarsest level is factorised densely (Cholesky) up to this many unknowns; above, it is smoothed."""


def have_fast_smoother() -> bool:
    """Whether pyamg's compiled Gauss-Seidel is available."""
    return _pyamg_gs is not None


def sgs_reference(B: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
    """One symmetric Gauss-Seidel sweep for ``B x = b`` from x = 0 (slow reference, scipy).

    Forward ``x1 = (D + L)^-1 b``, then backward ``x = x1 + (D + U)^-1 (b - B x1)``.

    Args:
        B: (n, n) CSR matrix with a positive diagonal; b: (n,) float.

    Returns:
        (n,) float array, same dtype as ``b``.
    """
    from scipy.sparse.linalg import spsolve_triangular

    low = sp.tril(B, format="csr")
    up = sp.triu(B, format="csr")
    x1 = spsolve_triangular(low, b.astype(np.float64), lower=True)
    x = x1 + spsolve_triangular(up, b.astype(np.float64) - B @ x1, lower=False)
    return x.astype(b.dtype)


def _sgs_fast(B: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
    x = np.zeros_like(b)
    _pyamg_gs(B, x, b, iterations=1, sweep="symmetric")
    return x


def multilevel_preconditioner(matrix: sp.csr_matrix, offsets: list[int], *, fast: bool | None = None) -> Operator:
    """Symmetric level-block Gauss-Seidel V-sweep (see the module docstring).

    Args:
        matrix: (V, V) float32 SPD matrix, unknowns ordered by level: scipy CSR or a
            :class:`~recon.backends.kernel.system.BlockSymmetricMatrix`.
        offsets: (L + 1,) level boundaries into the unknowns.
        fast: use pyamg's compiled sweeps (default: when available); False forces the reference.

    Returns:
        r -> z, (V,) float32 numpy -> (V,) float32 numpy.
    """
    fast = have_fast_smoother() if fast is None else (fast and have_fast_smoother())
    smooth = _sgs_fast if fast else sgs_reference
    L = len(offsets) - 1
    sl = [slice(offsets[d], offsets[d + 1]) for d in range(L)]
    if hasattr(matrix, "column_matvec"):  # BlockSymmetricMatrix: use its blocks, copy nothing
        blocks = [matrix.diagonal_block(d) for d in range(L)]
        col_mv = matrix.column_matvec
    else:
        A = matrix.tocsr()
        blocks = [A[s, s].tocsr() for s in sl]
        cols = [A[:, s].tocsr() for s in sl]

        def col_mv(d: int, v: np.ndarray) -> np.ndarray:
            return cols[d] @ v
    nonempty = [d for d in range(L) if offsets[d + 1] > offsets[d]]
    coarse = nonempty[-1] if nonempty else -1
    chol = None
    if coarse >= 0 and blocks[coarse].shape[0] <= COARSE_DENSE_LIMIT:
        dense = blocks[coarse].toarray().astype(np.float64)
        try:
            chol = sla.cho_factor(dense)
        except np.linalg.LinAlgError:
            chol = None

    def solve_level(d: int, res: np.ndarray) -> np.ndarray:
        if d == coarse and chol is not None:
            return sla.cho_solve(chol, res.astype(np.float64)).astype(res.dtype)
        return smooth(blocks[d], res)

    order = nonempty + nonempty[-2::-1]

    def apply(r: np.ndarray) -> np.ndarray:
        z = np.zeros_like(r)
        res = r.copy()
        for i, d in enumerate(order):
            dz = solve_level(d, res[sl[d]])
            z[sl[d]] += dz
            if i + 1 < len(order):
                res -= col_mv(d, dz)
        return z

    return apply


__all__ = ["COARSE_DENSE_LIMIT", "have_fast_smoother", "multilevel_preconditioner", "sgs_reference"]
