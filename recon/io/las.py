"""LAS/LAZ reader (laspy, with lazrs for LAZ).

Coordinates are the scaled-and-offset values as float64 (``X * scale + offset``), so a
636,000 m easting keeps millimetres. Colours (16-bit in LAS) are divided by 65535, except
when every channel is <= 255 (writers that store 8-bit values in the 16-bit fields), in
which case they are divided by 255. ``intensity``, ``classification``, ``return_number``,
``number_of_returns`` and ``gps_time`` are kept in ``attrs`` when present.

Before laspy sees the bytes, the header's counts are checked against the file size
(:func:`_precheck`): an uncompressed file must hold every record, and a LAZ file may not declare
more record bytes than :func:`recon.io._common.check_decoded_size` allows (LAZ compresses real
scans 5-10x; more than 20x above 128 MiB of records is a corrupt or hostile header, or a
synthetic grid that should be converted to uncompressed LAS). Points are then decoded in blocks
of :data:`CHUNK_BYTES`, so memory follows the points really present.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from recon.errors import DependencyError, InputError
from recon.io._common import check_decoded_size, check_fits, guarded, quiet_logger, read_bytes
from recon.types import PointCloud

_ATTRS = ("intensity", "classification", "return_number", "number_of_returns", "gps_time")
#: Smallest LAS point record (format 0), in bytes.
_MIN_RECORD = 20
#: Record bytes decoded per block: a header that claims more points than the data holds costs
#: one block beyond the real points, not its claimed total.
CHUNK_BYTES = 16 << 20


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

    def parse() -> tuple[Any, list[dict[str, np.ndarray]]]:
        with laspy.open(io.BytesIO(data)) as reader:
            per_block = max(1024, CHUNK_BYTES // max(reader.header.point_format.size, 1))
            parts = [_columns(chunk) for chunk in reader.chunk_iterator(per_block)]  # blocks of points
            return reader.header, parts

    with quiet_logger("laspy"):
        header, parts = guarded(path, "cannot read LAS/LAZ", "re-export the file; for .laz make sure lazrs is installed (pip install lazrs)", parse)

    def build() -> tuple[PointCloud, dict[str, Any]]:
        dims = set(header.point_format.dimension_names)
        cols = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in _wanted(dims)}
        pts = np.stack([cols["x"], cols["y"], cols["z"]], axis=1).astype(np.float64).reshape(-1, 3)
        colors = None
        if {"red", "green", "blue"} <= dims:
            rgb = np.stack([cols["red"], cols["green"], cols["blue"]], axis=1).astype(np.float64)
            scale = 255.0 if (rgb.size and rgb.max() <= 255) else 65535.0
            colors = np.clip(rgb / scale, 0.0, 1.0).astype(np.float32)
        attrs = {k: cols[k] for k in _ATTRS if k in dims}
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

    return guarded(path, "cannot decode LAS/LAZ points", "re-export the file from the LiDAR software", build)


def _wanted(dims: set[str]) -> list[str]:
    """The dimensions kept: scaled x y z, colours and the attributes in ``_ATTRS`` present in ``dims``."""
    return ["x", "y", "z"] + [k for k in ("red", "green", "blue", *_ATTRS) if k in dims]


def _columns(chunk: Any) -> dict[str, np.ndarray]:
    """The kept dimensions of one block of points (a laspy ``ScaleAwarePointRecord``) as plain arrays."""
    dims = set(chunk.point_format.dimension_names)
    out = {"x": np.asarray(chunk.x, np.float64), "y": np.asarray(chunk.y, np.float64), "z": np.asarray(chunk.z, np.float64)}
    out.update({k: np.array(chunk[k]) for k in _wanted(dims)[3:]})
    return out


_FIX_CORRUPT = "the file is truncated or corrupt; re-export or re-download it"


def _precheck(data: bytes, path: str | os.PathLike) -> None:
    """Check the public header's sizes and counts against the file size before laspy runs.

    laspy trusts the counts (it loops over the VLR count, reads past the end and allocates the
    point records up front), so a corrupt count could hang it or allocate huge buffers. Layout
    (little-endian): version minor u8 @25, header size u16 @94, offset to points u32 @96, VLR
    count u32 @100, point format u8 @104, record length u16 @105, legacy point count u32 @107;
    LAS 1.4 adds EVLR start u64 @235, EVLR count u32 @243 and point count u64 @247 (which laspy
    uses instead of the legacy one).
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
    if minor >= 4:
        if header_size < 375 or size < 375:
            raise InputError(f"truncated LAS 1.{minor} header (header size {header_size}, need at least 375)", path, _FIX_CORRUPT)
        evlr_start = int.from_bytes(data[235:243], "little")
        n_evlr = int.from_bytes(data[243:247], "little")
        n_points = max(n_points, int.from_bytes(data[247:255], "little"))
        if n_evlr and (evlr_start < point_offset or evlr_start + 60 * n_evlr > size):
            raise InputError(f"corrupt LAS header ({n_evlr} extended VLRs do not fit)", path, _FIX_CORRUPT)
    body = size - point_offset
    record = max(record_len, _MIN_RECORD)
    if not point_format & 0xC0:
        check_fits(path, "truncated LAS point data", n_points, record, body, f"points of {record} bytes", _FIX_CORRUPT)
    else:
        check_decoded_size(path, n_points * record, body, f"LAZ point count ({n_points:,} points of {record} bytes)",
                           _FIX_CORRUPT + " (a genuine, highly compressible file can be converted to uncompressed LAS)")


def _crs_name(header: Any) -> str | None:
    try:
        crs = header.parse_crs()
    except Exception:  # noqa: BLE001 - pyproj missing or a malformed VLR: the CRS is optional
        return None
    return None if crs is None else str(getattr(crs, "name", crs))
