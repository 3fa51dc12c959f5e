"""Types and ranges of the batch options, checked before any work.

Every option of ``recon batch`` (command-line flag, job YAML key or :class:`~recon.tiling.config.BatchConfig`
field) has a :class:`Rule`: its type and the range that can run. A value outside it is refused with one
:class:`~recon.errors.ConfigError` line naming the key (``--workers`` on the command line, ``workers`` in a
job file) and the job file when it came from one, instead of a traceback or a job that never ends
(``--workers 1000000`` would start a million processes).
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

from recon.errors import ConfigError

MAX_WORKERS = 1024
"""Most Dask workers a job may ask for (the local cluster is further bounded by the CPU cores)."""
MAX_RETRIES = 100
MAX_LENGTH = 1e12
"""Largest tile size, overlap or voxel size, world units (the lattice counts voxels in int64)."""
MIN_TILE_POINTS = 1_000
MAX_TILE_POINTS = 1_000_000_000
MAX_PIECE_POINTS = 1_000_000_000
MAX_CHUNK_POINTS = 10_000_000
"""Points read at a time: ~100 bytes each, so a reader holds at most ~1 GB."""
MIN_MEMORY = 1 << 20
MAX_MEMORY = 1 << 50
"""``memory_limit`` range, bytes (the local-cluster minimum is :data:`MIN_WORKER_MEMORY`)."""
MIN_WORKER_MEMORY = 1_000_000_000
"""Smallest memory limit of a local worker process: its libraries alone take ~0.45 GB, and Dask pauses a
worker for good at 80 % of its limit."""


@dataclass(frozen=True)
class Rule:
    """Type and range of one option.

    Attributes:
        kind: "int", "float", "bool", "str", "paths" (a path or a list of paths), "memory"
            (Dask size text or bytes), "mapping" (string keys, scalar values).
        lo, hi: inclusive range for numbers (None: unbounded).
        positive: numbers must be above 0 (``lo`` is then ignored).
        optional: None (YAML null) is allowed.
        example: a good value, for the fix.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    positive: bool = False
    optional: bool = False
    example: str = ""


RULES: dict[str, Rule] = {
    "inputs": Rule("paths", example="scene.laz"),
    "output": Rule("str", example="scene_job"),
    "tile_size": Rule("float", hi=MAX_LENGTH, positive=True, optional=True, example="200"),
    "overlap": Rule("float", hi=MAX_LENGTH, positive=True, optional=True, example="2"),
    "backend": Rule("str", example="kernel"),
    "workers": Rule("int", 1, MAX_WORKERS, example="2"),
    "memory_limit": Rule("memory", example="2GB"),
    "scheduler": Rule("str", optional=True, example="tcp://host:8786"),
    "resume": Rule("bool", example="true"),
    "retries": Rule("int", 0, MAX_RETRIES, example="2"),
    "voxel_size": Rule("float", hi=MAX_LENGTH, positive=True, optional=True, example="0.25"),
    "detail": Rule("float", 0.0, 1.0, example="0.6"),
    "depth": Rule("int", 1, 8, example="4"),
    "orient": Rule("str", example="up"),
    "tile_shape": Rule("str", example="auto"),
    "max_tile_points": Rule("int", MIN_TILE_POINTS, MAX_TILE_POINTS, optional=True, example="350000"),
    "preview": Rule("bool", example="true"),
    "preview_ratio": Rule("float", 0.0, 1.0, example="0.05"),
    "piece_points": Rule("int", 1_000, MAX_PIECE_POINTS, example="2000000"),
    "chunk_points": Rule("int", 1_000, MAX_CHUNK_POINTS, example="1000000"),
    "processes": Rule("bool", example="true"),
    "kernel": Rule("mapping", example="{solver_tol: 1.0e-5}"),
    "faults": Rule("mapping", optional=True, example="{}"),
}

#: Types of the kernel options a job may set (``kernel:`` in a job file); KernelConfig checks their ranges.
KERNEL_RULES: dict[str, Rule] = {
    "detail": Rule("float", 0.0, 1.0, example="0.6"),
    "min_resolution": Rule("float", hi=1e6, positive=True, optional=True, example="105"),
    "depth": Rule("int", 1, 8, example="4"),
    "adaptive_depth": Rule("int", 1, 8, example="2"),
    "dilate_from": Rule("int", 0, 8, optional=True, example="2"),
    "solver_tol": Rule("float", hi=1.0, positive=True, example="1.0e-3"),
    "solver_max_iter": Rule("int", 1, 1_000_000, example="2000"),
    "preconditioner": Rule("str", example="auto"),
    "upsample": Rule("int", 1, 8, example="1"),
    "trim_distance": Rule("float", hi=1e6, positive=True, example="2.0"),
    "pos_weight": Rule("float", hi=1e12, positive=True, example="1.0e4"),
    "normal_weight": Rule("float", hi=1e12, positive=True, example="1.0e4"),
    "reg_weight": Rule("float", 0.0, 1e12, example="0.3"),
    "normal_min_norm": Rule("float", 0.0, 1.0, example="0.3"),
    "max_voxels": Rule("int", 1_000, 10_000_000_000, example="20000000"),
}


def option_name(key: str, cli: bool) -> str:
    """``--max-tile-points`` on the command line, ``max_tile_points`` elsewhere."""
    return "--" + key.replace("_", "-") if cli else key


