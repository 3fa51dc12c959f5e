"""Reading ``.npy`` and ``.npz`` bytes without trusting their headers.

:func:`numpy.load` trusts an array header: reading from a stream (a zip member) it allocates
``shape x itemsize`` bytes before reading any data, so a 400 KB archive can claim gigabytes.
Here every header is parsed first and checked:

* the header is the documented ``.npy`` one (magic, version 1-3, a dict literal read with
  :func:`ast.literal_eval`, at most :data:`MAX_HEADER` bytes); dtypes holding Python objects are
  refused (nothing is ever unpickled);
* ``prod(shape) x itemsize`` must equal the bytes that follow the header: in the file for
  ``.npy``, in the member's declared uncompressed size for ``.npz`` (:mod:`zipfile` never
  decodes more than that size);
* for ``.npz``, members must be stored or deflated (what :func:`numpy.savez` and
  :func:`numpy.savez_compressed` write), each member's declared size must be possible for its
  compressed bytes (equal when stored, at most :data:`DEFLATE_MAX_RATIO` times when deflated),
  and the declared sizes of all members together must pass
  :func:`recon.io._common.check_decoded_size` against the archive's size (at most 20x, or 128 MiB
  whatever the size): a legitimate archive of points compresses 1-3x, a zip bomb ~1000x.

Only then is each array allocated and filled, block by block.
"""

from __future__ import annotations

import ast
import io
import math
import os
import zipfile
import zlib
from typing import IO

import numpy as np

from recon.errors import InputError
from recon.io._common import check_decoded_size

MAGIC = b"\x93NUMPY"
#: Largest accepted ``.npy`` header (numpy writes under 1 KB; numpy's own reader stops at 10 KB).
MAX_HEADER = 1 << 16
_READ_BLOCK = 1 << 20
#: Deflate never expands more than about 1032x (258-byte matches coded in 2 bits); with slack.
DEFLATE_MAX_RATIO = 1040
_FIX_NPY = "save the array with numpy.save"
_FIX_NPZ = "save the arrays with numpy.savez"


def _bad(path: str | os.PathLike, problem: str, fix: str) -> InputError:
    return InputError(problem, path, fix)


