"""Multilevel preconditioner for the hierarchical B-spline system (CPU, scipy CSR).

The unknowns are ordered level by level (finest first); the level blocks are the natural
subspaces of a multiplicative Schwarz method. One application of the preconditioner is a
symmetric sweep over the levels, coarse -> fine -> coarse::

    for d in L-1, ..., 1, 0, 1, ..., L-1:
        dz_d = S_d (r - A z)_d ;  z_d += dz_d

with ``S_d`` one symmetric Gauss-Seidel sweep on the diagonal block ``A_dd`` and an exact
(sparse LU) solve on the coarsest level. The residual of a level is formed when the sweep
reaches it, from its row blocks ``A[d, e]`` and the corrections so far. The order is a palindrome of symmetric sub-solvers, so
the operator is symmetric positive definite: a valid CG preconditioner.

Coarse first rather than fine first (0, 1, .., L-1, .., 0): the finest level, which holds
~3/4 of the unknowns and of the non-zeros, is swept once per application instead of twice,
and the coarse correction comes before it. More smoothing sweeps per level do not help: what
converges slowly are the directions along which the levels represent the same function (the
hierarchy is a generating system, not a basis), held only by the small regulariser, and those
hardly change the field (see ``KernelConfig.solver_tol``). The measurements behind these choices
are in benchmarks/results/kernel_design.md.

The fast Gauss-Seidel sweeps use pyamg's compiled relaxation when it is installed;
:func:`sgs_reference` (scipy triangular solves, slower) is the reference used in the tests and
the fallback.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from recon.backends.kernel.solver import Operator

try:  # optional compiled Gauss-Seidel
    from pyamg.relaxation.relaxation import gauss_seidel as _pyamg_gs
except Exception:  # noqa: BLE001 - pyamg missing or broken: use the scipy reference
    _pyamg_gs = None

COARSE_DIRECT_LIMIT = 40_000
"""The coarsest level is factorised (sparse LU) up to this many unknowns; above, it is smoothed.
The limit keeps the factor's fill (which grows like n^(4/3) for a 3D stencil) small."""


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
    if hasattr(matrix, "row_block"):  # BlockSymmetricMatrix: use its blocks, copy nothing
        def row_block(d: int, e: int):
            return matrix.row_block(d, e) if (min(d, e), max(d, e)) in matrix.blocks else None
    else:
        A = matrix.tocsr()
        cache = {(d, e): A[sl[d], sl[e]].tocsr() for d in range(L) for e in range(L)}

        def row_block(d: int, e: int):
            return cache[(d, e)] if cache[(d, e)].nnz else None
    blocks = [row_block(d, d) for d in range(L)]
    nonempty = [d for d in range(L) if offsets[d + 1] > offsets[d]]
    coarse = nonempty[-1] if nonempty else -1
    lu = None
    if coarse >= 0 and blocks[coarse].shape[0] <= COARSE_DIRECT_LIMIT:
        try:
            lu = splu(sp.csc_matrix(blocks[coarse], dtype=np.float64), permc_spec="MMD_AT_PLUS_A",
                      diag_pivot_thresh=0.0)
        except RuntimeError:  # singular: smooth instead
            lu = None

    def solve_level(d: int, res: np.ndarray) -> np.ndarray:
        if d == coarse and lu is not None:
            return lu.solve(res.astype(np.float64)).astype(res.dtype)
        return smooth(blocks[d], res)

    order = nonempty[::-1] + nonempty[1:]  # coarse -> fine -> coarse
    pairs = {(d, e): row_block(d, e) for d in nonempty for e in nonempty if e != d}
    pairs = {k: m for k, m in pairs.items() if m is not None}

    def apply(r: np.ndarray) -> np.ndarray:
        # The residual of level d is formed when d is visited, from the row blocks A[d, e] and the
        # levels' current corrections z_e (fewer non-zeros touched than updating the whole residual
        # after every level: 1M points, 81M against 128M per application).
        z = np.zeros_like(r)
        touched: set[int] = set()
        for d in order:
            res = r[sl[d]].copy()
            for e in touched:
                m = pairs.get((d, e))
                if m is not None:
                    res -= m @ z[sl[e]]
            if d in touched:  # revisit: the level's own block
                res -= blocks[d] @ z[sl[d]]
            z[sl[d]] += solve_level(d, res)
            touched.add(d)
        return z

    return apply


__all__ = ["COARSE_DIRECT_LIMIT", "have_fast_smoother", "multilevel_preconditioner", "sgs_reference"]
