"""A procedural surface colour and a fixed diffuse light, both functions of 3D position / normal only.

The colour is smooth (two sinusoids per channel, about 1.5 and 1 cycles per object radius), so a
small MLP can learn it, and colourful, so multiview matching has texture. The light is a
"half-Lambert" term ``0.6 + 0.4 n . l`` for a fixed world direction l: smooth everywhere
(no clamp kink) and independent of the view direction, so a surface point has one colour in all
views.
"""

from __future__ import annotations

import numpy as np

#: per channel: two spatial frequency vectors (cycles per object radius) and phases.
_FREQS = np.array([
    [[1.3, 0.4, -0.6], [-0.3, 0.9, 0.8]],
    [[-0.5, 1.2, 0.5], [0.8, -0.2, 1.0]],
    [[0.6, -0.7, 1.2], [1.0, 0.7, -0.3]],
])
_PHASES = np.array([[0.3, 1.9], [2.2, 0.7], [4.1, 3.3]])
LIGHT_DIR = np.array([0.4, 0.8, 0.45]) / np.linalg.norm([0.4, 0.8, 0.45])


def albedo(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """(N, 3) float64 RGB in [0.1, 0.9] for world points (N, 3) on an object of given centre/radius."""
    q = (np.asarray(points, np.float64) - centre) / radius
    arg = 2 * np.pi * np.einsum("nd,ckd->nck", q, _FREQS) + _PHASES[None]
    return 0.1 + 0.8 * (0.5 + 0.25 * np.sin(arg).sum(-1))


def shading(normals: np.ndarray) -> np.ndarray:
    """(N,) light factor in [0.2, 1] for unit normals (N, 3) (zero normals get 0.6)."""
    return 0.6 + 0.4 * (np.asarray(normals, np.float64) @ LIGHT_DIR)


def surface_colour(points: np.ndarray, normals: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """(N, 3) float64 shaded RGB in [0, 1]: :func:`albedo` times :func:`shading`."""
    return albedo(points, centre, radius) * shading(normals)[:, None]


__all__ = ["LIGHT_DIR", "albedo", "shading", "surface_colour"]
