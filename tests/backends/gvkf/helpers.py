"""Small synthetic scenes for the GVKF tests: a ring of cameras around the origin."""

from __future__ import annotations

import numpy as np

from recon.types import Cameras


def ring_cameras(n: int = 12, size: int = 48, radius: float = 2.5, fov_deg: float = 40.0, elevations=(0.4, -0.3)) -> Cameras:
    """``n`` pinhole cameras on circles around the origin looking at it (OpenCV convention)."""
    f = 0.5 * size / np.tan(np.radians(fov_deg) / 2)
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    c2w = []
    for k in range(n):
        az = 2 * np.pi * k / n
        el = elevations[k % len(elevations)]
        eye = radius * np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])
        z = -eye / np.linalg.norm(eye)
        x = np.cross(z, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye
        c2w.append(m)
    return Cameras(np.repeat(K[None], n, 0), np.stack(c2w), size, size)


def sphere_masks(cameras: Cameras, r: float = 0.5) -> np.ndarray:
    """(C, H, W) exact silhouettes of a sphere of radius ``r`` at the origin (pixel-centre rays)."""
    from recon.ops.rays import image_rays

    out = []
    for K, c2w in zip(cameras.K, cameras.cam_to_world):
        o, d = image_rays(K, c2w, cameras.width, cameras.height)
        b = (o * d).sum(-1)
        disc = b ** 2 - ((o ** 2).sum(-1) - r * r)
        out.append((disc > 0).reshape(cameras.height, cameras.width).astype(np.float32))
    return np.stack(out)
