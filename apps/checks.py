"""Command-line option checks shared by the commands: numeric ranges and parsed values.

Every numeric option is checked here before any file is read, so an absurd value (a billion
samples, a 100000-pixel image, a NaN position) is a one-line error instead of an
out-of-memory kill minutes later.
"""

from __future__ import annotations

import math

import numpy as np

from recon.errors import ConfigError

#: the most surface samples per mesh that ``recon eval`` and ``recon view --gt`` take (about 1 GB)
MAX_EVAL_SAMPLES = 10_000_000
#: the most points ``--sample`` may draw from a mesh or keep from a cloud (about 2 GB in float64)
MAX_SAMPLE_POINTS = 50_000_000


def check_range(option: str, value: float | int | None, lo: float, hi: float, example: str) -> None:
    """Refuse a value outside [lo, hi] or not finite; None (not given) passes.

    Args:
        option: the option as typed, e.g. ``--samples``.
        value: the parsed value.
        lo, hi: the inclusive range.
        example: a good value for the fix, e.g. ``100000``.

    Raises:
        ConfigError: ``option VALUE is out of range`` with the range and an example.
    """
    if value is None:
        return
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ConfigError(f"{option} {value} is out of range ({_fmt(lo)} to {_fmt(hi)})", None,
                          f"e.g. {option} {example}")


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def parse_xyz(text: str | None, option: str) -> np.ndarray | None:
    """``"1,2,3"`` -> (3,) float64, or None when not given.

    Raises:
        ConfigError: not three finite numbers.
    """
    if text is None:
        return None
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise ConfigError(f"{option} '{text}' is not three finite numbers", None,
                          f"write {option} as X,Y,Z, e.g. 0,0,10")
    return np.asarray(vals, dtype=np.float64)


__all__ = ["MAX_EVAL_SAMPLES", "MAX_SAMPLE_POINTS", "check_range", "parse_xyz"]
