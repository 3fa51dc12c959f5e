"""A tiny analytic multiview scene: a coloured sphere seen by cameras on a larger sphere.

Images come from exact ray-sphere intersection (no renderer needed), so the tests stand alone.
"""

from __future__ import annotations

import numpy as np

from recon.ops.rays import image_rays
from recon.types import Cameras


def look_at(eye: np.ndarray, target: np.ndarray = np.zeros(3),
            up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """(4, 4) OpenCV camera-to-world (x right, y down, z forward) at ``eye`` looking at ``target``."""
    z = target - eye
    z = z / np.linalg.norm(z)
    y = -(up - (up @ z) * z)
    if np.linalg.norm(y) < 1e-8:
        y = np.array([0.0, 1.0, 0.0]) - z[1] * z
    y = y / np.linalg.norm(y)
    x = np.cross(y, z)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def orbit_cameras(n: int, size: int, distance: float = 2.5, fov_deg: float = 50.0, seed: int = 0) -> Cameras:
    """``n`` cameras on a Fibonacci sphere of radius ``distance`` looking at the origin, ``size`` px square."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i + seed
    eyes = distance * np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], -1)
    f = 0.5 * size / np.tan(np.radians(fov_deg) / 2)
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    return Cameras(np.repeat(K[None], n, 0), np.stack([look_at(e) for e in eyes]), size, size)


def sphere_color(p: np.ndarray) -> np.ndarray:
    """(K, 3) colour of surface points: a smooth function of the position (values in [0.1, 0.9])."""
    n = p / np.linalg.norm(p, axis=-1, keepdims=True)
    return 0.5 + 0.4 * np.stack([n[:, 0], n[:, 1] * n[:, 2], np.sin(3 * n[:, 2])], -1)


def render_sphere(cameras: Cameras, radius: float, background: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Exact images (C, H, W, 3) float32 and masks (C, H, W) of a sphere of ``radius`` at the origin."""
    imgs, masks = [], []
    for c in range(len(cameras)):
        o, d = image_rays(cameras.K[c], cameras.cam_to_world[c], cameras.width, cameras.height)
        b = (o * d).sum(-1)
        disc = b * b - ((o * o).sum(-1) - radius ** 2)
        hit = disc > 0
        t = -b - np.sqrt(np.maximum(disc, 0))
        rgb = np.full((o.shape[0], 3), background, dtype=np.float64)
        rgb[hit] = sphere_color(o[hit] + t[hit, None] * d[hit])
        imgs.append(rgb.reshape(cameras.height, cameras.width, 3))
        masks.append(hit.reshape(cameras.height, cameras.width))
    return np.stack(imgs).astype(np.float32), np.stack(masks).astype(np.float32)


def sphere_sdf(x, radius: float):
    """Exact SDF of the sphere (numpy or torch (K, 3) -> (K,))."""
    return (x ** 2).sum(-1) ** 0.5 - radius
