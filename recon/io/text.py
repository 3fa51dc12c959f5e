"""Readers for column text (``.xyz .pts .txt .csv``) and numpy (``.npy .npz``) point files.

Column layouts (the same rules apply to ``.npy`` arrays):

* 3 columns: ``x y z``.
* 4 columns: ``x y z intensity`` (Leica PTS); intensity goes to ``attrs``.
* 6 columns: ``x y z nx ny nz`` **unless** the last three columns are all integers in
  0..255 with at least one value above 1, in which case they are ``r g b`` (0..255).
  (Unit normals can never satisfy that test, so the rule only misreads colour files whose
  colours are all 0 or 1.)
* 7 columns: ``x y z intensity r g b`` (Leica PTS).
* 9 columns: ``x y z nx ny nz r g b``; colours above 1 are taken as 0..255.

Text parsing: separators may be spaces, tabs, commas or semicolons; leading lines that are
not numeric (a CSV header, a ``.pts`` point count) are skipped; ``#`` starts a comment.
The body is parsed by :func:`numpy.loadtxt` (C parser), so no Python loop runs over rows.
"""

from __future__ import annotations

import io
import os
import re
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io._common import colors_to_unit, looks_like_rgb255, read_bytes
from recon.io.numpy_files import read_npy_bytes, read_npz_bytes
from recon.types import PointCloud

_SEP = re.compile(r"[,;\t]")
_MAX_HEADER_LINES = 50
COLUMN_COUNTS = (3, 4, 6, 7, 9)


def _is_numeric_line(tokens: list[str]) -> bool:
    try:
        [float(t) for t in tokens]
    except ValueError:
        return False
    return bool(tokens)


def columns_to_cloud(arr: np.ndarray, path: str | os.PathLike, layout_hint: str = "") -> tuple[PointCloud, str]:
    """Interpret an (N, C) numeric array by its column count (see the module docstring).

    Returns:
        The cloud and a short description of the layout chosen (e.g. ``"xyz+normals"``).

    Raises:
        InputError: C is not one of 3, 4, 6, 7, 9.
    """
    a = np.asarray(arr)
    if a.ndim != 2 or a.shape[1] not in COLUMN_COUNTS:
        shape = "x".join(str(s) for s in a.shape)
        raise InputError(
            f"wrong column count: got shape {shape}{layout_hint}, expected 3, 4, 6, 7 or 9 columns",
            path,
            "write x y z [nx ny nz] [r g b] per row",
        )
    a = a.astype(np.float64, copy=False)
    c = a.shape[1]
    src = os.fspath(path)
    pts = a[:, :3]
    if c == 3:
        return PointCloud(pts, source=src), "xyz"
    if c == 4:
        return PointCloud(pts, attrs={"intensity": a[:, 3].copy()}, source=src), "xyz+intensity"
    if c == 6:
        if looks_like_rgb255(a[:, 3:6]):
            return PointCloud(pts, colors=a[:, 3:6] / 255.0, source=src), "xyz+rgb(0..255)"
        return PointCloud(pts, normals=a[:, 3:6], source=src), "xyz+normals"
    if c == 7:
        return PointCloud(pts, colors=colors_to_unit(a[:, 4:7]), attrs={"intensity": a[:, 3].copy()}, source=src), "xyz+intensity+rgb"
    return PointCloud(pts, normals=a[:, 3:6], colors=colors_to_unit(a[:, 6:9]), source=src), "xyz+normals+rgb"


