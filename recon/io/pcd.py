"""A numpy-only reader for PCL ``.pcd`` files (``ascii``, ``binary``, ``binary_compressed``).

Fields used: ``x y z`` (required), ``normal_x normal_y normal_z``, and colour packed in
``rgb`` (a float32 whose bits are ``0x00RRGGBB``) or ``rgba`` (uint32 ``0xAARRGGBB``).
Every other field (``intensity``, ``curvature``, ``label`` ...) is kept in ``attrs``;
``_`` padding fields are skipped. Organised clouds (``HEIGHT > 1``) keep their NaN rows
here; :func:`recon.io.validate.validate_point_cloud` drops them with a count. For an
organised cloud the ``VIEWPOINT`` translation is the camera position, so it is stored as
every point's sensor origin; unorganised (segmented) clouds get no sensors.

Sizes are checked before anything is allocated: ``POINTS`` times the record size (the sum of
``SIZE * COUNT``) must fit in the body (binary), every value needs at least two characters
(ASCII), and the LZF block of ``binary_compressed`` must declare exactly that many bytes, within
:func:`recon.io._common.check_decoded_size` and LZF's own 88x bound.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io import lzf
from recon.io._common import check_decoded_size, check_fits, read_bytes
from recon.types import PointCloud

_FIX = "re-save the cloud with PCL (pcl::io::savePCDFile) or export it as PLY"
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
_MAX_HEADER_LINES = 64
_MAX_FIELDS = 4096
#: Largest point record (sum of SIZE * COUNT) accepted, in bytes; PCL's largest types are a few KB.
_MAX_RECORD = 1 << 24


@dataclass
class PcdHeader:
    fields: list[str]
    sizes: list[int]
    types: list[str]
    counts: list[int]
    width: int
    height: int
    viewpoint: np.ndarray
    points: int
    data: str
    body_offset: int
    version: str

    def dtypes(self) -> list[np.dtype]:
        return [np.dtype(f"<{'f' if t == 'F' else t.lower()}{s}") for t, s in zip(self.types, self.sizes)]

    @property
    def record_bytes(self) -> int:
        """Bytes per point in a binary body (sum of SIZE * COUNT)."""
        return sum(s * c for s, c in zip(self.sizes, self.counts))

    @property
    def columns(self) -> int:
        """Values per point in an ASCII body (sum of COUNT)."""
        return sum(self.counts)


def _err(path: str | os.PathLike, problem: str) -> InputError:
    return InputError(problem, path, _FIX)


def _ints(values: list[str], key: str, path: str | os.PathLike) -> list[int]:
    try:
        out = [int(v) for v in values]
    except ValueError:
        raise _err(path, f"corrupt PCD header: {key} values must be integers") from None
    if any(v < 0 for v in out):
        raise _err(path, f"corrupt PCD header: negative {key}")
    return out


def parse_header(data: bytes, path: str | os.PathLike) -> PcdHeader:
    """Parse the PCD header at the start of ``data`` (ends with the ``DATA`` line)."""
    entries: dict[str, list[str]] = {}
    pos = 0
    for _ in range(_MAX_HEADER_LINES):
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise _err(path, "corrupt or truncated PCD header (no DATA line)")
        line = data[pos:nl].decode("latin-1").strip()
        pos = nl + 1
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        key = parts[0].upper()
        if key not in _KEYS:
            raise _err(path, f"corrupt PCD header: unknown keyword {parts[0][:30]!r}")
        entries[key] = parts[1:]
        if key == "DATA":
            break
    else:
        raise _err(path, "corrupt PCD header (no DATA line)")
    for key in ("FIELDS", "SIZE", "TYPE", "WIDTH", "DATA"):
        if key not in entries:
            raise _err(path, f"corrupt PCD header: missing {key}")
    for key, values in entries.items():
        if not values:
            raise _err(path, f"corrupt PCD header: {key} has no value")
    fields = entries["FIELDS"]
    if len(fields) > _MAX_FIELDS:
        raise _err(path, f"corrupt PCD header: {len(fields)} fields (at most {_MAX_FIELDS})")
    sizes = _ints(entries["SIZE"], "SIZE", path)
    types = [t.upper() for t in entries["TYPE"]]
    counts = _ints(entries.get("COUNT", ["1"] * len(fields)), "COUNT", path)
    if any(c < 1 for c in counts):
        raise _err(path, "corrupt PCD header: COUNT values must be at least 1")
    if not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise _err(path, "corrupt PCD header: FIELDS, SIZE, TYPE and COUNT differ in length")
    if sum(s * c for s, c in zip(sizes, counts)) > _MAX_RECORD:
        raise _err(path, f"corrupt PCD header: COUNT {' '.join(map(str, counts))[:60]} makes one point over {_MAX_RECORD:,} bytes")
    for t, s in zip(types, sizes):
        if t not in ("F", "I", "U") or s not in (1, 2, 4, 8) or (t == "F" and s not in (4, 8)):
            raise _err(path, f"corrupt PCD header: unsupported TYPE {t} with SIZE {s}")
    (width,) = _ints(entries["WIDTH"][:1], "WIDTH", path)
    (height,) = _ints(entries.get("HEIGHT", ["1"])[:1], "HEIGHT", path)
    points = _ints(entries["POINTS"][:1], "POINTS", path)[0] if "POINTS" in entries else width * height
    if points != width * height:
        raise _err(path, f"corrupt PCD header: POINTS {points} != WIDTH*HEIGHT {width * height}")
    try:
        vp = np.array([float(v) for v in entries.get("VIEWPOINT", ["0", "0", "0", "1", "0", "0", "0"])], dtype=np.float64)
    except ValueError:
        raise _err(path, "corrupt PCD header: VIEWPOINT must be 7 numbers") from None
    if vp.shape != (7,):
        raise _err(path, "corrupt PCD header: VIEWPOINT must be 7 numbers")
    mode = entries["DATA"][0].lower()
    if mode not in ("ascii", "binary", "binary_compressed"):
        raise _err(path, f"unsupported PCD DATA {mode[:30]!r} (expected ascii, binary or binary_compressed)")
    version = (entries.get("VERSION") or ["?"])[0]
    return PcdHeader(fields, sizes, types, counts, width, height, vp, points, mode, pos, version)


def _columns_from_matrix(h: PcdHeader, mat: np.ndarray, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Split an ASCII (N, sum(counts)) float64 matrix into per-field arrays of their dtype."""
    out: dict[str, np.ndarray] = {}
    col = 0
    for name, dt, cnt in zip(h.fields, h.dtypes(), h.counts):
        block = mat[:, col : col + cnt]
        col += cnt
        if dt.kind == "f":
            arr = block.astype(dt)
        else:
            finite = np.isfinite(block)
            if not np.all(finite) or np.any(block != np.round(block)):
                raise _err(path, f"non-integer value in integer PCD field {name!r}")
            arr = block.astype(dt)
        out[name] = arr[:, 0] if cnt == 1 else arr
    return out


