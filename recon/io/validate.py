"""Point cloud validation: the checks every loaded cloud goes through.

Rules, in order (each failure is an :class:`~recon.errors.InputError` naming the file,
the problem and the fix):

1. the cloud is empty;
2. normals, colours, sensors or an attr have a row count different from the points;
3. rows with a non-finite coordinate are dropped (a note gives the count); error when none remain;
4. fewer than :data:`MIN_POINTS` valid points remain;
5. a normal is non-finite or shorter than 1e-12 (fix: pass ``--ignore-normals`` to re-estimate);
6. all points are identical (bounding box extent 0);
7. all points are collinear: second singular value of the centred points below
   :data:`COLLINEAR_RATIO` times the first.

Normals are then normalised to unit length (float32).
"""

from __future__ import annotations

import os

import numpy as np

from recon.errors import InputError
from recon.types import PointCloud

MIN_POINTS = 10
ZERO_NORMAL = 1e-12
COLLINEAR_RATIO = 1e-6


def _fmt(n: int) -> str:
    return f"{n:,}"


def singular_values(points: np.ndarray) -> np.ndarray:
    """(3,) singular values of the centred (N, 3) points, largest first, in world units.

    Computed from the 3x3 scatter matrix (``sqrt`` of its eigenvalues) so it costs O(N);
    the points are first divided by their largest magnitude so huge coordinates cannot overflow.
    """
    scale = float(np.max(np.abs(points))) if points.size else 0.0
    if not np.isfinite(scale) or scale == 0.0:
        return np.zeros(3)
    p = points / scale
    centred = p - p.mean(axis=0)
    scatter = centred.T @ centred
    ev = np.linalg.eigvalsh(scatter)[::-1]
    return np.sqrt(np.clip(ev, 0.0, None)) * scale


def validate_point_cloud(cloud: PointCloud, path: str | os.PathLike | None = None) -> tuple[PointCloud, list[str]]:
    """Check and clean a cloud.

    Args:
        cloud: the cloud as read; ``points`` (N, 3) float64, optional (N, 3) normals.
        path: the file it came from (for messages); defaults to ``cloud.source``.

    Returns:
        The cleaned cloud (non-finite rows dropped, unit normals) and a list of notes such as
        ``"dropped 1,234 rows with NaN/Inf coordinates"``.

    Raises:
        InputError: one of the rules in the module docstring fails.
    """
    where = path if path is not None else cloud.source
    notes: list[str] = []
    n = len(cloud)
    if n == 0:
        raise InputError("the point cloud is empty (0 points)", where, "check the file was exported with its points")
    for name, arr in (("normals", cloud.normals), ("colors", cloud.colors), ("sensors", cloud.sensors)):
        if arr is not None and arr.shape[0] != n:
            fix = "pass --ignore-normals to re-estimate them" if name == "normals" else f"re-export the file with one {name[:-1]} per point"
            raise InputError(f"{_fmt(arr.shape[0])} {name} for {_fmt(n)} points", where, fix)
    for name, arr in cloud.attrs.items():
        if np.asarray(arr).shape[:1] != (n,):
            raise InputError(f"attribute {name!r} has {np.asarray(arr).shape[:1] or 'no'} rows for {_fmt(n)} points", where, "re-export the file")
    finite = np.all(np.isfinite(cloud.points), axis=1)
    n_bad = int(n - np.count_nonzero(finite))
    if n_bad:
        if n_bad == n:
            raise InputError(f"all {_fmt(n)} points have NaN/Inf coordinates", where, "check the file; organised clouds need at least some valid depth")
        cloud = cloud.subset(finite)
        notes.append(f"dropped {_fmt(n_bad)} rows with NaN/Inf coordinates ({_fmt(len(cloud))} remain)")
    if len(cloud) < MIN_POINTS:
        raise InputError(f"only {len(cloud)} valid points (need at least {MIN_POINTS})", where, "use a denser scan")
    if cloud.normals is not None:
        nrm = cloud.normals.astype(np.float64)
        length = np.linalg.norm(nrm, axis=1)
        bad = ~np.isfinite(length) | (length < ZERO_NORMAL)
        if bad.any():
            raise InputError(
                f"{_fmt(int(bad.sum()))} normals are zero-length or non-finite",
                where,
                "pass --ignore-normals to re-estimate them",
            )
        cloud = cloud.with_normals((nrm / length[:, None]).astype(np.float32))
    lo, hi = cloud.points.min(axis=0), cloud.points.max(axis=0)
    if float(np.max(hi - lo)) <= 0.0:
        raise InputError(f"all {_fmt(len(cloud))} points are identical", where, "check the export (units, scale) or the scan")
    s = singular_values(cloud.points)
    if s[1] <= COLLINEAR_RATIO * s[0]:
        raise InputError(f"all {_fmt(len(cloud))} points are collinear", where, "a surface needs points spread in two directions; check the scan")
    return cloud, notes
