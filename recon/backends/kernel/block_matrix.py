"""BlockSymmetricMatrix: the CPU form of the kernel system's matrix, as the solver uses it.

:func:`recon.backends.kernel.system.assemble` builds it; :mod:`recon.backends.kernel.solver`
multiplies with it and :mod:`recon.backends.kernel.precond` sweeps its level blocks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp


class BlockSymmetricMatrix:
    """Symmetric matrix stored as its level-pair blocks (scipy CSR), unknowns ordered by level.

    ``A[d, e] = blocks[(d, e)]`` for d <= e and ``A[e, d] = lower[(d, e)]``, the transpose of
    ``blocks[(d, e)]`` converted to CSR once: both directions are then row-major products (a
    product with a transposed CSR is a scatter and several times slower).

    ``workers`` > 1 computes the rows of the finest level and those of the coarser levels in two
    threads (scipy's sparse products release the GIL).

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
