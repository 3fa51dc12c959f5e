"""Shared synthetic inputs for the kernel backend tests."""

from __future__ import annotations

import numpy as np


def sphere_points(n: int, radius: float = 0.5, seed: int = 0, centre=(0.0, 0.0, 0.0)):
    """(n, 3) float64 points on a sphere and (n, 3) float32 outward unit normals."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * radius + np.asarray(centre), d.astype(np.float32)
