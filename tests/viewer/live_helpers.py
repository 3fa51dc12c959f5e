"""Shared pieces of the live-view tests: test meshes and how much of a frame is not background."""

from __future__ import annotations

import numpy as np
import trimesh

from recon.types import Mesh
from recon_apps.viewer.app import BACKGROUND

BG = np.array([int(BACKGROUND[i:i + 2], 16) for i in (1, 3, 5)])


def sphere(radius: float) -> Mesh:
    """An icosphere (320 faces) of ``radius`` at the origin."""
    s = trimesh.creation.icosphere(2, radius=radius)
    return Mesh(s.vertices, s.faces)


def share(img: np.ndarray) -> float:
    """Fraction of the (H, W, 3) frame's pixels that differ from the background."""
    return float((np.abs(img.astype(int) - BG).sum(axis=-1) > 24).mean())
