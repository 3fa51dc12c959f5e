"""LAS/LAZ reader (laspy, with lazrs for LAZ).

Coordinates are the scaled-and-offset values as float64 (``X * scale + offset``), so a
636,000 m easting keeps millimetres. Colours (16-bit in LAS) are divided by 65535, except
when every channel is <= 255 (writers that store 8-bit values in the 16-bit fields), in
which case they are divided by 255. ``intensity``, ``classification``, ``return_number``,
``number_of_returns`` and ``gps_time`` are kept in ``attrs`` when present.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from recon.errors import DependencyError, InputError
from recon.io._common import guarded, read_bytes
from recon.types import PointCloud

_ATTRS = ("intensity", "classification", "return_number", "number_of_returns", "gps_time")


def read_las(path: str | os.PathLike) -> tuple[PointCloud, dict[str, Any]]:
    """Read a ``.las`` or ``.laz`` file.

    Raises:
        InputError: the file is not valid LAS/LAZ (wrapping any laspy/lazrs error).
        DependencyError: laspy is not installed.
    """
    try:
        import laspy
    except ImportError as exc:  # pragma: no cover - laspy is a hard dependency
        raise DependencyError("reading LAS/LAZ needs laspy", path, "pip install 'laspy[lazrs]'") from exc
    data = read_bytes(path)
    if not data.startswith(b"LASF"):
        raise InputError("not a LAS/LAZ file (missing 'LASF' signature)", path, "check the file; re-export it from the LiDAR software")

    _precheck(data, path)

    def parse() -> tuple[Any, Any]:
        las = laspy.read(io.BytesIO(data))
        return las, las.header

    las, header = guarded(path, "cannot read LAS/LAZ", "re-export the file; for .laz make sure lazrs is installed (pip install lazrs)", parse)

    def extract() -> tuple[PointCloud, dict[str, Any]]:
        n = len(las.points)
        pts = np.stack([np.asarray(las.x, dtype=np.float64), np.asarray(las.y, dtype=np.float64), np.asarray(las.z, dtype=np.float64)], axis=1).reshape(n, 3)
        dims = set(las.point_format.dimension_names)
        colors = None
        if {"red", "green", "blue"} <= dims:
            rgb = np.stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)], axis=1).astype(np.float64)
            scale = 255.0 if (rgb.size and rgb.max() <= 255) else 65535.0
            colors = np.clip(rgb / scale, 0.0, 1.0).astype(np.float32)
        attrs = {k: np.asarray(las[k]).copy() for k in _ATTRS if k in dims}
        cloud = PointCloud(pts, colors=colors, attrs=attrs, source=os.fspath(path))
        details = {
            "format": f"{'LAZ' if header.are_points_compressed else 'LAS'} {header.version}",
            "point_format": int(header.point_format.id),
            "scales": [float(v) for v in header.scales],
            "offsets": [float(v) for v in header.offsets],
            "header_point_count": int(header.point_count),
            "crs": _crs_name(header),
        }
        return cloud, details

    return guarded(path, "cannot decode LAS/LAZ points", "re-export the file from the LiDAR software", extract)


_FIX_CORRUPT = "the file is truncated or corrupt; re-export or re-download it"


def _precheck(data: bytes, path: str | os.PathLike) -> None:
    """Check the public header's sizes and counts against the file size before laspy runs.

    laspy trusts the counts (it loops over the VLR count and reads past the end), so a
    corrupt count could hang it or allocate huge buffers. Layout (little-endian): header
    size u16 @94, offset to points u32 @96, VLR count u32 @100, point format u8 @104,
    record length u16 @105, legacy point count u32 @107; LAS 1.4 adds EVLR start u64
    @235, EVLR count u32 @243 and point count u64 @247.
    """
    size = len(data)
    if size < 227:
        raise InputError(f"truncated LAS header ({size} bytes, need at least 227)", path, _FIX_CORRUPT)
    minor = data[25]
    header_size = int.from_bytes(data[94:96], "little")
    point_offset = int.from_bytes(data[96:100], "little")
    n_vlr = int.from_bytes(data[100:104], "little")
    point_format = data[104]
    record_len = int.from_bytes(data[105:107], "little")
    n_points = int.from_bytes(data[107:111], "little")
    if header_size < 227 or header_size > size:
        raise InputError(f"corrupt LAS header (header size {header_size})", path, _FIX_CORRUPT)
    if header_size + 54 * n_vlr > point_offset or point_offset > size:
        raise InputError(f"corrupt LAS header ({n_vlr} VLRs and point offset {point_offset} do not fit in {size} bytes)", path, _FIX_CORRUPT)
    if minor >= 4 and header_size >= 255 and size >= 255:
        evlr_start = int.from_bytes(data[235:243], "little")
        n_evlr = int.from_bytes(data[243:247], "little")
        if n_points == 0:
            n_points = int.from_bytes(data[247:255], "little")
        if n_evlr and (evlr_start < point_offset or evlr_start + 60 * n_evlr > size):
            raise InputError(f"corrupt LAS header ({n_evlr} extended VLRs do not fit)", path, _FIX_CORRUPT)
    body = size - point_offset
    compressed = bool(point_format & 0xC0)
    if not compressed and n_points * record_len > body:
        raise InputError(f"truncated LAS point data: {n_points} points of {record_len} bytes need {n_points * record_len}, {body} present", path, _FIX_CORRUPT)
    if compressed and n_points > 64 * max(body, 1):
        raise InputError(f"corrupt LAZ header: {n_points} points cannot fit in {body} bytes", path, _FIX_CORRUPT)


def _crs_name(header: Any) -> str | None:
    try:
        crs = header.parse_crs()
    except Exception:  # noqa: BLE001 - pyproj missing or a malformed VLR: the CRS is optional
        return None
    return None if crs is None else str(getattr(crs, "name", crs))
