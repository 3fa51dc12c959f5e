"""Synthetic camera rigs (for demos, tests and the README picture of camera frustums)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from recon.types import Cameras


def look_at(centre: np.ndarray, target: np.ndarray, up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 OpenCV cam_to_world at ``centre`` looking at ``target`` (x right, y down, z forward).

    ``up`` must not be parallel to the viewing direction.
    """
    z = np.asarray(target, float) - np.asarray(centre, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, float))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, centre
    return m


def sphere_rig(target: np.ndarray, radius: float, n: int, *, width: int = 640, height: int = 480,
               fov_deg: float = 50.0, up: Sequence[float] = (0.0, 0.0, 1.0), seed: int = 0) -> Cameras:
    """``n`` cameras spread over the upper part of a sphere (Fibonacci spiral, 15..75 deg elevation)
    around ``target``, all looking at it; ``up`` is the world's up axis."""
    up = np.asarray(up, float) / np.linalg.norm(up)
    a = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(up, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    i = np.arange(n) + 0.5
    elev = np.radians(15 + 60 * i / n)
    azim = np.pi * (1 + 5 ** 0.5) * i + np.random.default_rng(seed).uniform(0, 2 * np.pi)
    dirs = (np.cos(elev)[:, None] * (np.cos(azim)[:, None] * e1 + np.sin(azim)[:, None] * e2)
            + np.sin(elev)[:, None] * up)
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    K = np.repeat(np.array([[[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]]), n, axis=0)
    poses = np.stack([look_at(np.asarray(target, float) + radius * d, target, up) for d in dirs])
    return Cameras(K, poses, width, height)


__all__ = ["look_at", "sphere_rig"]