def read_header(fp: IO[bytes], path: str | os.PathLike, label: str, fix: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Parse an ``.npy`` header from the start of ``fp``.

    Args:
        fp: a binary stream positioned at the magic string.
        path: the file (for messages).
        label: the start of messages ("not a valid .npy file", "bad array 'points' in the .npz").
        fix: the fix for messages.

    Returns:
        shape, Fortran order, dtype, and the header's length in bytes (where the data starts).

    Raises:
        InputError: not an ``.npy`` header, malformed, or a dtype that holds Python objects.
    """
    lead = fp.read(8)
    if len(lead) < 8 or lead[:6] != MAGIC:
        raise _bad(path, f"{label}: not a numpy array (no .npy magic)", fix)
    major = lead[6]
    if major not in (1, 2, 3):
        raise _bad(path, f"{label}: unknown .npy version {major}", fix)
    size_bytes = 2 if major == 1 else 4
    raw_len = fp.read(size_bytes)
    if len(raw_len) < size_bytes:
        raise _bad(path, f"{label}: truncated .npy header", fix)
    hlen = int.from_bytes(raw_len, "little")
    if hlen > MAX_HEADER:
        raise _bad(path, f"{label}: .npy header of {hlen} bytes (at most {MAX_HEADER})", fix)
    text = fp.read(hlen)
    if len(text) < hlen:
        raise _bad(path, f"{label}: truncated .npy header", fix)
    try:
        meta = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin-1"))
        descr, fortran, shape = meta["descr"], meta["fortran_order"], meta["shape"]
        dtype = np.lib.format.descr_to_dtype(descr)
    except (ValueError, SyntaxError, TypeError, KeyError, MemoryError, RecursionError, UnicodeDecodeError):
        raise _bad(path, f"{label}: malformed .npy header", fix) from None
    if not isinstance(fortran, bool) or not isinstance(shape, tuple) or len(shape) > 32 \
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise _bad(path, f"{label}: malformed .npy header (shape {str(shape)[:40]})", fix)
    if dtype.hasobject:
        raise _bad(path, f"{label}: holds Python objects, which are never unpickled", "save plain numeric arrays")
    if dtype.itemsize == 0:
        raise _bad(path, f"{label}: empty dtype ({dtype})", fix)
    return shape, fortran, dtype, 8 + size_bytes + hlen


def _check_size(path: str | os.PathLike, label: str, shape: tuple[int, ...], dtype: np.dtype, available: int, fix: str) -> int:
    """``prod(shape) * itemsize`` as an int; it must equal the ``available`` data bytes."""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != available:
        dims = "x".join(map(str, shape)) or "scalar"
        raise _bad(path, f"{label}: header declares {dims} {dtype} ({nbytes:,} bytes) but {max(available, 0):,} bytes of data follow", fix)
    return nbytes


def _empty(shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> np.ndarray:
    return np.empty(shape[::-1], dtype).T if fortran else np.empty(shape, dtype)


def read_npy_bytes(data: bytes, path: str | os.PathLike) -> np.ndarray:
    """The array of an ``.npy`` file held in ``data`` (a new, writable array).

    Raises:
        InputError: see the module docstring.
    """
    label = "not a valid .npy file"
    shape, fortran, dtype, start = read_header(io.BytesIO(data), path, label, _FIX_NPY)
    _check_size(path, label, shape, dtype, len(data) - start, _FIX_NPY)
    arr = _empty(shape, fortran, dtype)
    flat = arr.reshape(-1, order="F" if fortran else "C")
    flat[...] = np.frombuffer(data, dtype, flat.size, start)
    return arr


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str | os.PathLike) -> np.ndarray:
    """One ``.npz`` member: header checked against its declared size, then read block by block."""
    label = f"bad array {info.filename.removesuffix('.npy')[:40]!r} in the .npz"
    with zf.open(info) as fp:
        shape, fortran, dtype, start = read_header(fp, path, label, _FIX_NPZ)
        nbytes = _check_size(path, label, shape, dtype, info.file_size - start, _FIX_NPZ)
        arr = _empty(shape, fortran, dtype)
        view = memoryview(arr.reshape(-1, order="F" if fortran else "C").view(np.uint8))  # arr's own memory
        got = 0
        while got < nbytes:  # blocks of the member, not bytes or elements
            chunk = fp.read(min(_READ_BLOCK, nbytes - got))
            if not chunk:
                raise _bad(path, f"{label}: truncated data", _FIX_NPZ)
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
        fp.read(1)  # reach the end of the member so that zipfile checks its CRC
    return arr


def _check_member(info: zipfile.ZipInfo, archive: int, path: str | os.PathLike) -> None:
    """A member's method and declared sizes must be possible for the bytes the archive holds."""
    label = f"bad member {info.filename[:40]!r} in the .npz"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _bad(path, f"{label}: compression method {info.compress_type} (numpy writes stored or deflate only)", _FIX_NPZ)
    if info.compress_size > archive:
        raise _bad(path, f"{label}: {info.compress_size:,} compressed bytes declared in a {archive:,}-byte file", _FIX_NPZ)
    stored = info.compress_type == zipfile.ZIP_STORED
    if (stored and info.file_size != info.compress_size) or \
            (not stored and info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024):
        raise _bad(path, f"{label}: {info.file_size:,} bytes cannot come from {info.compress_size:,} compressed bytes", _FIX_NPZ)


def read_npz_bytes(data: bytes, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{name: array}`` of an ``.npz`` archive held in ``data`` (names without ``.npy``).

    Raises:
        InputError: not a zip archive, a member that is not an ``.npy`` array, declared sizes
            beyond the bound in the module docstring, a header that disagrees with its member,
            or a corrupt member (bad CRC, bad deflate data).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_member(info, len(data), path)
            total = sum(i.file_size for i in infos)
            check_decoded_size(path, total, len(data), ".npz contents",
                               "re-save the arrays with numpy.savez (uncompressed) from their source")
            arrays: dict[str, np.ndarray] = {}
            for info in infos:  # loop over the archive's arrays
                if info.is_dir():
                    continue
                if not info.filename.endswith(".npy"):
                    raise _bad(path, f"member {info.filename[:40]!r} is not a numpy array", _FIX_NPZ)
                arrays[info.filename[: -len(".npy")]] = _read_member(zf, info, path)
            return arrays
    except InputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError, KeyError, OverflowError) as exc:
        detail = str(exc).splitlines()[0][:80] if str(exc).strip() else type(exc).__name__
        raise _bad(path, f"not a valid .npz file ({detail})", _FIX_NPZ) from None


__all__ = ["DEFLATE_MAX_RATIO", "MAGIC", "MAX_HEADER", "read_header", "read_npy_bytes", "read_npz_bytes"]
