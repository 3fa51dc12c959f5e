"""Helpers shared by the readers: path checks, error wrapping, colour scaling."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from recon.errors import InputError, ReconError

PathLike = str | os.PathLike

T = TypeVar("T")


def check_readable(path: PathLike) -> Path:
    """Return ``path`` as a :class:`Path` or raise :class:`InputError` when it cannot be read.

    Raises:
        InputError: the path does not exist, is a directory, or cannot be opened.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p, "check the path and the current directory")
    if p.is_dir():
        raise InputError("is a directory, not a file", p, "pass a file inside it")
    if not os.access(p, os.R_OK):
        raise InputError("file is not readable", p, "check its permissions")
    return p


def read_bytes(path: PathLike) -> bytes:
    """The whole file as bytes; OS errors become :class:`InputError`."""
    p = check_readable(path)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})", p, "check the file and its permissions") from exc


def guarded(path: PathLike, what: str, fix: str, fn: Callable[[], T]) -> T:
    """Run ``fn``; turn any non-Recon exception into a one-line :class:`InputError`.

    Args:
        path: the file concerned (for the message).
        what: the reading step, e.g. ``"cannot parse LAS file"``.
        fix: what the user should do.
        fn: the work to run.
    """
    try:
        return fn()
    except ReconError:
        raise
    except MemoryError as exc:
        raise InputError(f"{what}: out of memory", path, "the file is too large or its header is corrupt") from exc
    except Exception as exc:  # noqa: BLE001 - third-party libraries raise anything
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{what} ({detail[:200]})", path, fix) from exc


def colors_to_unit(values: np.ndarray) -> np.ndarray:
    """Scale colours to float32 in [0, 1].

    Rule: integer dtypes are divided by their dtype maximum (uint8 -> /255,
    uint16 -> /65535); floating values whose maximum exceeds 1 are treated as
    0..255 and divided by 255; otherwise they are taken as already in [0, 1].
    The result is clipped to [0, 1].

    Args:
        values: (N, 3) colours of any numeric dtype.

    Returns:
        (N, 3) float32 in [0, 1].
    """
    v = np.asarray(values)
    if np.issubdtype(v.dtype, np.integer):
        scale = float(np.iinfo(v.dtype).max)
        out = v.astype(np.float64) / scale
    else:
        out = v.astype(np.float64)
        finite = out[np.isfinite(out)]
        if finite.size and float(finite.max()) > 1.0:
            out = out / 255.0
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32)


def looks_like_rgb255(values: np.ndarray) -> bool:
    """True when (N, 3) values are integer-valued, all in [0, 255] and at least one exceeds 1.

    This is the rule that separates ``x y z r g b`` from ``x y z nx ny nz`` in
    six-column text, npy and bin files: unit normals are never all integers
    with a component above 1.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return False
    return bool(np.all(v >= 0) and np.all(v <= 255) and np.all(v == np.round(v)) and v.max() > 1.0)


def info(fmt: str, **details: Any) -> dict[str, Any]:
    """A format-description dict, as used by :func:`recon.io.describe`."""
    d: dict[str, Any] = {"format": fmt}
    d.update(details)
    return d
