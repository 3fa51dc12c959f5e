"""Similarity alignment of two sets of camera centres, and the pose errors measured after it.

Structure-from-motion recovers the scene up to a similarity (scale, rotation, translation), so its
cameras are compared with known ones after the least-squares similarity that maps one set of
centres onto the other (Umeyama's closed form: an SVD of the 3x3 cross-covariance).
"""

from __future__ import annotations

import numpy as np


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity ``dst ~ s * R @ src + t`` minimising the squared distances.

    Args:
        src: (N, 3) points, N >= 3 and not all on one line.
        dst: (N, 3) corresponding points.

    Returns:
        scale s (> 0), rotation R (3, 3) with det +1, translation t (3,), in ``dst`` units.

    Raises:
        ValueError: mismatched shapes, fewer than 3 points, or coincident source points.
    """
    a, b = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or len(a) < 3:
        raise ValueError(f"need two (N, 3) arrays with N >= 3, got {a.shape} and {b.shape}")
    ma, mb = a.mean(0), b.mean(0)
    da, db = a - ma, b - mb
    var = float((da * da).sum()) / len(a)
    if var <= 1e-300:
        raise ValueError("the source points coincide")
    cov = db.T @ da / len(a)
    U, S, Vt = np.linalg.svd(cov)
    D = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2] = -1.0
    R = (U * D) @ Vt
    s = float((S * D).sum()) / var
    return s, R, mb - s * R @ ma


def centre_errors(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(N,) distances between ``dst`` and the aligned ``src`` centres (see :func:`similarity`), in ``dst`` units."""
    s, R, t = similarity(src, dst)
    return np.linalg.norm(s * np.asarray(src, np.float64) @ R.T + t - dst, axis=1)


def rotation_errors_deg(src_c2w: np.ndarray, dst_c2w: np.ndarray) -> np.ndarray:
    """(N,) angles in degrees between the camera orientations after aligning the centres.

    Args:
        src_c2w, dst_c2w: (N, 4, 4) (or (N, 3, 4)) camera-to-world matrices, OpenCV axes, of the same cameras.
    """
    a, b = np.asarray(src_c2w, np.float64), np.asarray(dst_c2w, np.float64)
    _, R, _ = similarity(a[:, :3, 3], b[:, :3, 3])
    rel = np.einsum("nji,jk,nkl->nil", b[:, :3, :3], R, a[:, :3, :3])  # dst^T R src, identity when they agree
    cos = (np.trace(rel, axis1=1, axis2=2) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def rig_extent(centres: np.ndarray) -> float:
    """The rig's extent in the centres' units: the largest distance between two of the camera centres (N, 3)
    (all pairs up to 2000 cameras; above, the bounding box diagonal, at most 1.8 times larger)."""
    c = np.asarray(centres, np.float64)
    if len(c) <= 2000:
        return float(np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1).max()))
    return float(np.linalg.norm(c.max(0) - c.min(0)))


__all__ = ["centre_errors", "rig_extent", "rotation_errors_deg", "similarity"]
