"""Solve ``A(theta) alpha = b(theta)`` with PCG and differentiate through it by the adjoint method.

Forward: Jacobi-PCG without autograd. Backward (nksr.md section 6): solve
``A lambda = dL/dalpha`` and back-propagate the scalar surrogate
``lambda^T (b(theta) - A(theta) alpha)`` with alpha and lambda held fixed; this gives
``dL/db = lambda`` and ``dL/dA = -lambda alpha^T`` exactly (A is symmetric).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from recon.backends.kernel.learned.assembly import FitSystem, StencilMatrix
from recon.backends.kernel.precond import have_fast_smoother, multilevel_preconditioner
from recon.backends.kernel.system import assemble


@dataclass
class PCGResult:
    """x (V,), iterations, final relative residual, converged flag."""

    x: torch.Tensor
    iterations: int
    residual: float
    converged: bool


@torch.no_grad()
def pcg_torch(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, diag: torch.Tensor, *,
              tol: float = 1e-5, max_iter: int = 1000, check_every: int = 5,
              precond: Callable[[torch.Tensor], torch.Tensor] | None = None) -> PCGResult:
    """Preconditioned CG on torch vectors (any device), x0 = 0.

    Args:
        matvec: x -> A x for SPD A, (V,) -> (V,).
        b: (V,) right-hand side.
        diag: (V,) diagonal of A (Jacobi preconditioner when ``precond`` is None).
        tol: stop when |r| <= tol |b|.
        max_iter: iteration cap.
        check_every: residual test interval (fewer host syncs on CUDA).
        precond: r -> M^-1 r, an SPD approximation of A^-1 (optional).
    """
    b, diag = b.detach(), diag.detach()
    bnorm = float(torch.linalg.vector_norm(b))
    x = torch.zeros_like(b)
    if bnorm == 0.0:
        return PCGResult(x, 0, 0.0, True)
    if precond is None:
        inv = 1.0 / diag.clamp_min(torch.finfo(diag.dtype).tiny)
        precond = lambda r: r * inv  # noqa: E731
    r = b.clone()
    z = precond(r)
    p = z.clone()
    rz = r @ z
    it, rel = 0, 1.0
    while it < max_iter:
        q = matvec(p)
        a = rz / (p @ q)
        x = x + a * p
        r = r - a * q
        it += 1
        if it % check_every == 0 or it == max_iter:
            rel = float(torch.linalg.vector_norm(r)) / bnorm
            if rel <= tol:
                break
        z = precond(r)
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    return PCGResult(x, it, rel, rel <= tol)


@dataclass
class SolveSpec:
    """The non-differentiable parts of a :class:`FitSystem` plus solver options."""

    g_cols: torch.Tensor
    q_cols: torch.Tensor
    k_cols: torch.Tensor
    point_w: torch.Tensor
    w_n: float
    lam: float
    offsets: list
    tol: float
    max_iter: int
    last: dict
    precond: Callable | None = None
    normal_conf: torch.Tensor | None = None

    def build(self, g_vals, q_vals, k_vals, rhs) -> FitSystem:
        n = self.offsets[-1]
        return FitSystem(StencilMatrix(self.g_cols, g_vals, n), StencilMatrix(self.q_cols, q_vals, n),
                         StencilMatrix(self.k_cols, k_vals, n), self.point_w, self.w_n, self.lam, rhs, self.offsets,
                         self.normal_conf)


def _solve(spec: SolveSpec, system: FitSystem, b: torch.Tensor, what: str) -> torch.Tensor:
    res = pcg_torch(system.matvec, b, system.diagonal(), tol=spec.tol, max_iter=spec.max_iter, precond=spec.precond)
    spec.last[what] = res
    if not res.converged:
        warnings.warn(f"learned kernel {what} solve did not converge: residual {res.residual:.2e} after "
                      f"{res.iterations} iterations", RuntimeWarning, stacklevel=3)
    return res.x


class _ImplicitSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec: SolveSpec, g_vals, q_vals, k_vals, rhs):  # noqa: D102
        with torch.no_grad():
            x = _solve(spec, spec.build(g_vals, q_vals, k_vals, rhs), rhs, "forward")
        ctx.spec = spec
        ctx.save_for_backward(g_vals, q_vals, k_vals, rhs, x)
        return x

    @staticmethod
    def backward(ctx, gx):  # noqa: D102
        spec = ctx.spec
        g_vals, q_vals, k_vals, rhs, x = ctx.saved_tensors
        with torch.no_grad():
            lam = _solve(spec, spec.build(g_vals, q_vals, k_vals, rhs), gx.contiguous(), "adjoint")
        inputs = [t.detach().requires_grad_(True) for t in (g_vals, q_vals, k_vals, rhs)]
        with torch.enable_grad():
            system = spec.build(*inputs)
            surrogate = lam @ inputs[3] - lam @ system.matvec(x)
            grads = torch.autograd.grad(surrogate, inputs, allow_unused=True)
        return (None, *[g if need else None for g, need in zip(grads, ctx.needs_input_grad[1:])])


def implicit_solve(system: FitSystem, tol: float = 1e-5, max_iter: int = 1000,
                   precond: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
    """alpha = A^-1 b, differentiable w.r.t. the system's values (G, Q, K values and b).

    ``precond`` (r -> M^-1 r, SPD) is used by both the forward and the adjoint solve (Jacobi by default).

    Returns:
        alpha (V,) and a dict that receives the :class:`PCGResult` of the forward (and, after
        backward, the adjoint) solve.
    """
    last: dict = {}
    spec = SolveSpec(system.G.cols, system.Q.cols, system.K.cols, system.point_w, system.w_n, system.lam,
                     system.offsets, tol, max_iter, last, precond, system.normal_conf)
    x = _ImplicitSolve.apply(spec, system.G.vals, system.Q.vals, system.K.vals, system.rhs)
    return x, last


def training_free_preconditioner(u: torch.Tensor, levels, constraints, *, pos_weight: float, normal_weight: float,
                                 reg_weight: float) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Multilevel preconditioner built from the training-free system on the same voxels (CPU only).

    The learned system equals the training-free one when <psi, F> = 1 (the untrained model)
    and stays close to it, so the level-block Gauss-Seidel sweep of
    :mod:`recon.backends.kernel.precond` on the training-free matrix (fast cell-moment
    assembly) is a good SPD preconditioner: far fewer CG iterations than Jacobi.

    Args:
        u: (N, 3) points; levels: decoder grids; constraints: list of
            :class:`recon.backends.kernel.cell_matrices.NormalConstraints`.

    Returns:
        r -> M^-1 r on torch vectors, or None on CUDA or when pyamg's fast smoother is missing.
    """
    if u.device.type != "cpu" or not have_fast_smoother():
        return None
    with torch.no_grad():
        sys0 = assemble(u.detach().float(), levels, constraints, pos_weight=pos_weight, normal_weight=normal_weight,
                        reg_weight=reg_weight)
    apply = multilevel_preconditioner(sys0.matrix, sys0.offsets)

    def precond(r: torch.Tensor) -> torch.Tensor:
        z = apply(r.detach().cpu().numpy().astype(np.float32))
        return torch.from_numpy(np.asarray(z)).to(r.dtype)

    return precond
