"""Shared fixtures-as-functions for the normals tests."""

from __future__ import annotations

import numpy as np


def fibonacci_sphere(n: int, radius: float = 1.0) -> np.ndarray:
    """(n, 3) nearly uniform points on a sphere."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = i * np.pi * (3 - np.sqrt(5))
    r = np.sqrt(1 - z * z)
    return radius * np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