def _fix(name: str, rule: Rule, cli: bool) -> str:
    return f"use {name} {rule.example}" if cli else f"set {name}: {rule.example}"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        text = f"{int(value):,}"
    else:
        text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_memory(value: Any) -> int:
    """A Dask memory size (``"2GB"``, ``"1500MiB"`` or a number of bytes) in bytes.

    Raises:
        ValueError: not a size.
    """
    # lazy: dask.utils takes ~0.3 s to import and the CLI imports this module at start-up
    from dask.utils import parse_bytes

    if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
        raise ValueError(value)
    try:
        return int(parse_bytes(value if isinstance(value, str) else int(value)))
    except (ValueError, TypeError, OverflowError):
        raise ValueError(value) from None


def check_value(key: str, value: Any, rule: Rule, source: str | os.PathLike | None = None,
                cli: bool = False) -> None:
    """Refuse ``value`` unless it has ``rule``'s type and lies in its range.

    Args:
        key: the option's field name ("max_tile_points").
        value: the value given.
        rule: its rule.
        source: the job file it came from (named in the message), or None.
        cli: the value came from a command-line flag (named ``--max-tile-points``).

    Raises:
        ConfigError: one line naming the option, the value and a good example.
    """
    name = option_name(key, cli)
    fix = _fix(name, rule, cli)
    if value is None:
        if rule.optional:
            return
        raise ConfigError(f"{name} must be set (it is empty)", source, fix)
    kind = rule.kind
    if kind in ("int", "float"):
        whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if kind == "int" and not whole:
            got = "a fraction" if isinstance(value, numbers.Real) and not isinstance(value, bool) else "not a number"
            raise ConfigError(f"{name} must be a whole number, got {_describe(value)} ({got})", source, fix)
        if kind == "float" and not (whole or (isinstance(value, numbers.Real) and not isinstance(value, bool))):
            raise ConfigError(f"{name} must be a number, got {_describe(value)}", source, fix)
        x = float(value) if not whole or abs(int(value)) < 2 ** 1000 else math.inf
        if not math.isfinite(x):
            raise ConfigError(f"{name} must be a finite number, got {_describe(value)}", source, fix)
        lo = 0.0 if rule.positive else rule.lo
        low_ok = x > 0 if rule.positive else (lo is None or x >= lo)
        if not low_ok or (rule.hi is not None and x > rule.hi):
            fmt = (lambda v: f"{int(v):,}") if kind == "int" else (lambda v: f"{v:g}")
            if rule.hi is None:
                span = "positive" if rule.positive else f"at least {fmt(lo)}"
            elif rule.positive:
                span = f"positive and at most {fmt(rule.hi)}"
            else:
                span = f"between {fmt(lo)} and {fmt(rule.hi)}"
            raise ConfigError(f"{name} must be {span}, got {_describe(value)}", source, fix)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {_describe(value)}", source, fix)
    elif kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{name} must be a text, got {_describe(value)}", source, fix)
    elif kind == "paths":
        items = [value] if isinstance(value, (str, os.PathLike)) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise ConfigError(f"{name} must be a file or folder name or a list of them, got {_describe(value)}",
                              source, fix)
        bad = [v for v in items if not isinstance(v, (str, os.PathLike)) or not str(v).strip()]
        if bad:
            raise ConfigError(f"{name} must list file or folder names, got {_describe(bad[0])}", source, fix)
    elif kind == "memory":
        try:
            size = parse_memory(value)
        except ValueError:
            raise ConfigError(f"cannot read memory limit {_describe(value)} ({name})", source,
                              "write it like 2GB or 1500MiB") from None
        if not MIN_MEMORY <= size <= MAX_MEMORY:
            raise ConfigError(f"{name} must be between 1MiB and 1PiB, got {_describe(value)}", source, fix)
    elif kind == "mapping":
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping of options, got {_describe(value)}", source, fix)
        for k, v in value.items():
            if not isinstance(k, str) or not (v is None or isinstance(v, (str, bool, numbers.Real))):
                raise ConfigError(f"{name}: entry {_describe(k)} must be a name with a plain value", source, fix)
    else:  # pragma: no cover - a rule table mistake
        raise AssertionError(kind)


def check_options(data: dict, source: str | os.PathLike | None = None, cli: bool = False) -> None:
    """Check the type and range of every known option in ``data`` (unknown keys are left to the caller).

    ``kernel`` entries are checked against :data:`KERNEL_RULES` (names must be known).

    Raises:
        ConfigError: the first bad value, naming its key and ``source``.
    """
    for key, value in data.items():
        rule = RULES.get(key) if isinstance(key, str) else None
        if rule is None:
            continue
        check_value(key, value, rule, source, cli)
        if key == "kernel":
            for k, v in value.items():
                if k not in KERNEL_RULES:
                    raise ConfigError(f"unknown kernel option {_describe(k)}", source,
                                      f"use some of: {', '.join(KERNEL_RULES)}")
                check_value(f"kernel.{k}", v, KERNEL_RULES[k], source)


__all__ = ["KERNEL_RULES", "MAX_WORKERS", "MIN_WORKER_MEMORY", "RULES", "Rule", "check_options", "check_value",
           "option_name", "parse_memory"]
