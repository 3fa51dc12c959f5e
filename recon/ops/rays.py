"""Camera rays and projection in the library's OpenCV convention.

Conventions: pixel (u, v) = (column, row); the centre of pixel (0, 0) is at (0.5, 0.5), so a
pixel index (i, j) maps to image coordinates (i + 0.5, j + 0.5). Camera x right, y down, z
forward; ``cam_to_world`` (4, 4) maps camera to world. Ray directions are unit length; for
depth along the optical axis use ``t * dirs_z`` (see :func:`pixel_rays`).

Works on numpy (float64) or torch tensors (any device, float32/float64) alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _xp(a: Any):
    return torch if isinstance(a, torch.Tensor) else np


def pixel_rays(K: Any, cam_to_world: Any, uv: Any) -> tuple[Any, Any, Any]:
    """Rays through image points.

    Args:
        K: (3, 3) or (R, 3, 3) intrinsics in pixels.
        cam_to_world: (4, 4) or (R, 4, 4) camera-to-world.
        uv: (R, 2) image coordinates in pixels (pixel centres are at +0.5).

    Returns:
        origins (R, 3), unit directions (R, 3) in world units, and (R,) the cosine between each
        ray and the optical axis (depth along z = distance along the ray * cosine).
    """
    xp = _xp(uv)
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    cx, cy, skew = K[..., 0, 2], K[..., 1, 2], K[..., 0, 1]
    y = (uv[:, 1] - cy) / fy
    x = (uv[:, 0] - cx - skew * y) / fx
    ones = xp.ones_like(x)
    d_cam = xp.stack([x, y, ones], -1)
    norm = (d_cam ** 2).sum(-1) ** 0.5
    d_cam = d_cam / norm[:, None]
    R = cam_to_world[..., :3, :3]
    if R.ndim == 2:
        dirs = d_cam @ R.T
        origins = xp.broadcast_to(cam_to_world[:3, 3], dirs.shape)
    else:
        dirs = (R @ d_cam[:, :, None])[:, :, 0]
        origins = cam_to_world[:, :3, 3]
    if xp is np:
        origins = np.array(origins)
    else:
        origins = origins.expand_as(dirs).clone()
    return origins, dirs, 1.0 / norm


def image_rays(K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """All pixel-centre rays of one camera, row-major (row j, then column i).

    Returns:
        origins, directions: (H * W, 3) float64.
    """
    j, i = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    uv = np.stack([i.ravel() + 0.5, j.ravel() + 0.5], -1).astype(np.float64)
    o, d, _ = pixel_rays(np.asarray(K, np.float64), np.asarray(cam_to_world, np.float64), uv)
    return o, d


def project(K: np.ndarray, cam_to_world: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points to image coordinates.

    Args:
        K: (3, 3); cam_to_world: (4, 4); xyz: (N, 3) world.

    Returns:
        uv (N, 2) pixels (pixel centres at +0.5) and z (N,) depth along the optical axis.
    """
    w2c = np.linalg.inv(np.asarray(cam_to_world, np.float64))
    pc = np.asarray(xyz, np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    z = pc[:, 2]
    proj = pc @ np.asarray(K, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = proj[:, :2] / z[:, None]
    return uv, z


__all__ = ["image_rays", "pixel_rays", "project"]
