"""BatchConfig: the options of a batch job (CLI flags and job YAML files map onto it)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon.errors import ConfigError

ORIENTS = ("up", "mst")
#: Kernel options a batch job may set (the rest are fixed: no MISE, no chunking, CPU).
KERNEL_KEYS = ("detail", "min_resolution", "depth", "adaptive_depth", "dilate_from", "solver_tol", "solver_max_iter",
               "preconditioner", "upsample", "trim_distance", "pos_weight", "normal_weight", "reg_weight",
               "normal_min_norm", "max_voxels")


@dataclass
class BatchConfig:
    """Options of ``recon batch`` (defaults are the recommended values).

    Attributes:
        inputs: point cloud files (.las .laz .ply .npy) or folders of them.
        output: the job folder (manifest, shards, fields, tiles, merged mesh).
        tile_size: tile edge, world units (rounded to the coarsest voxel); None: the largest edge
            whose fullest tile holds at most ``max_tile_points`` points.
        overlap: blend half-width between tiles, world units (the shards hold twice this beyond
            each tile); None: 4 finest voxels (as the kernel's chunked mode).
        backend: reconstruction backend; only "kernel" has the lattice-aligned field the seams need.
        workers: local Dask workers (processes) when no scheduler is given.
        memory_limit: per-worker memory limit (Dask syntax, e.g. "2GB").
        scheduler: address of an existing Dask scheduler (tcp://host:8786); None starts a LocalCluster.
        resume: continue the job in ``output`` (finished tiles whose inputs match are kept).
        retries: re-submissions of a failing tile task before it is recorded as failed.
        voxel_size: finest voxel edge, world units (None: from the point density and ``detail``).
        detail: 0..1 (kernel density rule: points per finest voxel 20..1).
        depth: kernel hierarchy depth.
        orient: normal orientation when the input has none: "up" (airborne LiDAR) or "mst".
        tile_shape: "auto" (columns spanning the scene's height when they fit the point budget,
            else cubes), "column" or "cube".
        max_tile_points: per-tile point budget (core + margin); None: derived from memory_limit.
        preview: also write a quadric-decimated preview mesh.
        preview_ratio: fraction of faces the preview keeps.
        piece_points: points per pass-1/pass-2 task.
        chunk_points: points read at a time inside a task.
        processes: LocalCluster workers as processes (False: threads in this process, for debugging).
        kernel: further KernelConfig options (see :data:`KERNEL_KEYS`), e.g. {"solver_tol": 1e-5}.
        faults: fault injection for tests ({"fit:0_0_0": "raise:1"}, see recon.tiling.job.inject_fault).
    """

    inputs: list[str] = field(default_factory=list)
    output: str = ""
    tile_size: float | None = None
    overlap: float | None = None
    backend: str = "kernel"
    workers: int = 2
    memory_limit: str = "2GB"
    scheduler: str | None = None
    resume: bool = False
    retries: int = 2
    voxel_size: float | None = None
    detail: float = 0.6
    depth: int = 4
    orient: str = "up"
    tile_shape: str = "auto"
    max_tile_points: int | None = None
    preview: bool = True
    preview_ratio: float = 0.05
    piece_points: int = 2_000_000
    chunk_points: int = 1_000_000
    processes: bool = True
    kernel: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.inputs, (str, os.PathLike)):
            self.inputs = [str(self.inputs)]
        self.inputs = [str(p) for p in self.inputs]
        self.output = str(self.output)
        if self.backend != "kernel":
            raise ConfigError(f"backend '{self.backend}' cannot run in batch mode", None,
                              "use --backend kernel (its fields blend exactly across tiles)")
        for name in ("tile_size", "overlap", "voxel_size"):
            v = getattr(self, name)
            if v is not None and not float(v) > 0:
                raise ConfigError(f"{name} must be positive, got {v}", None,
                                  f"give a positive {name} or leave it unset")
        if self.workers < 1 and self.scheduler is None:
            raise ConfigError(f"workers must be at least 1, got {self.workers}", None, "use --workers 1 or more")
        if self.retries < 0:
            raise ConfigError("retries must be >= 0", None, "use --retries 2")
        if self.orient not in ORIENTS:
            raise ConfigError(f"unknown orientation '{self.orient}'", None, f"use one of: {', '.join(ORIENTS)}")
        if self.tile_shape not in ("auto", "column", "cube"):
            raise ConfigError(f"unknown tile shape '{self.tile_shape}'", None, "use auto, column or cube")
        if not 0.0 <= self.detail <= 1.0:
            raise ConfigError(f"detail must be in [0, 1], got {self.detail}", None, "use --detail 0.6")
        if not 1 <= self.depth <= 8:
            raise ConfigError(f"depth must be in 1..8, got {self.depth}", None, "use --depth 4")
        if not 0.0 <= self.preview_ratio <= 1.0:
            raise ConfigError("preview_ratio must be in [0, 1]", None, "use 0.05")
        if self.piece_points < 1000 or self.chunk_points < 1000:
            raise ConfigError("piece_points and chunk_points must be at least 1000", None, "use the defaults")
        if self.max_tile_points is not None and self.max_tile_points < 1000:
            raise ConfigError(f"max_tile_points too small: {self.max_tile_points}", None, "use at least 1000")
        bad = set(self.kernel) - set(KERNEL_KEYS)
        if bad:
            raise ConfigError(f"unknown kernel option(s) {', '.join(sorted(bad))}", None,
                              f"use some of: {', '.join(KERNEL_KEYS)}")
        self.memory_bytes()  # validates the text

    def memory_bytes(self) -> int:
        """``memory_limit`` in bytes."""
        from dask.utils import parse_bytes

        try:
            return int(parse_bytes(str(self.memory_limit)))
        except (ValueError, TypeError):
            raise ConfigError(f"cannot read memory limit '{self.memory_limit}'", None,
                              "write it like 2GB or 1500MiB") from None

    def tile_point_budget(self) -> int:
        """Points per tile (core + margin) that fit the worker memory limit.

        Measured on the 2-core reference machine: a worker holds ~0.45 GB of libraries, and a
        kernel fit with the default detail peaks at ~2.7 kB per shard point (378k points: 1.51 GiB);
        the budget keeps the peak near 70 % of the limit (Dask pauses a worker at 80 % and
        restarts it at 95 %): ~350k points for 2 GB.
        """
        if self.max_tile_points is not None:
            return int(self.max_tile_points)
        free = self.memory_bytes() - 450e6
        return max(20_000, int(0.45 * free / 2000.0))

    def kernel_options(self) -> dict:
        """KernelConfig fields for the tiles (voxel size is the lattice's)."""
        from recon.backends.kernel import KernelConfig

        opts = {"detail": self.detail, "depth": self.depth, **self.kernel}
        KernelConfig(**opts)  # validates
        return opts

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "BatchConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        bad = set(data) - names
        if bad:
            raise ConfigError(f"unknown batch option(s) {', '.join(sorted(bad))}", source,
                              f"use some of: {', '.join(sorted(names))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid batch options ({exc})", source, "check the option types") from None


def load_job(path: str | os.PathLike) -> dict:
    """Read a job YAML file into a dict of :class:`BatchConfig` fields (relative paths are
    resolved against the file's folder).

    Raises:
        ConfigError: unreadable file or not a mapping.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError("job file not found", p, "check the path")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read job file ({str(exc).splitlines()[0]})", p, "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise ConfigError("job file must be a mapping of options", p, "see configs/batch.yaml")
    base = p.resolve().parent

    def resolve(x: Any) -> str:
        q = Path(str(x)).expanduser()
        return str(q if q.is_absolute() else base / q)

    if "inputs" in data:
        ins = data["inputs"]
        data["inputs"] = [resolve(x) for x in ([ins] if isinstance(ins, str) else ins)]
    if data.get("output"):
        data["output"] = resolve(data["output"])
    return data
