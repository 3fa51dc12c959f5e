"""The scene bound of a capture without masks: where the object is, as an axis-aligned box.

Rule: with sparse structure-from-motion points, a robust box of them (per-axis percentiles, grown by
a margin); without, the box of what every camera sees (``recon.io.cameras.normalize.scene_box``).
The image backends model what lies outside the bound as background, prune Gaussians that leave it,
and the final mesh is cropped to it (``recon.pipeline.reconstruct_views``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.io.cameras.normalize import robust_points_box, scene_box
from recon.meshing.cleanup import crop_to_box, remove_small_pieces
from recon.types import Cameras, Mesh

#: fewer sparse points than this and the box comes from the cameras
MIN_POINTS = 20
#: growth of the crop box over the bound, per side, as a fraction of the bound's largest extent
CROP_MARGIN = 0.1
#: connected pieces holding less than this share of the cropped mesh's area are removed
MIN_PIECE_SHARE = 0.01


@dataclass(frozen=True)
class SceneBound:
    """An axis-aligned box in some frame.

    Attributes:
        lo, hi: (3,) float64 corners (the frame's units).
        source: "points" (robust box of sparse points) or "cameras" (what every camera sees).
    """

    lo: np.ndarray
    hi: np.ndarray
    source: str

    def contains(self, x: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(N,) bool: which of the (N, 3) points lie in the box grown by ``margin`` times its largest
        extent on every side."""
        g = margin * float(np.max(self.hi - self.lo))
        x = np.asarray(x, np.float64)
        return np.all((x >= self.lo - g) & (x <= self.hi + g), axis=1)

    def grown(self, margin: float) -> SceneBound:
        """The box grown by ``margin`` times its largest extent on every side."""
        g = margin * float(np.max(self.hi - self.lo))
        return SceneBound(self.lo - g, self.hi + g, self.source)

    def transformed(self, matrix: np.ndarray) -> SceneBound:
        """The axis-aligned box around the image of this box's 8 corners under the (4, 4) affine ``matrix``."""
        m = np.asarray(matrix, np.float64)
        corners = np.stack(np.meshgrid(*zip(self.lo, self.hi), indexing="ij"), -1).reshape(-1, 3)
        w = corners @ m[:3, :3].T + m[:3, 3]
        return SceneBound(w.min(0), w.max(0), self.source)

    def as_array(self) -> np.ndarray:
        """(2, 3) float64 [lo, hi]."""
        return np.stack([self.lo, self.hi]).astype(np.float64)


def scene_bound(cameras: Cameras, points: np.ndarray | None = None, masks: np.ndarray | None = None,
                clip: float | None = 1.0) -> SceneBound:
    """The scene bound in the cameras' frame.

    Args:
        cameras: C pinhole cameras.
        points: optional (P, 3) sparse points in the same frame; used when there are >= MIN_POINTS.
        masks: optional (C, h, w) masks (> 0 inside) for the cameras' box.
        clip: when given, the box is intersected with [-clip, clip]^3 (the normalised frame's cube).

    Returns:
        The bound (source "points" or "cameras").
    """
    if points is not None and len(points) >= MIN_POINTS:
        lo, hi = robust_points_box(np.asarray(points, np.float64))
        source = "points"
    else:
        lo, hi = scene_box(cameras, masks)
        source = "cameras"
    if clip is not None:
        lo, hi = np.clip(lo, -clip, clip), np.clip(hi, -clip, clip)
    return SceneBound(np.asarray(lo, np.float64), np.asarray(hi, np.float64), source)


def clean_to_bound(mesh: Mesh, bound: SceneBound, margin: float = CROP_MARGIN,
                   min_share: float = MIN_PIECE_SHARE) -> Mesh:
    """The mesh cropped to ``bound`` (same units) grown by ``margin``, without the connected pieces that
    hold less than ``min_share`` of the cropped area. A crop that would leave nothing returns the mesh
    with small pieces removed only (a bound that missed the object must not empty the result)."""
    box = bound.grown(margin)
    cropped = crop_to_box(mesh, box.lo, box.hi)
    return remove_small_pieces(cropped if cropped.n_faces else mesh, min_share)


__all__ = ["CROP_MARGIN", "MIN_PIECE_SHARE", "MIN_POINTS", "SceneBound", "clean_to_bound", "scene_bound"]
