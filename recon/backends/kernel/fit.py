"""One solve: points + normals (local frame, world units) -> KernelField."""

from __future__ import annotations

import logging
import os
import time
import warnings

import numpy as np
import torch

from recon.backends.kernel.cell_matrices import NormalConstraints
from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.field import KernelField
from recon.backends.kernel.precond import have_fast_smoother, multilevel_preconditioner
from recon.backends.kernel.scale import memory_reuse
from recon.backends.kernel.solver import jacobi, matvec_operator, pcg
from recon.backends.kernel.splat import normal_confidence, splat_normals
from recon.backends.kernel.svh import build_hierarchy
from recon.backends.kernel.system import assemble
from recon.device import torch_threads
from recon.errors import InputError
from recon.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_field(points: torch.Tensor, normals: torch.Tensor, voxel_size: float, config: KernelConfig, *,
              offset: np.ndarray | None = None, progress: Progress = NULL_PROGRESS) -> KernelField:
    """Build the hierarchy, assemble, solve; return the field.

    Args:
        points: (N, 3) float32 positions in a local frame (world units), on the compute device.
        normals: (N, 3) float32 outward unit normals, same device.
        voxel_size: finest voxel edge h, world units.
        config: the options.
        offset: (3,) float64 world position of the local origin (default zeros).
        progress: progress reporter.

    Returns:
        The solved :class:`KernelField` (on the same device as ``points``).

    Raises:
        InputError: no usable normal constraint (e.g. all normals cancel out).
    """
    with torch_threads(config.threads, points.device):
        return _fit_field(points, normals, voxel_size, config, offset=offset, progress=progress)


def _fit_field(points: torch.Tensor, normals: torch.Tensor, voxel_size: float, config: KernelConfig, *,
               offset: np.ndarray | None, progress: Progress) -> KernelField:
    dev = points.device
    times: dict[str, float] = {}
    t = time.perf_counter()
    u = points / voxel_size
    progress.update("kernel: voxel hierarchy")
    levels = build_hierarchy(u, config.depth, config.dilate_from)
    constraints = []
    for d in range(min(config.adaptive_depth, config.depth)):
        idx, tgt, mass = splat_normals(u, normals, levels[d], config.normal_min_norm)
        constraints.append(NormalConstraints(d, idx, tgt, normal_confidence(mass)))
    _sync(dev)
    times["hierarchy"] = time.perf_counter() - t
    if sum(len(c.index) for c in constraints) == 0:
        raise InputError("no usable normals: the splatted normals cancel out everywhere (inconsistent orientation?)",
                         None, "orient the normals consistently (outward) or let the tool estimate them")
    with memory_reuse(levels):  # see recon.allocator
        return _solve_field(u, levels, constraints, voxel_size, config, times, offset=offset, progress=progress,
                            points=points)


def _solve_field(u: torch.Tensor, levels: list, constraints: list, voxel_size: float, config: KernelConfig,
                 times: dict[str, float], *, offset: np.ndarray | None, progress: Progress,
                 points: torch.Tensor) -> KernelField:
    """Assembly, solve and the field, after the hierarchy and the normal constraints."""
    dev = points.device
    t = time.perf_counter()
    progress.update("kernel: assembly")
    system = assemble(u, levels, constraints, pos_weight=config.pos_weight, normal_weight=config.normal_weight,
                      reg_weight=config.reg_weight)
    _sync(dev)
    times["assembly"] = time.perf_counter() - t
    t = time.perf_counter()
    progress.update("kernel: solve")
    x, info = solve_system(system, config)
    times["solve"] = time.perf_counter() - t
    if not bool(torch.isfinite(x).all()):
        raise InputError("the linear solve produced non-finite values (degenerate input?)", None,
                         "check the points and normals for duplicates/NaN or raise voxel_size")
    if not info.converged:
        msg = (f"kernel solver did not converge: relative residual {info.residual:.2e} after {info.iterations} "
               f"iterations (tol {config.solver_tol:g}); raise solver_max_iter or solver_tol")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        log.warning(msg)
    alphas = [x[system.offsets[d]:system.offsets[d + 1]].contiguous() for d in range(len(levels))]
    return KernelField(levels, alphas, voxel_size, np.zeros(3) if offset is None else offset,
                       points.detach().cpu().numpy(), info, mise_iter=config.mise_iter, upsample=config.upsample,
                       trim_distance=config.trim_distance, timings=times, threads=config.threads)


def solver_workers(requested: int | None) -> int:
    """Threads for the CPU solve: ``requested``, or 2 when this process may use 2+ cores (else 1)."""
    if requested is not None:
        return int(requested)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 1


def solve_system(system, config: KernelConfig):
    """PCG on the assembled system with the configured preconditioner.

    CPU: numpy vectors + scipy CSR ("auto" = "multilevel" when pyamg's compiled Gauss-Seidel
    is installed, else "jacobi"). CUDA: torch vectors, Jacobi ("multilevel" is CPU-only and
    falls back to Jacobi there).

    Returns:
        x (V,) float32 torch tensor on the system's device, and the :class:`SolverInfo`.
    """
    t0 = time.perf_counter()
    name = config.preconditioner
    on_cpu = not isinstance(system.matrix, torch.Tensor)
    if name == "auto":
        name = "multilevel" if on_cpu and have_fast_smoother() else "jacobi"
    if not on_cpu:
        name = "jacobi"
    if on_cpu:
        b = system.rhs.cpu().numpy().astype(np.float32)
        diag = system.diagonal.cpu().numpy().astype(np.float32)
    else:
        b, diag = system.rhs, system.diagonal
    if on_cpu and hasattr(system.matrix, "workers"):
        system.matrix.workers = solver_workers(config.solver_threads)
    mv = matvec_operator(system.matrix)
    if name == "multilevel":
        pre = multilevel_preconditioner(system.matrix, system.offsets)
    else:
        pre = jacobi(diag)
    setup = time.perf_counter() - t0
    x, info = pcg(mv, b, pre, tol=config.solver_tol, max_iter=config.solver_max_iter,
                  check_every=1 if on_cpu else 10)
    info.preconditioner = name
    info.setup_seconds = setup
    info.seconds += setup
    if on_cpu:
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return x, info