def _read_ascii(data: bytes, h: PcdHeader, path: str | os.PathLike) -> dict[str, np.ndarray]:
    ncol = h.columns
    # every value takes at least one character and one separator (the last one may lack it)
    check_fits(path, "truncated ASCII PCD body", h.points * ncol, 2, len(data) - h.body_offset + 1, "values", _FIX)
    text = data[h.body_offset :].decode("latin-1")
    # PCL writes packed rgb in ASCII as the float's decimal value; parse everything as float64
    tokens = text.split()
    try:
        vals = np.array(tokens, dtype=np.float64) if tokens else np.zeros(0)
    except ValueError:
        raise _err(path, "unparsable number in ASCII PCD body") from None
    if vals.shape[0] < h.points * ncol:
        raise _err(path, f"truncated ASCII PCD body: {vals.shape[0]} values for {h.points} points x {ncol} columns")
    if vals.shape[0] > h.points * ncol:
        raise _err(path, f"ASCII PCD body has {vals.shape[0]} values, expected {h.points} x {ncol}")
    # a packed float rgb is cast back to float32 by _columns_from_matrix, recovering its bits
    return _columns_from_matrix(h, vals.reshape(h.points, ncol), path)


def _struct_dtype(h: PcdHeader) -> np.dtype:
    return np.dtype([(f"f{i}", dt, (c,)) for i, (dt, c) in enumerate(zip(h.dtypes(), h.counts))])


def _read_binary(data: bytes, h: PcdHeader, path: str | os.PathLike) -> dict[str, np.ndarray]:
    check_fits(path, "truncated binary PCD body", h.points, h.record_bytes, len(data) - h.body_offset,
               f"points of {h.record_bytes:,} bytes", _FIX)
    dt = _struct_dtype(h)
    rows = np.frombuffer(data, dtype=dt, count=h.points, offset=h.body_offset)
    return {name: (rows[f"f{i}"][:, 0] if c == 1 else rows[f"f{i}"]).copy() for i, (name, c) in enumerate(zip(h.fields, h.counts))}


