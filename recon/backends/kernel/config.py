"""Options of the kernel (NKSR-style, training-free) backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from recon.config import MAX_THREADS, check_limits
from recon.errors import ConfigError

#: ranges of the fields that size memory, threads or work (checked before anything is allocated)
_LIMITS: dict[str, tuple[float, float]] = {
    "voxel_size": (1e-12, 1e12), "min_resolution": (1, 1e5), "chunk_size": (1e-12, 1e12),
    "solver_tol": (1e-12, 1.0), "solver_max_iter": (1, 10_000_000), "trim_distance": (0.0, 1e6),
    "pos_weight": (1e-12, 1e12), "normal_weight": (1e-12, 1e12), "reg_weight": (0.0, 1e12),
    "normal_min_norm": (0.0, 1.0), "threads": (0, MAX_THREADS), "solver_threads": (1, MAX_THREADS),
    "max_voxels": (1000, 2_000_000_000),
}


@dataclass
class KernelConfig:
    """Kernel surface reconstruction options (defaults are the recommended values).

    ``recon config show kernel`` prints every field with its type, default, range and the text below it.
    """

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = _LIMITS

    voxel_size: float | None = None
    """Finest voxel edge in world units; None derives it from `detail` and the point density."""
    detail: float = 0.6
    """0..1: target points per finest voxel, 20 at 0 (smooth, noise robust) .. 1 at 1 (fine detail)."""
    min_resolution: float | None = 105.0
    """Resolution floor of the density rule: the finest voxel is at most sqrt(surface area) / min_resolution
    (area estimated from the points' k-NN spacing; None: no cap). Without it sparse inputs get far too coarse
    a voxel; dense inputs are left to the density rule. Chosen on the benchmark meshes with 5k points
    (benchmarks/results/points.md, "sparse")."""
    depth: int = 4
    """Number of hierarchy levels, 1..8; the voxel size doubles per level."""
    adaptive_depth: int = 2
    """Normals are fitted at the voxel centres of levels < adaptive_depth (1..depth)."""
    dilate_from: int | None = None
    """Dilate levels >= this by one voxel so the field extends beyond the data (None: no dilation)."""
    chunk_size: float | None = None
    """Chunk (tile) edge in world units for out-of-core solving; None: one chunk."""
    overlap: float = 0.05
    """Tile overlap as a fraction of chunk_size, in [0, 0.5) (at least 4 finest voxels are used)."""
    solver_tol: float = 1e-3
    """Relative residual at which CG stops. The slow CG directions are those along which the levels represent
    the same function (held only by the small regulariser) and hardly move the field, so 1e-3 gives the same
    meshes as tighter tolerances with fewer iterations."""
    solver_max_iter: int = 2000
    """CG iteration cap; a warning is issued and field.solver_info.converged is False beyond it."""
    preconditioner: Literal["auto", "jacobi", "multilevel"] = "auto"
    """CG preconditioner: "multilevel" (symmetric level-block Gauss-Seidel sweep, CPU; far fewer iterations
    than Jacobi), "jacobi", or "auto" (multilevel on the CPU when pyamg's compiled Gauss-Seidel is
    installed, else Jacobi; always Jacobi on CUDA)."""
    mise_iter: int = 0
    """Meshing: MISE refinement iterations, 0..3 (sharper surface, more time)."""
    upsample: int = 1
    """Meshing: subdivisions of each finest voxel, 1..8."""
    trim_distance: float = 2.0
    """Faces farther than this many finest voxels from every input point are removed."""
    pos_weight: float = 1e4
    """Weight of f(x_i) = 0 at the points (divided by the number of points)."""
    normal_weight: float = 1e4
    """Weight of grad f = n at the fine voxel centres (divided by the number of centres)."""
    reg_weight: float = 0.3
    """Weight of the kernel (Gram) regulariser alpha^T K alpha (model "none"; the learned kernel uses the
    weight it was trained with, learned.model.TRAINED_REG_WEIGHT). Larger values smooth more."""
    normal_min_norm: float = 0.3
    """Voxels whose splatted mean normal is shorter than this are not constrained."""
    threads: int | None = None
    """torch intra-op threads on the CPU during fit and meshing (None/0: leave torch's setting, normally
    one per core). Batch tiles run with 1."""
    solver_threads: int | None = None
    """Threads of the CPU solve's sparse matrix-vector products (scipy releases the GIL; the rows of the
    finest level and of the coarser levels are computed side by side). None: 2 when this process may use
    2 or more cores, else 1."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Compute device: "auto" picks CUDA when available."""
    max_voxels: int = 20_000_000
    """Memory guard: refuse hierarchies estimated above this many voxels (all levels)."""
    model: Literal["none", "learned"] = "none"
    """Kernel model: "none" = training-free hierarchical B-spline kernel; "learned" = the trained neural
    kernel (recon/backends/kernel/learned: learned features, predicted normals, UDF trimming)."""
    weights: str | None = None
    """Learned-kernel weights file (model "learned" only); None: the committed
    recon/backends/kernel/learned/weights/learned_kernel.pt (made by `recon train kernel`)."""

    def __post_init__(self) -> None:
        check_limits(self, _LIMITS, "kernel.")
        if self.voxel_size is not None and not self.voxel_size > 0:
            raise ConfigError(f"voxel_size must be positive, got {self.voxel_size}", None, "set voxel_size > 0 or null")
        if not 0.0 <= self.detail <= 1.0:
            raise ConfigError(f"detail must be in [0, 1], got {self.detail}", None, "set detail between 0 and 1")
        if self.min_resolution is not None and not self.min_resolution > 0:
            raise ConfigError(f"min_resolution must be positive or null, got {self.min_resolution}", None, "use 105")
        if not 1 <= self.depth <= 8:
            raise ConfigError(f"depth must be in 1..8, got {self.depth}", None, "use depth 4")
        if not 1 <= self.adaptive_depth <= self.depth:
            raise ConfigError("adaptive_depth must be in 1..depth", None, "use adaptive_depth 2")
        if self.chunk_size is not None and not self.chunk_size > 0:
            raise ConfigError(f"chunk_size must be positive, got {self.chunk_size}", None, "set chunk_size > 0 or null")
        if not 0.0 <= self.overlap < 0.5:
            raise ConfigError(f"overlap must be in [0, 0.5), got {self.overlap}", None, "use overlap 0.05")
        if self.solver_tol <= 0 or self.solver_max_iter < 1:
            raise ConfigError("solver_tol must be > 0 and solver_max_iter >= 1", None, "use 1e-3 and 2000")
        if not 1 <= self.upsample <= 8 or not 0 <= self.mise_iter <= 3:  # each multiplies the meshed cells
            raise ConfigError(f"upsample must be in 1..8 and mise_iter in 0..3, got {self.upsample} and {self.mise_iter}",
                              None, "use upsample 1, mise_iter 0 or 1")
        if min(self.pos_weight, self.normal_weight) <= 0 or self.reg_weight < 0:
            raise ConfigError("weights must be positive (reg_weight >= 0)", None, "use the defaults")
        if self.preconditioner not in ("auto", "jacobi", "multilevel"):
            raise ConfigError(f"unknown preconditioner {self.preconditioner!r}", None, "use auto, jacobi or multilevel")
        if self.solver_threads is not None and not (isinstance(self.solver_threads, int) and self.solver_threads >= 1):
            raise ConfigError(f"solver_threads must be a positive integer or null, got {self.solver_threads!r}", None,
                              "use 1, 2 or null")
        if self.max_voxels < 1000:
            raise ConfigError(f"max_voxels too small: {self.max_voxels}", None, "use at least 1000")
        if self.model not in ("none", "learned"):
            raise ConfigError(f"unknown kernel model {self.model!r}", None, "use model none or learned")
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights.strip()):
            raise ConfigError("weights must be a file path or null", None, "set weights to a .pt file or null")
        if self.weights is not None and self.model != "learned":
            raise ConfigError("weights is set but model is 'none'", None, "set model: learned or drop weights")
