"""Extension dispatch for point input, and :func:`describe` for ``recon info``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io import ply as plymod
from recon.io._common import check_readable
from recon.io.kitti import read_bin
from recon.io.las import read_las
from recon.io.meshes import MESH_READ_EXTENSIONS, mesh_to_cloud, read_mesh_any
from recon.io.pcd import read_pcd
from recon.io.text import read_npy, read_npz, read_text
from recon.io.validate import validate_point_cloud
from recon.types import PointCloud

_log = logging.getLogger("recon.io")

TEXT_EXTENSIONS = (".xyz", ".pts", ".txt", ".csv")
SUPPORTED_POINT_EXTENSIONS: tuple[str, ...] = (
    ".ply", ".pcd", *TEXT_EXTENSIONS, ".npy", ".npz", ".las", ".laz", ".bin",
    ".obj", ".stl", ".off", ".glb", ".gltf",
)  # fmt: skip
SUPPORTED_MESH_EXTENSIONS: tuple[str, ...] = MESH_READ_EXTENSIONS


def extension(path: str | os.PathLike) -> str:
    """Lower-case suffix (``.ply``); ``.pcd.bin`` files report ``.bin``."""
    return Path(path).suffix.lower()


def read_any(path: str | os.PathLike, *, sample: int | None = None, seed: int = 0, bin_columns: int | None = None) -> tuple[PointCloud, dict[str, Any]]:
    """Read any supported point input without validation.

    Returns:
        The cloud and a format description (``format`` plus reader-specific keys; mesh inputs
        add ``mesh_vertices``, ``mesh_faces`` and ``mode``).
    """
    p = check_readable(path)
    ext = extension(p)
    if ext not in SUPPORTED_POINT_EXTENSIONS:
        raise InputError(
            f"unknown point cloud extension {ext or '(none)'!r}",
            p,
            f"use one of {', '.join(SUPPORTED_POINT_EXTENSIONS)}",
        )
    if sample is not None and (isinstance(sample, bool) or int(sample) < 1):
        raise InputError(f"sample must be a positive number of points, got {sample}", p, "pass --sample N with N >= 1")
    if ext == ".ply":
        header, elements = plymod.read_ply(p)
        if plymod.ply_is_mesh(header):
            mesh = plymod.ply_to_mesh(p, header, elements)
            return _from_mesh(mesh, p, sample, seed, plymod.header_info(header))
        cloud, details = plymod.ply_to_cloud(p, header, elements), plymod.header_info(header)
    elif ext in MESH_READ_EXTENSIONS:
        mesh, details = read_mesh_any(p)
        return _from_mesh(mesh, p, sample, seed, details)
    elif ext == ".pcd":
        cloud, details = read_pcd(p)
    elif ext in TEXT_EXTENSIONS:
        cloud, details = read_text(p)
    elif ext == ".npy":
        cloud, details = read_npy(p)
    elif ext == ".npz":
        cloud, details = read_npz(p)
    elif ext in (".las", ".laz"):
        cloud, details = read_las(p)
    else:
        cloud, details = read_bin(p, bin_columns)
    if sample is not None and int(sample) < len(cloud):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(cloud), size=int(sample), replace=False))
        cloud = cloud.subset(keep)
        details = {**details, "subsampled_to": int(sample)}
    return cloud, details


#: the detail key of a mesh read as points that says whether the file stored vertex normals
NORMALS_STORED = "normals_stored"


def _from_mesh(mesh: Any, p: Path, sample: int | None, seed: int, details: dict[str, Any]) -> tuple[PointCloud, dict[str, Any]]:
    cloud = mesh_to_cloud(mesh, p, sample, seed)
    return cloud, {
        **details,
        "mesh_vertices": mesh.n_vertices,
        "mesh_faces": mesh.n_faces,
        "mode": "vertices" if sample is None else f"{int(sample)} surface samples",
        NORMALS_STORED: mesh.vertex_normals is not None,  # else the cloud's normals were computed from the faces
    }


def load_point_cloud(
    path: str | os.PathLike,
    *,
    sample: int | None = None,
    seed: int = 0,
    validate: bool = True,
    bin_columns: int | None = None,
) -> PointCloud:
    """Load a point cloud from any supported file (extension decides, case-insensitive).

    Args:
        path: ``.ply .pcd .xyz .pts .txt .csv .npy .npz .las .laz .bin`` or a mesh file
            (``.obj .stl .off .glb .gltf``, PLY with faces).
        sample: for a mesh, draw this many area-weighted surface samples with face normals
            (instead of using its vertices); for a cloud with more points, keep a random
            subset of this size (seeded, original order).
        seed: random seed for ``sample``.
        validate: run :func:`~recon.io.validate.validate_point_cloud` (drops NaN rows,
            normalises normals, rejects degenerate clouds); its notes are logged on the
            ``recon.io`` logger at INFO level.
        bin_columns: force 4, 5 or 6 float32 columns for ``.bin`` files.

    Returns:
        The cloud: points (N, 3) float64 in the file's units.

    Raises:
        InputError: every reading or validation problem.
    """
    cloud, _ = read_any(path, sample=sample, seed=seed, bin_columns=bin_columns)
    if validate:
        cloud, notes = validate_point_cloud(cloud, path)
        for note in notes:
            _log.info("%s: %s", os.fspath(path), note)
    return cloud


def guess_units(extent: float, max_abs: float, fmt: str, is_mesh: bool) -> tuple[str | None, str]:
    """A units guess from the bounding box.

    Heuristic, first match wins:

    * any |coordinate| > 1e5: ``"m"`` (georeferenced: UTM/state-plane coordinates are metres or
      feet, and LiDAR formats almost always use metres);
    * LAS/LAZ or raw ``.bin`` LiDAR: ``"m"``;
    * extent > 1000: ``"m"`` (a scene or LiDAR tile; a > 1 m object in mm is the alternative);
    * extent < 5: ``"normalised"`` if it fits in [-1, 1] (learning data sets), else ``"m"``
      (an object or a room measured in metres);
    * 10 <= extent <= 1000 and the input is a mesh (CAD/print STL, OBJ): ``"mm"``;
    * otherwise ``"m"`` for scans (tens of metres: street LiDAR, rooms), None for meshes.

    Returns:
        (units or None, the reason in words).
    """
    if max_abs > 1e5:
        return "m", "coordinates beyond 100 km from the origin: georeferenced, most likely metres"
    if fmt.startswith(("LAS", "LAZ")) or fmt.startswith("float32 .bin"):
        return "m", "LiDAR formats store metres"
    if extent > 1000:
        return "m", "extent over 1000 units: likely a scene or LiDAR tile in metres"
    if extent < 5:
        if max_abs <= 1.0 + 1e-6:
            return "normalised", "fits in [-1, 1]: normalised coordinates (or a small object in metres)"
        return "m", "extent under 5 units: an object or room in metres (or normalised)"
    if 10 <= extent <= 1000 and is_mesh:
        return "mm", "mesh with extent 10..1000 units: typical CAD/3D-print part in millimetres"
    if not is_mesh:
        return "m", "scan with extent 5..1000 units: likely metres (rooms, street LiDAR)"
    return None, "mesh with extent 5..10 units: metres, inches or normalised; cannot tell"


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Summarise a point or mesh file for ``recon info``.

    Returns:
        A dict with ``path``, ``format`` (and reader details under ``details``), ``kind``
        ("point cloud" or "mesh"), ``points`` (rows read), ``valid_points`` (finite rows),
        ``faces`` (meshes), ``bounds`` ([[min x,y,z], [max x,y,z]] of finite rows, or None),
        ``extent`` (largest bounding-box side), ``attributes`` (``normals``, ``colors``,
        ``sensors`` booleans and ``attrs`` names), ``units_guess`` and ``units_reason``.
        ``normals`` is True only when the file stores them (a mesh without them gets normals
        computed from its faces when it is reconstructed, which does not count).

    Raises:
        InputError: the file cannot be read.
    """
    cloud, details = read_any(path)
    normals_stored = details.pop(NORMALS_STORED, cloud.normals is not None)
    pts = cloud.points
    finite = np.all(np.isfinite(pts), axis=1)
    good = pts if finite.all() else pts[finite]  # no copy of a clean cloud
    is_mesh = "mesh_faces" in details
    out: dict[str, Any] = {
        "path": os.fspath(path),
        "format": details.get("format", "?"),
        "kind": "mesh" if is_mesh else "point cloud",
        "points": len(cloud),
        "valid_points": int(finite.sum()),
        "faces": details.get("mesh_faces") if is_mesh else None,
        "attributes": {
            "normals": bool(normals_stored),
            "colors": cloud.colors is not None,
            "sensors": cloud.sensors is not None,
            "attrs": sorted(cloud.attrs),
        },
        "details": {k: v for k, v in details.items() if k != "format"},
    }
    if good.shape[0]:
        lo, hi = good.min(axis=0), good.max(axis=0)
        extent = float(np.max(hi - lo))
        units, reason = guess_units(extent, float(np.max(np.abs(good))), out["format"], is_mesh)
        out.update(bounds=[lo.tolist(), hi.tolist()], extent=extent, units_guess=units, units_reason=reason)
    else:
        out.update(bounds=None, extent=None, units_guess=None, units_reason="no finite points")
    return out