def _read_compressed(data: bytes, h: PcdHeader, path: str | os.PathLike) -> dict[str, np.ndarray]:
    off = h.body_offset
    if len(data) < off + 8:
        raise _err(path, "truncated binary_compressed PCD body (no size words)")
    csize, usize = (int(v) for v in np.frombuffer(data, "<u4", 2, off))
    need = h.points * h.record_bytes
    if usize != need:
        raise _err(path, f"corrupt binary_compressed PCD: uncompressed size {usize}, header implies {need}")
    if len(data) < off + 8 + csize:
        raise _err(path, f"truncated binary_compressed PCD body: {len(data) - off - 8} of {csize} compressed bytes")
    check_decoded_size(path, usize, csize, "binary_compressed PCD block", _FIX)
    try:
        buf = lzf.decompress_array(memoryview(data)[off + 8 : off + 8 + csize], usize)
    except lzf.LZFError as exc:
        raise _err(path, f"corrupt binary_compressed PCD ({exc})") from None
    out: dict[str, np.ndarray] = {}
    start = 0
    # column-major layout: all points' values of field 0, then field 1, ...
    for name, fdt, c in zip(h.fields, h.dtypes(), h.counts):
        nbytes = h.points * c * fdt.itemsize
        arr = buf[start : start + nbytes].view(fdt).reshape(h.points, c)
        start += nbytes
        out[name] = (arr[:, 0] if c == 1 else arr).copy()
    return out


def unpack_rgb(values: np.ndarray, type_code: str) -> np.ndarray:
    """Colours from PCL's packed ``rgb``/``rgba`` field.

    Args:
        values: (N,) float32 (bits are 0x00RRGGBB), uint32/int32 (0xAARRGGBB), or float64
            decimal values read from ASCII.
        type_code: the PCD TYPE of the field ("F", "U" or "I").

    Returns:
        (N, 3) float32 RGB in [0, 1]; rows whose packed value is NaN get 0.
    """
    v = np.asarray(values)
    if type_code == "F":
        bits = v.astype(np.float32).view(np.uint32)
    else:
        bits = np.nan_to_num(v.astype(np.float64), nan=0.0).astype(np.int64).astype(np.uint32)
    rgb = np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1)
    return (rgb.astype(np.float32) / 255.0).astype(np.float32)


def read_pcd(path: str | os.PathLike) -> tuple[PointCloud, dict[str, Any]]:
    """Read a PCD file.

    Returns:
        The cloud ((N, 3) float64 points, with NaN rows of organised clouds still present)
        and a format description dict.

    Raises:
        InputError: any problem with the file.
    """
    data = read_bytes(path)
    h = parse_header(data, path)
    if h.data == "ascii":
        cols = _read_ascii(data, h, path)
    elif h.data == "binary":
        cols = _read_binary(data, h, path)
    else:
        cols = _read_compressed(data, h, path)
    names = {n.lower(): n for n in h.fields}
    if not all(k in names for k in ("x", "y", "z")):
        raise InputError("PCD file lacks x, y, z fields", path, "save the cloud with an XYZ point type")
    types = dict(zip(h.fields, h.types))

    def col(name: str) -> np.ndarray:
        a = cols[names[name]]
        return a if a.ndim == 1 else a[:, 0]

    pts = np.stack([col(k).astype(np.float64) for k in ("x", "y", "z")], axis=1)
    used = {names[k] for k in ("x", "y", "z")}
    normals = colors = sensors = None
    if all(k in names for k in ("normal_x", "normal_y", "normal_z")):
        normals = np.stack([col(k).astype(np.float32) for k in ("normal_x", "normal_y", "normal_z")], axis=1)
        used.update(names[k] for k in ("normal_x", "normal_y", "normal_z"))
    for key in ("rgb", "rgba"):
        if key in names:
            colors = unpack_rgb(col(key), types[names[key]])
            used.add(names[key])
            break
    if h.height > 1 and pts.shape[0] > 0:
        sensors = np.broadcast_to(h.viewpoint[:3], pts.shape)
    attrs = {k: v for k, v in cols.items() if k not in used and k != "_"}
    cloud = PointCloud(pts, normals, colors, sensors, attrs, source=os.fspath(path))
    details = {
        "format": f"PCD v{h.version} {h.data}",
        "fields": h.fields,
        "width": h.width,
        "height": h.height,
        "organised": h.height > 1,
        "viewpoint": h.viewpoint.tolist(),
    }
    return cloud, details
