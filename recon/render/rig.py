"""Cameras on a sphere around an object: Fibonacci directions, looking at the centre."""

from __future__ import annotations

import math

import numpy as np

from recon.types import Cameras

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def fibonacci_directions(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the whole sphere (both hemispheres).

    The Fibonacci lattice ``z_i = 1 - (2 i + 1) / n`` with azimuth ``i * golden angle`` is
    rotated by a random rotation drawn from ``seed`` (a uniformly random orthogonal matrix
    from the QR decomposition of a Gaussian matrix), so seeds give different but equally
    even viewpoint sets.
    """
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, 1.0))
    phi = i * GOLDEN_ANGLE
    dirs = np.stack([r * np.cos(phi), r * np.sin(phi), z], -1)
    q, rr = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(rr))[None, :]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return dirs @ q.T


def look_at(eyes: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(C, 4, 4) OpenCV camera-to-world matrices at ``eyes`` (C, 3) looking at ``target`` (3,).

    Image "up" (-y) follows ``up`` (3,); where a view direction is within 2.6 degrees of ``up``,
    the next axis of the world is used instead.
    """
    eyes = np.asarray(eyes, np.float64)
    fwd = np.asarray(target, np.float64)[None] - eyes
    fwd /= np.linalg.norm(fwd, axis=1, keepdims=True)
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    alt = np.roll(up, 1)
    ups = np.where((np.abs(fwd @ up) > 0.999)[:, None], alt[None], up[None])
    right = np.cross(fwd, ups)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    down = np.cross(fwd, right)
    c2w = np.tile(np.eye(4), (eyes.shape[0], 1, 1))
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, down, fwd, eyes
    return c2w


def sphere_rig(centre: np.ndarray, radius: float, n_views: int, size: int, fov_deg: float = 40.0,
               seed: int = 0, up: tuple[float, float, float] = (0.0, 1.0, 0.0), margin: float = 1.05) -> Cameras:
    """Square pinhole cameras on a sphere that frame a ball of ``radius`` around ``centre``.

    The distance ``radius * margin / sin(fov / 2)`` makes the ball's silhouette fit inside the
    image's inscribed circle with ``margin`` to spare, from every direction.

    Args:
        centre: (3,) world position looked at.
        radius: radius of the ball to frame (world units).
        n_views: number of cameras.
        size: image width = height in pixels.
        fov_deg: horizontal = vertical field of view in degrees.
        seed: rotation of the Fibonacci lattice.
        up: world direction shown as image up.
        margin: extra distance factor (>= 1).
    """
    half = math.radians(fov_deg) / 2.0
    dist = radius * margin / math.sin(half)
    eyes = np.asarray(centre, np.float64)[None] + dist * fibonacci_directions(n_views, seed)
    f = 0.5 * size / math.tan(half)
    K = np.tile(np.array([[f, 0.0, 0.5 * size], [0.0, f, 0.5 * size], [0.0, 0.0, 1.0]]), (n_views, 1, 1))
    return Cameras(K=K, cam_to_world=look_at(eyes, np.asarray(centre, np.float64), np.asarray(up)), width=size, height=size)


__all__ = ["fibonacci_directions", "look_at", "sphere_rig"]
