"""Helpers shared by the readers: path checks, size limits, error wrapping, colour scaling.

Size rules (files are untrusted; every count in a header is checked before anything is allocated):

* a fixed-size record format may not declare more records than its bytes can hold
  (:func:`check_fits`);
* a compressed payload may not decode to more than :data:`MAX_DECODE_RATIO` times its stored
  size, except that anything up to :data:`DECODE_FLOOR_BYTES` is always allowed
  (:func:`check_decoded_size`). The floor keeps small, highly compressible real files working
  (an organised PCD that is mostly NaN, an npz with an all-zero label array); the ratio keeps a
  10 MB file from decoding to more than 200 MB (a few times that in memory once converted to
  float64 points), so no input of 10 MB or less can take gigabytes before its error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from recon.errors import InputError, ReconError

PathLike = str | os.PathLike

T = TypeVar("T")

#: Decoded size in bytes (128 MiB) that any compressed payload may reach, whatever its stored size.
DECODE_FLOOR_BYTES = 128 << 20
#: Largest accepted ratio of decoded to stored bytes above :data:`DECODE_FLOOR_BYTES`. Point data
#: (floats) compresses 1.1-3x with LZF or deflate and 5-10x with LAZ; 20x leaves room for constant
#: attributes.
MAX_DECODE_RATIO = 20


def human_bytes(n: int) -> str:
    """``n`` bytes as a short string (``"1.5 GB"``; ``"2.1e+19 bytes"`` beyond petabytes)."""
    if n < 1000:
        return f"{n} bytes"
    size = float(n)
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{float(n):.2g} bytes"


def check_fits(path: PathLike, problem: str, count: int, record: int, available: int, what: str, fix: str,
               unit: str = "bytes") -> None:
    """Raise unless ``count`` records of ``record`` units fit in the ``available`` units left.

    Args:
        path: the file (for the message).
        problem: the message's start, e.g. ``"truncated binary PCD body"``.
        count: the declared number of records (points, faces ...); any Python int.
        record: the smallest size of one record (>= 0), in ``unit``.
        available: units of the file left to hold them.
        what: the records, e.g. ``"points"``.
        fix: what the user should do.
        unit: ``"bytes"`` (sizes printed as 1.5 GB) or another unit such as ``"values"``.

    Raises:
        InputError: negative count, or the records need more than there is.
    """
    if count < 0:
        raise InputError(f"{problem}: negative number of {what} ({count})", path, fix)
    need = count * record
    if need > available:
        def show(v: int) -> str:
            return human_bytes(v) if unit == "bytes" else f"{v:,} {unit}"

        raise InputError(f"{problem}: the header declares {count:,} {what}, needing at least {show(need)}, "
                         f"but only {show(max(available, 0))} are left", path, fix)


def check_decoded_size(path: PathLike, decoded: int, stored: int, what: str, fix: str) -> None:
    """Raise when ``decoded`` bytes from ``stored`` compressed bytes break the rule in the module docstring.

    Args:
        path: the file (for the message).
        decoded: the declared uncompressed size in bytes.
        stored: the compressed bytes it comes from.
        what: the payload, e.g. ``"LZF block"``.
        fix: what the user should do.

    Raises:
        InputError: negative size, or more than ``max(DECODE_FLOOR_BYTES, MAX_DECODE_RATIO * stored)``.
    """
    if decoded < 0:
        raise InputError(f"corrupt header: negative size for the {what}", path, fix)
    limit = max(DECODE_FLOOR_BYTES, MAX_DECODE_RATIO * max(int(stored), 0))
    if decoded > limit:
        raise InputError(
            f"implausible {what}: {human_bytes(decoded)} declared from {human_bytes(stored)} of compressed data "
            f"(more than {MAX_DECODE_RATIO}x; a corrupt header or a decompression bomb)",
            path,
            fix,
        )


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


def check_image_pixels(path: PathLike, width: int, height: int, pixel_bytes: int, file_size: int) -> None:
    """Refuse an image whose declared pixels break :func:`check_decoded_size` (a decompression bomb).

    Args:
        path: the image file.
        width, height: the size in its header (pixels).
        pixel_bytes: bytes of one decoded pixel (1 for 8-bit grey, 3 for RGB, 4 for RGBA or float).
        file_size: the file's size in bytes.

    Raises:
        InputError: a non-positive size, or ``width * height * pixel_bytes`` bytes beyond the rule.
    """
    if width < 1 or height < 1:
        raise InputError(f"image has an empty size {width}x{height}", path, "check the file is a valid image")
    check_decoded_size(path, width * height * max(pixel_bytes, 1), file_size, f"image size {width}x{height}",
                       "check the image; resize it or re-save it with ordinary compression")


@contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's logged warnings (``laspy``, ``trimesh``) while it reads an untrusted file,
    so that a refusal stays one line on stderr."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


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
