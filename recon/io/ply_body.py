"""PLY bodies: binary and ASCII element data, read with numpy only.

Binary elements whose rows all have the same size are read with one structured
:func:`numpy.frombuffer`; elements whose list lengths vary (mixed polygons) are located with
pointer doubling over byte positions, so no Python loop runs over rows. ASCII bodies are
tokenised once and consumed the same way (one token = one unit).

Sizes are checked before anything is allocated: each element's declared row count times its
smallest row (every list empty) must fit in the bytes (binary) or values (ASCII; a value takes
at least two characters with its separator) that are left; list lengths must be non-negative,
fit their count type and stay inside the file; integer values read from ASCII must fit their
type.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io._common import check_fits
from recon.io.ply_header import FIX_CORRUPT, PlyElement, PlyHeader, PlyList, PlyProperty

#: Largest size in bytes of one fixed-size row read as a structured dtype (numpy needs a C int).
_MAX_ROW_BYTES = (1 << 31) - 1


def _itemsize(code: str) -> int:
    return np.dtype(code).itemsize


def _check_rows(el: PlyElement, left: int, unit: Callable[[str], int], units: str, path: str | os.PathLike) -> None:
    """The element's rows, at their smallest, must fit in the ``left`` units (``"bytes"``/``"values"``) of the body."""
    check_fits(path, "truncated or corrupt PLY body", el.count, el.min_row_units(unit), left, f"{el.name!r} rows",
               FIX_CORRUPT, units)


# --------------------------------------------------------------------------- binary


