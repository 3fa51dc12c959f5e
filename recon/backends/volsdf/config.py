"""Options of the VolSDF backend (SDF volume rendering). Defaults are sized for a 2-core CPU.

All lengths are in the normalised frame: the scene of interest lies inside the unit sphere
(``recon.io.cameras.normalize_views``); the field maps back to world units on export.
``configs/volsdf-gpu.yaml`` holds the paper's sizes for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from recon.config import MAX_THREADS, check_limits
from recon.errors import ConfigError

#: ranges of the fields that size memory, threads or work (checked before anything is allocated)
_LIMITS: dict[str, tuple[float, float]] = {
    "pe_levels": (0, 24), "view_pe_levels": (0, 24), "grid_levels": (1, 32), "grid_min_res": (2, 4096),
    "grid_max_res": (2, 4096), "grid_features": (1, 64), "grid_start_levels": (1, 32),
    "grid_level_steps": (0, 10_000_000), "sdf_layers": (1, 32), "sdf_width": (1, 2048), "feature_dim": (1, 2048),
    "color_layers": (0, 32), "color_width": (1, 2048), "init_fit_steps": (0, 1_000_000), "n_eval": (4, 4096),
    "n_samples": (2, 4096), "n_extra": (0, 4096), "sampler_iters": (1, 64), "bisection_steps": (1, 64),
    "rays_per_step": (1, 1 << 20), "steps": (0, 100_000_000), "time_budget": (1e-3, 1e12),
    "warmup_steps": (0, 100_000_000), "max_image_size": (8, 16384), "threads": (0, MAX_THREADS),
    "checkpoint_every": (1e-3, 1e12), "mesh_resolution": (8, 2048),
}


@dataclass
class VolSDFConfig:
    """VolSDF options (defaults are the recommended values on a small CPU).

    ``recon config show volsdf`` prints every field with its type, default, range and the text below it.
    """

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = _LIMITS

    # ---- geometry network f(x) -> (d, z)
    encoding: Literal["grid", "frequency"] = "grid"
    """Input encoding: "grid" (multiresolution dense/hash grid, fast to converge on CPU) or "frequency"
    (NeRF positional encoding, the paper's choice)."""
    pe_levels: int = 6
    """Frequency encoding: octaves L (the paper uses 6: 39 input dims)."""
    grid_levels: int = 6
    """Grid encoding: number of resolution levels, geometric from grid_min_res to grid_max_res cells across
    the cube [-1, 1]^3 enclosing the unit sphere. Finer levels stay noisy at CPU step counts
    (benchmarks/results/multiview.md)."""
    grid_min_res: int = 16
    """Grid encoding: cells per axis of the coarsest level."""
    grid_max_res: int = 64
    """Grid encoding: cells per axis of the finest level."""
    grid_features: int = 2
    """Grid encoding: features per level."""
    grid_log2_size: int = 22
    """Grid encoding: log2 of the largest number of entries a level stores densely (10..26); finer levels are
    hashed into a table of this size (instant-NGP's rule)."""
    grid_start_levels: int = 4
    """Grid encoding, coarse-to-fine: levels < grid_start_levels are active from the start."""
    grid_level_steps: int = 250
    """Grid encoding, coarse-to-fine: level l (0-based) is switched on after l * grid_level_steps steps
    (0: all levels at once)."""
    sdf_layers: int = 2
    """Hidden layers of the SDF MLP (paper: 8, with a skip at layer 4)."""
    sdf_width: int = 64
    """Width of the SDF MLP (paper: 256)."""
    feature_dim: int = 32
    """Length of the feature vector z passed to the colour network (paper: 256)."""
    init_radius: float = 0.5
    """Geometric initialisation: the SDF starts as a sphere of this radius, in (0, 1) (paper: 0.6 of R=3;
    here the object fills most of the unit sphere)."""
    init_fit_steps: int = 300
    """Adam steps fitting the initial MLP to that sphere (encoded channels off) after the geometric init;
    narrow networks start lumpy without it. 0: the paper's plain geometric init."""
    weight_norm: bool = False
    """Weight normalisation on the MLP layers (paper: on; off is faster and works with the grid)."""
    # ---- colour network L(x, v, n, z)
    color_layers: int = 2
    """Hidden layers of the colour MLP (paper: 4)."""
    color_width: int = 64
    """Width of the colour MLP (paper: 256)."""
    view_pe_levels: int = 4
    """View direction frequency-encoding octaves (paper: 4)."""
    # ---- density sigma = alpha * Psi_beta(-d), alpha = 1 / beta
    beta_init: float = 0.1
    """Laplace density scale beta at the start."""
    beta_min: float = 1e-4
    """Lower bound on beta."""
    beta_final: float | None = 1e-3
    """Upper bound on beta that decays geometrically from beta_init to beta_final over the first beta_decay
    fraction of training (None: beta purely learned, as in the paper). A finite beta shifts the zero level
    set inwards by about 2.5 beta at silhouettes (a grazing ray reaches 50 % opacity 2.5 beta outside the
    surface), so a learned beta alone leaves a shrunken surface."""
    beta_decay: float = 0.5
    """Fraction of training, in (0, 1], over which the beta bound decays to beta_final."""
    # ---- error-bounded sampler (paper: eps 0.1, n 128, m 64, extra 32, 5 iterations, 10 bisections)
    sampler_eps: float = 0.1
    """Error-bounded sampler: bound on the opacity error."""
    n_eval: int = 64
    """Sampler: samples per ray at the start and added per iteration (paper: 128)."""
    n_samples: int = 32
    """Sampler: final inverse-CDF samples per ray (paper: 64)."""
    n_extra: int = 16
    """Sampler: extra members of the evaluation set, <= n_eval (paper: 32)."""
    sampler_iters: int = 3
    """Sampler: iterations (paper: 5)."""
    bisection_steps: int = 10
    """Sampler: bisection steps per round for the beta+ that meets the error bound (paper: 10)."""
    # ---- training
    rays_per_step: int = 512
    """Random rays (pixels, drawn over all training images) per step (paper: 1024 from one image)."""
    steps: int = 20000
    """Step count; with time_budget set training stops at whichever comes first. The learning-rate decay
    follows the larger of step / steps and elapsed / training time available."""
    time_budget: float | None = 1200.0
    """Wall-clock budget in seconds for the whole run, from reading the images to the meshed field (None:
    steps only). Training stops when what is left is the expected meshing time; with --resume it counts
    this run."""
    lr: float = 2e-3
    """Adam learning rate of the MLPs and beta (paper: 5e-4)."""
    grid_lr: float = 2e-2
    """Adam learning rate of the grid tables."""
    lr_final: float = 0.05
    """Learning rate at the end of training, as a fraction of the start, in (0, 1] (paper: 0.1)."""
    warmup_steps: int = 100
    """Linear learning-rate warm-up steps."""
    eikonal_weight: float = 0.1
    """Eikonal weight (paper: 0.1) on one uniform point in the sphere and one near-surface sample per ray."""
    smooth_weight: float = 0.0
    """Normal smoothness: weight of |n(x) - n(x + e)|^2 at each ray's likely surface point x,
    e ~ N(0, smooth_std^2) (0: off, as in the paper). Damps the bumps a fine grid leaves early in training."""
    smooth_std: float = 0.01
    """Standard deviation of the normal-smoothness jitter e."""
    mask_weight: float = 0.1
    """Weight of the binary cross-entropy of the accumulated opacity against the mask (when masks exist)."""
    background: Literal["auto", "white", "black"] = "auto"
    """Background colour behind the unit sphere: "auto" (the images' colour outside the masks, else white or
    black from the image borders), "white" or "black"."""
    max_image_size: int | None = 400
    """Images larger than this (longest side, pixels) are downscaled on load (None: keep)."""
    seed: int = 0
    """Seed of every random draw (rays, jitter, init)."""
    threads: int | None = 2
    """torch intra-op CPU threads while training (None/0: leave torch's setting)."""
    checkpoint_every: float = 120.0
    """Seconds of training between checkpoints (and on Ctrl-C / at the end) when a folder is given."""
    # ---- mesh extraction
    mesh_resolution: int = 256
    """Marching-cubes cells along the longest side of the surface's bounding box."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Compute device: "auto" picks CUDA when available."""

    def __post_init__(self) -> None:
        check_limits(self, _LIMITS, "volsdf.")
        def bad(msg: str, fix: str) -> None:
            raise ConfigError(msg, None, fix)

        if self.encoding not in ("grid", "frequency"):
            bad(f"unknown encoding {self.encoding!r}", "use grid or frequency")
        if self.pe_levels < 0 or self.view_pe_levels < 0:
            bad("pe_levels and view_pe_levels must be >= 0", "use 6 and 4")
        if self.grid_levels < 1 or self.grid_features < 1 or not 2 <= self.grid_min_res <= self.grid_max_res:
            bad("grid needs grid_levels >= 1, grid_features >= 1 and 2 <= grid_min_res <= grid_max_res",
                "use 8 levels from 16 to 128")
        if not 10 <= self.grid_log2_size <= 26:
            bad(f"grid_log2_size must be in 10..26, got {self.grid_log2_size}", "use 22")
        if self.grid_start_levels < 1 or self.grid_level_steps < 0:
            bad("grid_start_levels must be >= 1 and grid_level_steps >= 0", "use 4 and 250")
        if min(self.sdf_layers, self.sdf_width, self.feature_dim, self.color_width) < 1 or self.color_layers < 0:
            bad("network sizes must be positive", "use the defaults")
        if self.init_fit_steps < 0:
            bad("init_fit_steps must be >= 0", "use 300")
        if not 0.0 < self.init_radius < 1.0:
            bad(f"init_radius must be in (0, 1), got {self.init_radius}", "use 0.5")
        if not (self.beta_init > 0 and self.beta_min > 0):
            bad("beta_init and beta_min must be positive", "use 0.1 and 1e-4")
        if self.beta_final is not None and not self.beta_min <= self.beta_final <= self.beta_init:
            bad("beta_final must lie in [beta_min, beta_init] or be null", "use 1e-3")
        if not 0.0 < self.beta_decay <= 1.0:
            bad("beta_decay must be in (0, 1]", "use 0.5")
        if not self.sampler_eps > 0:
            bad("sampler_eps must be positive", "use 0.1")
        if self.n_eval < 4 or self.n_samples < 2 or self.n_extra < 0 or self.sampler_iters < 1 \
                or self.bisection_steps < 1 or self.n_extra > self.n_eval:
            bad("sampler sizes: n_eval >= 4, n_samples >= 2, 0 <= n_extra <= n_eval, sampler_iters >= 1",
                "use n_eval 64, n_samples 32, n_extra 16, sampler_iters 3")
        if self.rays_per_step < 1 or self.steps < 0:
            bad("rays_per_step must be >= 1 and steps >= 0", "use 512 rays and 20000 steps")
        if self.time_budget is not None and not self.time_budget > 0:
            bad(f"time_budget must be positive or null, got {self.time_budget}", "give seconds, e.g. 1200")
        if not (self.lr > 0 and self.grid_lr > 0 and 0 < self.lr_final <= 1) or self.warmup_steps < 0:
            bad("learning rates must be positive and lr_final in (0, 1]", "use the defaults")
        if self.smooth_weight < 0 or not self.smooth_std > 0:
            bad("smooth_weight must be >= 0 and smooth_std > 0", "use 0.0 and 0.01")
        if self.eikonal_weight < 0 or self.mask_weight < 0:
            bad("loss weights must be >= 0", "use eikonal_weight 0.1, mask_weight 0.1")
        if self.max_image_size is not None and self.max_image_size < 8:
            bad("max_image_size must be >= 8 or null", "use 400")
        if self.checkpoint_every <= 0:
            bad("checkpoint_every must be positive", "use 120")
        if self.mesh_resolution < 8:
            bad("mesh_resolution must be >= 8", "use 256")

    def grid_resolutions(self) -> list[int]:
        """Cells per axis of each grid level (geometric progression, rounded)."""
        import math

        if self.grid_levels == 1:
            return [self.grid_max_res]
        g = (self.grid_max_res / self.grid_min_res) ** (1.0 / (self.grid_levels - 1))
        return [int(math.floor(self.grid_min_res * g ** i + 0.5)) for i in range(self.grid_levels)]
