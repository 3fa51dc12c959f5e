"""Preconditioned conjugate gradients in float32 (numpy + scipy on CPU, torch on CUDA).

On the CPU the solve runs on numpy arrays with a scipy CSR matrix: the vectors are small
(10^4..10^6 entries) and torch's per-operation thread synchronisation dominates there
(benchmarks/results/kernel_design.md).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch

Operator = Callable[[Any], Any]


@dataclass
class SolverInfo:
    """Outcome of a solve.

    Attributes:
        iterations: CG iterations run.
        residual: final relative residual |b - A x| / |b| (recursive estimate).
        converged: whether ``residual <= tol`` was reached.
        seconds: wall time of the solve (preconditioner setup included).
        unknowns: system size.
        preconditioner: name of the preconditioner used.
        setup_seconds: preconditioner setup time.
    """

    iterations: int
    residual: float
    converged: bool
    seconds: float = 0.0
    unknowns: int = 0
    preconditioner: str = "jacobi"
    setup_seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def matvec_operator(matrix: Any) -> Operator:
    """y = A x: torch sparse (CSR) matrix on torch vectors, or scipy CSR on numpy vectors."""
    if isinstance(matrix, torch.Tensor):
        return lambda x: torch.mv(matrix, x) if matrix.layout == torch.sparse_csr else matrix @ x
    return lambda x: matrix @ x


def _copy(a: Any) -> Any:
    return a.clone() if isinstance(a, torch.Tensor) else a.copy()


def _norm(a: Any) -> float:
    return float(torch.linalg.vector_norm(a)) if isinstance(a, torch.Tensor) else float(np.linalg.norm(a))


def pcg(matvec: Operator, b: Any, precond: Operator, *, tol: float = 1e-5, max_iter: int = 2000,
        x0: Any = None, check_every: int = 1) -> tuple[Any, SolverInfo]:
    """Solve A x = b for SPD A by preconditioned CG (numpy or torch vectors, same kind throughout).

    Args:
        matvec: x -> A x, (V,) -> (V,).
        b: (V,) right-hand side (numpy float32 or torch tensor).
        precond: r -> M^-1 r (SPD approximation of A^-1).
        tol: stop when |r| <= tol |b|.
        max_iter: iteration cap.
        x0: initial guess (zeros by default).
        check_every: test the stopping rule every this many iterations (fewer device syncs).

    Returns:
        x (V,) and a :class:`SolverInfo`.
    """
    t0 = time.perf_counter()
    bnorm = _norm(b)
    if bnorm == 0.0:
        return b * 0, SolverInfo(0, 0.0, True, 0.0, int(b.shape[0]))
    x = b * 0 if x0 is None else _copy(x0)
    r = b - matvec(x) if x0 is not None else _copy(b)
    z = precond(r)
    p = _copy(z)
    rz = r @ z
    it, rel = 0, _norm(r) / bnorm
    while it < max_iter and rel > tol:
        q = matvec(p)
        alpha = rz / (p @ q)
        x += alpha * p
        r -= alpha * q
        it += 1
        if it % check_every == 0 or it == max_iter:
            rel = _norm(r) / bnorm
            if rel <= tol:
                break
        z = precond(r)
        rz_new = r @ z
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x, SolverInfo(it, rel, rel <= tol, time.perf_counter() - t0, int(b.shape[0]))


def jacobi(diagonal: Any) -> Operator:
    """Inverse-diagonal preconditioner (numpy or torch)."""
    if isinstance(diagonal, torch.Tensor):
        inv = 1.0 / diagonal.clamp_min(torch.finfo(diagonal.dtype).tiny)
    else:
        inv = (1.0 / np.maximum(diagonal, np.finfo(diagonal.dtype).tiny)).astype(diagonal.dtype)
    return lambda r: r * inv
