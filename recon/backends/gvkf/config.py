"""Options of the GVKF backend (3D Gaussians + opacity-to-SDF). Defaults are sized for a 2-core CPU.

All lengths are in the normalised frame: the scene of interest lies inside the unit sphere
(``recon.io.cameras.normalize_views``); fields and meshes map back to world units on export.
The learning rates follow 3D Gaussian splatting's, rescaled for a short CPU schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from recon.config import MAX_THREADS, check_limits
from recon.errors import ConfigError

#: ranges of the fields that size memory, threads or work (checked before anything is allocated)
_LIMITS: dict[str, tuple[float, float]] = {
    "init_count": (1, 50_000_000), "hull_resolution": (8, 1024), "tile_size": (1, 256),
    "max_per_tile": (1, 10_000_000), "steps": (0, 100_000_000), "time_budget": (1e-3, 1e12),
    "max_image_size": (8, 16384), "views_per_step": (1, 1024), "densify_from": (0, 100_000_000),
    "densify_every": (1, 100_000_000), "opacity_reset_every": (0, 100_000_000), "max_gaussians": (1, 50_000_000),
    "sdf_views": (1, 4096), "mesh_resolution": (8, 2048), "threads": (0, MAX_THREADS),
    "checkpoint_every": (1e-3, 1e12), "background_rows": (1, 64),
}


@dataclass
class GVKFConfig:
    """GVKF options (defaults are the recommended values on a small CPU).

    ``recon config show gvkf`` prints every field with its type, default, range and the text below it.
    """

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = _LIMITS

    # ---- initialisation
    init: Literal["auto", "points3d", "hull", "random"] = "auto"
    """"auto": COLMAP points3D when the folder has them, else the visual hull of the masks, else random
    points in the unit sphere. "points3d" / "hull" / "random" force one."""
    init_count: int = 6000
    """Gaussians drawn at initialisation (points3D are subsampled to this many); <= max_gaussians."""
    hull_resolution: int = 96
    """Visual hull: voxels per axis of the carving grid over [-1, 1]^3."""
    hull_agreement: float = 0.95
    """Visual hull: a voxel is kept when it projects inside the mask of at least this share of the views
    that see it, in (0, 1]."""
    init_opacity: float = 0.5
    """Initial opacity of every Gaussian, in (0, 1)."""
    # ---- rasteriser
    tile_size: int = 4
    """Rasteriser tile edge, pixels."""
    max_per_tile: int | None = None
    """Per-tile cap on Gaussians while training (None: exact). Nothing beyond the cap is composited."""
    # ---- training
    steps: int = 1000
    """Training steps."""
    time_budget: float | None = None
    """Wall-clock budget in seconds for the whole run, from reading the images to the meshed field (None:
    steps only). Training stops when what is left is the expected meshing time; with --resume it counts
    this run. Schedules follow the larger of step / steps and elapsed / training time available."""
    max_image_size: int | None = 128
    """Images larger than this (longest side, pixels) are downscaled on load (None: keep)."""
    views_per_step: int = 1
    """Views per optimisation step (their losses are averaged)."""
    lr_means: float = 1.6e-3
    """Adam learning rate of the means; decays exponentially to lr_means_final."""
    lr_means_final: float = 1.6e-5
    """Learning rate of the means at the end of training."""
    lr_scales: float = 5e-3
    """Adam learning rate of the (log) scales."""
    lr_quats: float = 1e-3
    """Adam learning rate of the rotation quaternions."""
    lr_opacity: float = 5e-2
    """Adam learning rate of the opacities."""
    lr_colours: float = 1e-2
    """Adam learning rate of the colours."""
    ssim_weight: float = 0.2
    """Photometric loss (1 - ssim_weight) * L1 + ssim_weight * (1 - SSIM), in [0, 1]."""
    normal_weight: float = 0.05
    """Depth-normal consistency weight."""
    normal_from: float = 0.5
    """Fraction of training where the depth-normal consistency term starts."""
    distortion_weight: float = 100.0
    """Distortion (2DGS) weight."""
    distortion_from: float = 0.5
    """Fraction of training where the distortion term starts."""
    mask_weight: float = 0.1
    """Binary cross-entropy of the rendered opacity against the masks (when masks exist)."""
    volume_weight: float = 0.01
    """Penalty on the mean product of the three scales (keeps Gaussians thin), as GVKF's 0.01 * mean(prod s)."""
    # ---- densification (3DGS: clone small, split large, prune transparent)
    densify_from: int = 100
    """First step of densification."""
    densify_every: int = 100
    """Steps between densifications."""
    densify_until: float = 0.6
    """Densify until this fraction of training, in [0, 1]."""
    densify_grad: float = 2e-4
    """Average view-space positional gradient (NDC) above which a Gaussian is cloned or split."""
    dense_scale: float = 0.01
    """Gaussians with max scale below this (normalised units) are cloned, above it split in two."""
    prune_opacity: float = 0.01
    """Prune Gaussians below this opacity."""
    prune_scale: float = 0.2
    """Prune Gaussians larger than this (max scale, normalised units)."""
    opacity_reset: float = 0.05
    """Reset opacities to at most this value every opacity_reset_every steps."""
    opacity_reset_every: int = 1000
    """Steps between opacity resets (0: never)."""
    max_gaussians: int = 40000
    """Upper bound on the number of Gaussians."""
    # ---- surface
    sdf_views: int = 16
    """Training views (evenly spaced) used for the opacity-to-SDF query."""
    mesh_method: Literal["tetra", "grid"] = "grid"
    """"tetra": marching tetrahedra on a Delaunay of points around the Gaussians (the paper's); "grid":
    marching cubes of the same field on a regular grid around the Gaussians."""
    mesh_resolution: int = 128
    """Grid cells along the longest side of the Gaussians' box ("grid" method)."""
    sdf_shift: float = 1.2
    """Logistic shift of the opacity-to-distance map D = ln(1/O - 1) - shift: the surface is where the
    opacity accumulated up to a point reaches sigmoid(-shift). GVKF's code uses 0.15; taking the maximum
    over views (the least opaque view wins) pulls that level inside the object, which the larger shift
    undoes. Tuned on the benchmark's own rendered scenes (benchmarks/bench_gvkf.py,
    benchmarks/results/gvkf.md)."""
    # ---- misc
    background: Literal["auto", "white", "black"] = "auto"
    """Background colour: "auto" (from the masks or the image borders), "white" or "black"."""
    background_model: Literal["learned", "fixed"] = "learned"
    """Without masks, "learned": a far-field colour per view direction (a small equirectangular map,
    starting at the median colour of the images' borders) is trained with the Gaussians and composited behind them, so
    the photos' backdrop is not explained by Gaussians. "fixed": the constant background colour.
    With masks the background is always the fixed colour."""
    background_rows: int = 4
    """Rows of the learned far-field map (columns are twice as many); 1 = one colour everywhere."""
    alpha_weight: float = 0.02
    """With the learned far field: weight of the mean accumulated opacity of the rendered images. A
    Gaussian the colour of the backdrop in front of it costs the photometric loss nothing; this
    makes it fade (the object's pixels need their opacity and keep it)."""
    opacity_decay: float = 0.004
    """With the learned far field: every step each opacity is multiplied by (1 - opacity_decay).
    Gaussians the images need are restored by the photometric loss; those it does not see (such as
    backdrop-coloured floaters in front of the backdrop) fade and are pruned."""
    lr_background: float = 5e-2
    """Adam learning rate of the far-field map."""
    bound_margin: float | None = 0.1
    """Gaussians whose centre leaves the scene bound (robust box of the sparse points, else what every
    camera sees) grown by this fraction of its largest extent per side are pruned at densification
    (None: never)."""
    seed: int = 0
    """Seed of every random draw."""
    threads: int | None = 1
    """torch intra-op CPU threads while training (None/0: leave torch's setting)."""
    checkpoint_every: float = 120.0
    """Seconds of training between checkpoints when a folder is given."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Compute device: "auto" picks CUDA when available."""

    def __post_init__(self) -> None:
        check_limits(self, _LIMITS, "gvkf.")
        def bad(msg: str, fix: str) -> None:
            raise ConfigError(msg, None, fix)

        if self.init not in ("auto", "points3d", "hull", "random"):
            bad(f"unknown init {self.init!r}", "use auto, points3d, hull or random")
        if self.init_count < 1 or self.max_gaussians < self.init_count:
            bad("init_count must be >= 1 and <= max_gaussians", "use 6000 and 40000")
        if not 0 < self.init_opacity < 1:
            bad("init_opacity must be in (0, 1)", "use 0.5")
        if self.hull_resolution < 8 or not 0 < self.hull_agreement <= 1:
            bad("hull_resolution must be >= 8 and hull_agreement in (0, 1]", "use 96 and 0.95")
        if self.tile_size < 1 or (self.max_per_tile is not None and self.max_per_tile < 1):
            bad("tile_size and max_per_tile must be >= 1", "use 8 and null")
        if self.steps < 0 or self.views_per_step < 1:
            bad("steps must be >= 0 and views_per_step >= 1", "use 3000 and 1")
        if self.time_budget is not None and not self.time_budget > 0:
            bad(f"time_budget must be positive or null, got {self.time_budget}", "give seconds, e.g. 300")
        if min(self.lr_means, self.lr_means_final, self.lr_scales, self.lr_quats, self.lr_opacity,
               self.lr_colours) <= 0:
            bad("learning rates must be positive", "use the defaults")
        if not 0 <= self.ssim_weight <= 1:
            bad("ssim_weight must be in [0, 1]", "use 0.2")
        if min(self.normal_weight, self.distortion_weight, self.mask_weight, self.volume_weight,
               self.alpha_weight) < 0:
            bad("loss weights must be >= 0", "use the defaults")
        if self.densify_every < 1 or not 0 <= self.densify_until <= 1 or self.densify_grad <= 0:
            bad("densify_every >= 1, densify_until in [0, 1], densify_grad > 0", "use 100, 0.6, 2e-4")
        if self.sdf_views < 1 or self.mesh_resolution < 8:
            bad("sdf_views must be >= 1 and mesh_resolution >= 8", "use 16 and 128")
        if self.max_image_size is not None and self.max_image_size < 8:
            bad("max_image_size must be >= 8 or null", "use 128")
        if self.background_model not in ("learned", "fixed"):
            bad(f"unknown background_model {self.background_model!r}", "use learned or fixed")
        if not 0 <= self.opacity_decay < 1:
            bad("opacity_decay must be in [0, 1)", "use 0.004")
        if self.lr_background <= 0 or (self.bound_margin is not None and self.bound_margin < 0):
            bad("lr_background must be positive and bound_margin >= 0 or null", "use 5e-2 and 0.1")
        if self.checkpoint_every <= 0:
            bad("checkpoint_every must be positive", "use 120")
