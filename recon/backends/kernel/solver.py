"""Preconditioned conjugate gradients in float32 (torch, any device)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

Operator = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SolverInfo:
    """Outcome of a solve.

    Attributes:
        iterations: CG iterations run.
        residual: final relative residual |b - A x| / |b| (recursive estimate).
        converged: whether ``residual <= tol`` was reached.
        seconds: wall time of the solve.
        unknowns: system size.
        preconditioner: name of the preconditioner used.
    """

    iterations: int
    residual: float
    converged: bool
    seconds: float = 0.0
    unknowns: int = 0
    preconditioner: str = "jacobi"

    def as_dict(self) -> dict:
        return asdict(self)


def matvec_operator(matrix: torch.Tensor) -> Operator:
    """y = A x for a torch sparse (CSR) matrix, or a scipy CSR matrix on CPU tensors."""
    if isinstance(matrix, torch.Tensor):
        return lambda x: torch.mv(matrix, x) if matrix.layout == torch.sparse_csr else matrix @ x

    def mv(x: torch.Tensor) -> torch.Tensor:  # scipy path (CPU only)
        return torch.from_numpy(matrix @ x.numpy())

    return mv


def pcg(matvec: Operator, b: torch.Tensor, precond: Operator, *, tol: float = 1e-5, max_iter: int = 2000,
        x0: torch.Tensor | None = None, check_every: int = 1) -> tuple[torch.Tensor, SolverInfo]:
    """Solve A x = b for SPD A by preconditioned CG.

    Args:
        matvec: x -> A x, (V,) -> (V,).
        b: (V,) right-hand side.
        precond: r -> M^-1 r (SPD approximation of A^-1).
        tol: stop when |r| <= tol |b|.
        max_iter: iteration cap.
        x0: initial guess (zeros by default).
        check_every: test the stopping rule every this many iterations (fewer device syncs).

    Returns:
        x (V,) and a :class:`SolverInfo`.
    """
    t0 = time.perf_counter()
    bnorm = float(torch.linalg.vector_norm(b))
    if bnorm == 0.0:
        return torch.zeros_like(b), SolverInfo(0, 0.0, True, 0.0, int(b.numel()))
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    z = precond(r)
    p = z.clone()
    rz = torch.dot(r, z)
    it, rel = 0, float(torch.linalg.vector_norm(r)) / bnorm
    while it < max_iter and rel > tol:
        q = matvec(p)
        alpha = rz / torch.dot(p, q)
        x.add_(alpha * p)
        r.sub_(alpha * q)
        it += 1
        if it % check_every == 0 or it == max_iter:
            rel = float(torch.linalg.vector_norm(r)) / bnorm
            if rel <= tol:
                break
        z = precond(r)
        rz_new = torch.dot(r, z)
        p.mul_(rz_new / rz).add_(z)
        rz = rz_new
    return x, SolverInfo(it, rel, rel <= tol, time.perf_counter() - t0, int(b.numel()))


def jacobi(diagonal: torch.Tensor) -> Operator:
    """Inverse-diagonal preconditioner."""
    inv = 1.0 / diagonal.clamp_min(torch.finfo(diagonal.dtype).tiny)
    return lambda r: r * inv
