"""Moving between world coordinates (float64) and local working coordinates (float32), and similarity transforms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalFrame:
    """World = local * scale + offset.

    Attributes:
        offset: (3,) float64 world position of the local origin.
        scale: world units per local unit.
    """

    offset: np.ndarray
    scale: float = 1.0

    def to_local(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) world float64 -> (N, 3) local float32."""
        return ((np.asarray(xyz, dtype=np.float64) - self.offset) / self.scale).astype(np.float32)

    def to_world(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) local -> (N, 3) world float64."""
        return np.asarray(xyz, dtype=np.float64) * self.scale + self.offset


def centred_frame(points: np.ndarray, normalise: bool = False) -> LocalFrame:
    """A frame centred on the bounding-box centre of ``points`` (N, 3).

    With ``normalise=True`` the local frame also has unit longest bounding-box side.
    """
    lo = points.min(axis=0)
    hi = points.max(axis=0)
    centre = 0.5 * (lo + hi)
    scale = float(np.max(hi - lo)) if normalise else 1.0
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return LocalFrame(offset=centre.astype(np.float64), scale=scale)


def similarity_parts(to_world: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Split a similarity transform (4, 4) into scale s > 0, the (3, 3) linear part A = s R, and offset c (3,)."""
    T = np.asarray(to_world, dtype=np.float64).reshape(4, 4)
    A = T[:3, :3]
    s = float(abs(np.linalg.det(A)) ** (1.0 / 3.0))
    if not np.isfinite(s) or s <= 0:
        raise ValueError("to_world must be an invertible similarity transform")
    return s, A.copy(), T[:3, 3].copy()