def read_text(path: str | os.PathLike) -> tuple[PointCloud, dict[str, Any]]:
    """Read a column text file (``.xyz .pts .txt .csv``).

    Raises:
        InputError: empty file, no numeric rows, rows of different lengths, unparsable
            numbers, or an unsupported column count.
    """
    data = read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\x00" in text:
        raise InputError("binary data in a text point file", path, "check the extension: this is not a text file")
    text = _SEP.sub(" ", text)
    # find the first data line: skip up to _MAX_HEADER_LINES non-numeric or 1-2 column lines
    lines = text.split("\n", _MAX_HEADER_LINES + 1)
    skip = 0
    first_cols = 0
    for line in lines[: _MAX_HEADER_LINES + 1]:
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            skip += 1
            continue
        if _is_numeric_line(tokens) and len(tokens) >= 3:
            first_cols = len(tokens)
            break
        skip += 1
    if first_cols == 0:
        raise InputError("no numeric rows of 3 or more columns found", path, "write one point per line as x y z [...]")
    body = text.split("\n", skip)[-1] if skip else text
    try:
        arr = np.loadtxt(io.StringIO(body), dtype=np.float64, comments="#", ndmin=2)
    except ValueError as exc:
        msg = str(exc).splitlines()[0][:120]
        raise InputError(f"unparsable or ragged rows ({msg})", path, f"every row needs the same {first_cols} numeric columns") from None
    cloud, layout = columns_to_cloud(arr, path)
    return cloud, {"format": f"text ({os.path.splitext(os.fspath(path))[1].lower() or 'no extension'})", "columns": arr.shape[1], "layout": layout, "header_lines": skip}


def read_npy(path: str | os.PathLike) -> tuple[PointCloud, dict[str, Any]]:
    """Read an (N, 3|4|6|7|9) ``.npy`` array (no pickles; header checked first, see :mod:`recon.io.numpy_files`)."""
    arr = read_npy_bytes(read_bytes(path), path)
    if arr.dtype.kind not in "fiu":
        raise InputError("the .npy array is not numeric", path, "save a float array of shape (N, 3), (N, 6) or (N, 9)")
    cloud, layout = columns_to_cloud(arr, path)
    return cloud, {"format": "npy", "shape": list(arr.shape), "dtype": str(arr.dtype), "layout": layout}


_NPZ_KEYS = {"points": ("points", "xyz", "pos", "positions"), "normals": ("normals", "normal"), "colors": ("colors", "colours", "rgb"), "sensors": ("sensors",)}


def read_npz(path: str | os.PathLike) -> tuple[PointCloud, dict[str, Any]]:
    """Read a ``.npz`` archive with ``points``/``xyz`` (N, 3) and optional ``normals``, ``colors``/``colours``.

    Other arrays of length N go to ``attrs``. A single array of another name is read as a
    column array like ``.npy``. Every member's header and size are checked before it is read
    (:mod:`recon.io.numpy_files`).
    """
    arrays = read_npz_bytes(read_bytes(path), path)

    def pick(role: str) -> tuple[str, np.ndarray] | None:
        for k in _NPZ_KEYS[role]:
            if k in arrays:
                return k, arrays[k]
        return None

    got = pick("points")
    if got is None:
        numeric = [k for k, v in arrays.items() if v.dtype.kind in "fiu" and v.ndim == 2]
        if len(numeric) == 1:
            cloud, layout = columns_to_cloud(arrays[numeric[0]], path, f" in array {numeric[0]!r}")
            return cloud, {"format": "npz", "arrays": sorted(arrays), "layout": layout}
        raise InputError(f"no 'points' or 'xyz' array (found {', '.join(sorted(arrays))[:100] or 'none'})", path, "save the positions as points=(N, 3) array")
    pkey, pts = got
    for name, a in [(pkey, pts)] + [x for x in (pick("normals"), pick("colors"), pick("sensors")) if x is not None]:
        if a.dtype.kind not in "fiu" or a.ndim != 2 or a.shape[1] != 3:
            raise InputError(f"array {name!r} must be numeric (N, 3), got {a.dtype} {a.shape}", path, "save (N, 3) float arrays")
        if a.shape[0] != pts.shape[0]:
            raise InputError(f"array {name!r} has {a.shape[0]} rows but {pkey!r} has {pts.shape[0]}", path, "save arrays with one row per point")
    nrm = pick("normals")
    col = pick("colors")
    sen = pick("sensors")
    used = {pkey} | {x[0] for x in (nrm, col, sen) if x is not None}
    attrs = {k: v for k, v in arrays.items() if k not in used and v.ndim >= 1 and v.shape[0] == pts.shape[0] and v.dtype.kind in "fiub"}
    cloud = PointCloud(
        pts,
        normals=None if nrm is None else nrm[1],
        colors=None if col is None else colors_to_unit(col[1]),
        sensors=None if sen is None else sen[1],
        attrs=attrs,
        source=os.fspath(path),
    )
    return cloud, {"format": "npz", "arrays": sorted(arrays)}
