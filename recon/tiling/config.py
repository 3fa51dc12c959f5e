"""BatchConfig: the options of a batch job (CLI flags and job YAML files map onto it)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recon.errors import ConfigError
from recon.tiling.options import KERNEL_RULES, MIN_WORKER_MEMORY, check_options, parse_memory

ORIENTS = ("up", "mst")
TILE_SHAPES = ("auto", "column", "cube")
#: Kernel options a batch job may set (the rest are fixed: no MISE, no chunking, CPU).
KERNEL_KEYS = tuple(KERNEL_RULES)
MAX_JOB_FILE_BYTES = 1 << 20
"""A job file is a few dozen lines; anything bigger is not one (and is not parsed)."""


@dataclass
class BatchConfig:
    """Options of ``recon batch`` (defaults are the recommended values).

    Command-line flags and job YAML keys map onto these fields; ``recon config show batch`` prints each
    with its type, default, range (from :data:`recon.tiling.options.RULES`) and the text below it.
    """

    inputs: list[str] = field(default_factory=list)
    """Point cloud files (.las .laz .ply .npy) or folders of them."""
    output: str = ""
    """The job folder (manifest, shards, fields, tiles, merged mesh)."""
    tile_size: float | None = None
    """Tile edge, world units (rounded to the coarsest voxel); None: the largest edge whose fullest tile
    holds at most ``max_tile_points`` points."""
    overlap: float | None = None
    """Blend half-width between tiles, world units (the shards hold twice this beyond each tile);
    None: 4 finest voxels (as the kernel's chunked mode)."""
    backend: str = "kernel"
    """Reconstruction backend; only "kernel" has the lattice-aligned field the seams need."""
    workers: int = 2
    """Local Dask workers (processes) when no scheduler is given."""
    memory_limit: str = "2GB"
    """Per-worker memory limit (Dask syntax, e.g. "2GB")."""
    scheduler: str | None = None
    """Address of an existing Dask scheduler (tcp://host:8786, shared file system); None starts a
    LocalCluster."""
    resume: bool = False
    """Continue the job in ``output`` (finished tiles whose inputs match are kept)."""
    retries: int = 2
    """Re-submissions of a failing tile task before it is recorded as failed."""
    voxel_size: float | None = None
    """Finest voxel edge, world units (None: from the point density and ``detail``)."""
    detail: float = 0.6
    """0..1 (kernel density rule: points per finest voxel 20..1)."""
    depth: int = 4
    """Kernel hierarchy depth (the coarsest voxel is 2**(depth-1) finest voxels)."""
    orient: str = "up"
    """Normal orientation when the input has none: "up" (airborne LiDAR) or "mst"."""
    tile_shape: str = "auto"
    """"auto" (columns spanning the scene's height when they fit the point budget, else cubes), "column"
    or "cube"."""
    max_tile_points: int | None = None
    """Per-tile point budget (core + margin); None: derived from memory_limit
    (:meth:`tile_point_budget`)."""
    preview: bool = True
    """Also write a quadric-decimated preview mesh (preview.ply)."""
    preview_ratio: float = 0.05
    """Fraction of faces the preview keeps."""
    piece_points: int = 2_000_000
    """Points per pass-1/pass-2 task."""
    chunk_points: int = 1_000_000
    """Points read at a time inside a task."""
    processes: bool = True
    """LocalCluster workers as processes (False: threads in this process, for debugging)."""
    kernel: dict = field(default_factory=dict)
    """Further KernelConfig options (see :data:`KERNEL_KEYS`), e.g. {"solver_tol": 1e-5}."""
    faults: dict = field(default_factory=dict)
    """Fault injection for tests ({"fit:0_0_0": "raise:1"}, see recon.tiling.job.inject_fault)."""

    def __post_init__(self) -> None:
        if isinstance(self.inputs, (str, os.PathLike)):
            self.inputs = [self.inputs]
        check_options({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        self.inputs = [str(p) for p in self.inputs]
        self.output = str(self.output)
        self.faults = dict(self.faults or {})
        if self.backend != "kernel":
            raise ConfigError(f"backend '{self.backend}' cannot run in batch mode", None,
                              "use --backend kernel (its fields blend exactly across tiles)")
        if self.orient not in ORIENTS:
            raise ConfigError(f"unknown orientation '{self.orient}'", None, f"use one of: {', '.join(ORIENTS)}")
        if self.tile_shape not in TILE_SHAPES:
            raise ConfigError(f"unknown tile shape '{self.tile_shape}'", None, "use auto, column or cube")
        if self.processes and self.scheduler is None and self.memory_bytes() < MIN_WORKER_MEMORY:
            raise ConfigError(f"memory limit {self.memory_limit} is too small for a worker process (its libraries "
                              "alone take about 0.45 GB)", None, "use --memory-limit 2GB")

    def memory_bytes(self) -> int:
        """``memory_limit`` in bytes."""
        try:
            return parse_memory(self.memory_limit)
        except ValueError:
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
        # lazy: recon.backends.kernel loads torch (seconds); the CLI imports this module at start-up
        from recon.backends.kernel.config import KernelConfig

        opts = {"detail": self.detail, "depth": self.depth, **self.kernel}
        KernelConfig(**opts)  # validates
        return opts

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str | os.PathLike | None = None) -> "BatchConfig":
        """A config from option names and values (a job file's, merged with flags).

        Raises:
            ConfigError: an unknown option, or a value of the wrong type or range (naming ``source``).
        """
        _check_known(data, source)
        check_options(data, source)
        return cls(**data)


def _check_known(data: dict, source: str | os.PathLike | None) -> None:
    """Refuse keys that are not :class:`BatchConfig` fields (YAML keys may be numbers too)."""
    names = {f.name for f in dataclasses.fields(BatchConfig)}
    bad = sorted(str(k) for k in data if k not in names)
    if bad:
        raise ConfigError(f"unknown batch option(s) {', '.join(bad)}", source,
                          f"use some of: {', '.join(sorted(names))}")


def load_job(path: str | os.PathLike) -> dict:
    """Read a job YAML file into a dict of :class:`BatchConfig` fields (relative paths are
    resolved against the file's folder).

    Every key must be a known option with a value of the right type and range; the error names
    the file and the key.

    Raises:
        ConfigError: missing, oversized or unreadable file, not a mapping, or a bad option.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError("job file not found", p, "check the path")
    try:
        size = p.stat().st_size
        if size > MAX_JOB_FILE_BYTES:
            raise ConfigError(f"job file is {size:,} bytes, too big for a job file", p,
                              "a job file holds a few options; see configs/batch/batch.yaml")
        data = yaml.safe_load(p.read_bytes()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        text = "nested too deeply" if isinstance(exc, RecursionError) else (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise ConfigError(f"cannot read job file ({text})", p, "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise ConfigError("job file must be a mapping of options", p, "see configs/batch/batch.yaml")
    _check_known(data, p)
    check_options(data, p)
    base = p.resolve().parent

    def resolve(x: Any) -> str:
        q = Path(str(x)).expanduser()
        return str(q if q.is_absolute() else base / q)

    if "inputs" in data:
        ins = data["inputs"]
        data["inputs"] = [resolve(x) for x in ([ins] if isinstance(ins, (str, os.PathLike)) else ins)]
    if data.get("output"):
        data["output"] = resolve(data["output"])
    return data