def _gather(buf: np.ndarray, pos: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Values of dtype ``dt`` starting at byte positions ``pos`` ((K,) int64) of ``buf`` ((n,) uint8, n >= 1).

    Bytes past the end read as the last byte: callers mask those positions out.
    """
    raw = np.empty((pos.shape[0], dt.itemsize), np.uint8)
    last = buf.shape[0] - 1
    for j in range(dt.itemsize):  # the bytes of one value (at most 8)
        raw[:, j] = buf[np.minimum(pos + j, last)]
    return raw.view(dt).reshape(-1)


def _binary_fixed(buf: np.ndarray, off: int, el: PlyElement, endian: str) -> tuple[dict[str, Any], int] | None:
    """Read ``el`` assuming every row has the list lengths of its first row; None if they vary.

    Raises:
        InputError: (without a path) the rows run past the end and the element has no lists.
    """
    n = buf.shape[0]
    fields: list[tuple[Any, ...]] = []
    cur = off
    for i, p in enumerate(el.properties):
        if p.count_dtype is None:
            fields.append((f"p{i}", endian + p.dtype))
            cur += _itemsize(p.dtype)
            continue
        cdt = np.dtype(endian + p.count_dtype)
        k = 0
        if el.count:
            if cur + cdt.itemsize > n:
                return None  # the general path reports where it ends
            k = int(np.frombuffer(buf, cdt, 1, cur)[0])
            if k < 0:
                return None
        cur += cdt.itemsize + k * _itemsize(p.dtype)
        if el.count and cur - off > min(n - off, _MAX_ROW_BYTES):
            return None  # even one such row does not fit: the general path reports it
        fields.append((f"c{i}", cdt))
        fields.append((f"p{i}", endian + p.dtype, (k,)))
    row = cur - off
    if off + el.count * row > n:
        if el.has_lists:
            return None  # rows may be shorter than the first one: take the general path
        raise InputError("truncated binary PLY body", None)
    rows = np.frombuffer(buf, np.dtype(fields), el.count, off)
    out: dict[str, Any] = {}
    for i, p in enumerate(el.properties):
        if p.count_dtype is None:
            out[p.name] = rows[f"p{i}"].astype(p.dtype)
        else:
            counts = rows[f"c{i}"].astype(np.int64)
            k = rows.dtype[f"p{i}"].shape[0] if rows.dtype[f"p{i}"].shape else 0
            if counts.size and np.any(counts != k):
                return None
            out[p.name] = PlyList(counts, rows[f"p{i}"].astype(p.dtype).reshape(-1))
    return out, off + el.count * row


def _row_starts(jump_of: Callable[[np.ndarray], np.ndarray], m: int, rows: int) -> np.ndarray:
    """Start of each of ``rows`` rows and the end ((rows+1,) int64) by pointer doubling.

    ``jump_of(p)`` gives, for relative positions ``p`` ((m,) int64), where the next row
    would start if one started at ``p``; values > m mean "overruns the data".
    """
    jump = np.empty(m + 2, dtype=np.int64)
    jump[:m] = np.clip(jump_of(np.arange(m, dtype=np.int64)), 0, m + 1)
    jump[m] = m  # a row starting at the very end is zero-length only if allowed; treat as stop
    jump[m + 1] = m + 1
    t = np.arange(rows + 1, dtype=np.int64)
    pos = np.zeros(rows + 1, dtype=np.int64)
    bit = 0
    while (1 << bit) <= rows:
        sel = ((t >> bit) & 1).astype(bool)
        pos[sel] = jump[pos[sel]]
        bit += 1
        if (1 << bit) <= rows:
            jump = jump[jump]
    return pos


def _list_counts(raw: np.ndarray, code: str) -> tuple[np.ndarray, np.ndarray]:
    """List lengths as int64 and a mask of the valid ones (non-negative integers within ``code``'s range).

    ``raw`` holds the counts as read: integers (binary) or float64 tokens (ASCII).
    """
    if raw.dtype.kind == "f":
        info = np.iinfo(code)
        ok = np.isfinite(raw) & (raw >= max(info.min, 0)) & (raw <= info.max) & (raw == np.round(raw))
        return np.where(ok, raw, 0).astype(np.int64), ok
    cnt = raw.astype(np.int64)
    return cnt, cnt >= 0


def _variable_rows(
    n: int,
    rows: int,
    props: list[PlyProperty],
    unit: Callable[[str], int],
    read: Callable[[np.ndarray, str], np.ndarray],
    path: str | os.PathLike,
) -> tuple[dict[str, Any], int]:
    """Read rows with variable-length lists from a source of ``n`` units starting at 0.

    Args:
        n: number of units (bytes or tokens) available.
        rows: element count (already checked to fit at its smallest).
        props: the element's properties.
        unit: ``unit(dtype_code) -> int`` size of one value in units.
        read: ``read(pos, dtype_code) -> values`` gathering one value per position (pos < n).

    Raises:
        InputError: a list length is negative, too large for its type, or runs past the end.
    """

    def walk(start: np.ndarray, collect: bool) -> tuple[np.ndarray, dict[str, Any]]:
        cur = start.copy()
        bad = np.zeros(start.shape, dtype=bool)
        out: dict[str, Any] = {}
        for p in props:
            if p.count_dtype is None:
                size = unit(p.dtype)
                ok = cur + size <= n
                bad |= ~ok
                if collect:
                    out[p.name] = read(np.where(ok, cur, 0), p.dtype)
                cur = cur + size
                continue
            csize = unit(p.count_dtype)
            ok = (cur + csize <= n) & ~bad
            cnt, valid = _list_counts(read(np.where(ok, cur, 0), p.count_dtype), p.count_dtype)
            bad |= ~ok | ~valid
            # a list longer than the data is bad; capping keeps the arithmetic in int64
            cnt = np.where(bad, 0, np.minimum(cnt, n + 1))
            isize = unit(p.dtype)
            first = cur + csize
            if collect:
                if np.any(bad):
                    raise InputError("corrupt PLY body (a list length is negative or too large)", path, FIX_CORRUPT)
                ends = np.cumsum(cnt)
                starts = np.repeat(first - (ends - cnt) * isize, cnt)
                flat_pos = starts + (np.arange(int(ends[-1]) if ends.size else 0, dtype=np.int64) * isize)
                if flat_pos.size and int(flat_pos.max()) + isize > n:
                    raise InputError("truncated PLY body (list runs past the end)", path, FIX_CORRUPT)
                out[p.name] = PlyList(cnt, read(flat_pos, p.dtype) if flat_pos.size else np.zeros(0, p.dtype))
            cur = first + cnt * isize
        return np.where(bad, n + 1, cur), out

    starts = _row_starts(lambda p: walk(p, False)[0], n, rows)
    end = int(starts[-1])
    if end > n or (rows > 0 and props and bool((starts[:-1] >= n).any())):
        raise InputError("truncated or corrupt PLY body (a list length is negative, too large, or runs past the end)",
                         path, FIX_CORRUPT)
    _, out = walk(starts[:-1], True)
    return out, end


def read_binary(data: bytes, header: PlyHeader, path: str | os.PathLike, wanted: set[str] | None) -> dict[str, dict[str, Any]]:
    """``{element: {property: array or PlyList}}`` of a binary PLY (``wanted``: elements to keep; None keeps all)."""
    endian = "<" if header.format == "binary_little_endian" else ">"
    buf = np.frombuffer(data, dtype=np.uint8)
    off = header.body_offset
    result: dict[str, dict[str, Any]] = {}
    for el in header.elements:
        _check_rows(el, buf.shape[0] - off, _itemsize, "bytes", path)
        if not el.properties:
            values: dict[str, Any] = {}
        else:
            try:
                got = _binary_fixed(buf, off, el, endian)
            except InputError as exc:
                raise InputError(f"{exc.problem} in element {el.name!r}", path,
                                 "the file was cut short; re-export or re-download it") from None
            if got is None:
                sub = buf[off:]

                def read(pos: np.ndarray, code: str, sub: np.ndarray = sub) -> np.ndarray:
                    return _gather(sub, pos, np.dtype(endian + code)).astype(code)

                raw, used = _variable_rows(sub.shape[0], el.count, el.properties, _itemsize, read, path)
                got = (raw, off + used)
            values, off = got
        if wanted is None or el.name in wanted:
            result[el.name] = values
    return result


# --------------------------------------------------------------------------- ascii


def read_ascii(data: bytes, header: PlyHeader, path: str | os.PathLike, wanted: set[str] | None) -> dict[str, dict[str, Any]]:
    """``{element: {property: array or PlyList}}`` of an ASCII PLY (``wanted``: elements to keep; None keeps all)."""
    # each value takes at least one character and a separator (the last one may lack it)
    room = len(data) - header.body_offset + 1
    for el in header.elements:
        row_chars = 2 * el.min_row_units(lambda code: 1)
        check_fits(path, "truncated or corrupt ASCII PLY body", el.count, row_chars, room, f"{el.name!r} rows", FIX_CORRUPT)
        room -= el.count * row_chars
    tokens = data[header.body_offset :].decode("latin-1").split()
    try:
        vals = np.array(tokens, dtype=np.float64) if tokens else np.zeros(0)
    except ValueError:
        bad = next((t for t in tokens[:100000] if not _is_number(t)), "?")
        raise InputError(f"unparsable number {bad[:30]!r} in ASCII PLY body", path, FIX_CORRUPT) from None
    del tokens
    n = vals.shape[0]
    off = 0
    result: dict[str, dict[str, Any]] = {}
    for el in header.elements:
        _check_rows(el, n - off, lambda code: 1, "values", path)
        if not el.has_lists:
            k = len(el.properties)
            block = vals[off : off + el.count * k].reshape(el.count, k)
            values: dict[str, Any] = {p.name: _cast(block[:, i], p.dtype, path) for i, p in enumerate(el.properties)}
            off += el.count * k
        else:
            sub = vals[off:]

            def read(pos: np.ndarray, code: str, sub: np.ndarray = sub) -> np.ndarray:
                return sub[pos]

            raw, used = _variable_rows(sub.shape[0], el.count, el.properties, lambda code: 1, read, path)
            values = {}
            for p in el.properties:
                v = raw[p.name]
                values[p.name] = PlyList(v.counts, _cast(v.values, p.dtype, path)) if isinstance(v, PlyList) else _cast(v, p.dtype, path)
            off += used
        if wanted is None or el.name in wanted:
            result[el.name] = values
    return result


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _cast(v: np.ndarray, code: str, path: str | os.PathLike) -> np.ndarray:
    """ASCII values (float64) as PLY type ``code``; integer types must get integers within their range."""
    if code[0] == "f":
        with np.errstate(over="ignore"):  # a double beyond float32 becomes inf, as in a binary file
            return v.astype(code)
    if v.size:
        info = np.iinfo(code)
        if not np.all(np.isfinite(v)) or np.any(v != np.round(v)):
            raise InputError("non-integer value for an integer PLY property", path, FIX_CORRUPT)
        if float(v.min()) < info.min or float(v.max()) > info.max:
            raise InputError(f"value out of range for a PLY {np.dtype(code).name} property", path, FIX_CORRUPT)
    return v.astype(code)
