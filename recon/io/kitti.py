"""Raw float32 ``.bin`` point files: KITTI, nuScenes, ScanNet / SUN RGB-D (mmdetection3d).

Layouts (little-endian float32, row-major):

* 4 columns ``x y z reflectance`` (KITTI Velodyne); reflectance goes to ``attrs["intensity"]``.
* 5 columns ``x y z intensity ring`` (nuScenes ``.pcd.bin``); ``attrs["intensity"]``, ``attrs["ring"]``.
* 6 columns ``x y z r g b`` (ScanNet / SUN RGB-D); colours 0..255 or 0..1.

LiDAR frames (4 and 5 columns) are in the sensor frame, so every point's sensor origin is
set to (0, 0, 0). The column count is the ``bin_columns`` override when given; otherwise
every count among 4, 5, 6 that divides the file size is scored for plausibility and the
best one wins (ties: 5 for ``*.pcd.bin`` names, then 4, 6, 5). A layout scores one point
for each of these checks that every row passes:

* ``xyz`` finite with ``|x|, |y|, |z| < 1e4`` (a shifted reading puts attribute values or
  denormals/huge floats into xyz),
* 4 columns: reflectance finite in [0, 255];
* 5 columns: intensity finite in [0, 255] and ring an integer in [0, 255];
* 6 columns: colours finite in [0, 255] and all integers, or all in [0, 1].

A layout that fails the xyz check is never chosen.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io._common import colors_to_unit, read_bytes
from recon.types import PointCloud

BIN_COLUMNS = (4, 5, 6)


def _in(a: np.ndarray, lo: float, hi: float) -> bool:
    return bool(np.all(np.isfinite(a)) and np.all(a >= lo) and np.all(a <= hi))


def score_layout(arr: np.ndarray) -> int:
    """Plausibility score of an (N, C) float32 array read as C columns (-1: impossible)."""
    xyz = arr[:, :3]
    if not (np.all(np.isfinite(xyz)) and np.all(np.abs(xyz) < 1e4)):
        return -1
    c = arr.shape[1]
    score = 1
    if c == 4:
        score += _in(arr[:, 3], 0, 255)
    elif c == 5:
        score += _in(arr[:, 3], 0, 255)
        ring = arr[:, 4]
        score += _in(ring, 0, 255) and bool(np.all(ring == np.round(ring)))
    elif c == 6:
        rgb = arr[:, 3:6]
        score += 2 * (_in(rgb, 0, 1) or (_in(rgb, 0, 255) and bool(np.all(rgb == np.round(rgb)))))
    return score


def read_bin(path: str | os.PathLike, bin_columns: int | None = None) -> tuple[PointCloud, dict[str, Any]]:
    """Read a raw float32 ``.bin`` point file.

    Args:
        path: the file.
        bin_columns: force 4, 5 or 6 columns instead of guessing.

    Raises:
        InputError: empty file, a size that fits no layout, or no plausible layout.
    """
    data = read_bytes(path)
    nbytes = len(data)
    name = os.path.basename(os.fspath(path)).lower()
    if nbytes == 0:
        raise InputError("empty .bin file", path, "check the file was fully written")
    if bin_columns is not None:
        if bin_columns not in BIN_COLUMNS:
            raise InputError(f"bin_columns must be 4, 5 or 6, got {bin_columns}", path, "use 4 (KITTI), 5 (nuScenes) or 6 (xyz rgb)")
        if nbytes % (4 * bin_columns):
            raise InputError(f"file size {nbytes} is not a multiple of {4 * bin_columns} bytes ({bin_columns} float32 columns)", path, "check bin_columns or the file: it may be truncated")
        cols = bin_columns
        arr = np.frombuffer(data, dtype="<f4").reshape(-1, cols)
        how = "given"
    else:
        candidates = [c for c in BIN_COLUMNS if nbytes % (4 * c) == 0]
        if not candidates:
            raise InputError(
                f"file size {nbytes} is not a multiple of 16, 20 or 24 bytes (4, 5 or 6 float32 columns)",
                path,
                "the file is truncated or not a KITTI/nuScenes/ScanNet .bin",
            )
        order = ([5] if name.endswith(".pcd.bin") else []) + [4, 6, 5]
        scored = []
        for c in candidates:
            a = np.frombuffer(data, dtype="<f4").reshape(-1, c)
            scored.append((score_layout(a), -order.index(c), c, a))
        best = max(scored, key=lambda t: (t[0], t[1]))
        if best[0] < 0:
            raise InputError("no plausible float32 column layout (coordinates are not finite or are huge)", path, "pass bin_columns explicitly or check the file")
        cols, arr = best[2], best[3]
        how = "guessed"
    src = os.fspath(path)
    pts = arr[:, :3].astype(np.float64)
    zeros = np.zeros_like(pts)
    if cols == 4:
        cloud = PointCloud(pts, sensors=zeros, attrs={"intensity": arr[:, 3].copy()}, source=src)
        layout = "x y z reflectance (KITTI)"
    elif cols == 5:
        cloud = PointCloud(pts, sensors=zeros, attrs={"intensity": arr[:, 3].copy(), "ring": arr[:, 4].copy()}, source=src)
        layout = "x y z intensity ring (nuScenes)"
    else:
        cloud = PointCloud(pts, colors=colors_to_unit(arr[:, 3:6]), source=src)
        layout = "x y z r g b (ScanNet/SUN RGB-D)"
    return cloud, {"format": "float32 .bin", "columns": cols, "columns_from": how, "layout": layout}
