"""The point cloud checks of :mod:`recon.io.validate`, on a cloud that is only ever seen chunk by chunk.

``recon reconstruct`` holds its whole cloud and checks it with
:func:`recon.io.validate.validate_point_cloud`; ``recon batch`` streams inputs of any size, so it
accumulates what those rules need while pass 1 reads the points anyway: the count of finite points,
their bounding box and their :class:`Moments` (mean and scatter matrix, merged across chunks and
pieces), and :func:`check_cloud` applies the same rules to them before any job folder exists:

1. no finite point at all;
2. fewer than :data:`MIN_BATCH_POINTS` finite points;
3. all points identical (bounding box extent 0);
4. all points collinear (second singular value of the centred points at most
   :data:`recon.io.validate.COLLINEAR_RATIO` times the first).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from recon.errors import InputError
from recon.io.validate import COLLINEAR_RATIO, MIN_POINTS
from recon.tiling.job import MIN_TILE_POINTS

MIN_BATCH_POINTS = max(MIN_POINTS, MIN_TILE_POINTS)
"""Fewer points than a tile needs for a field of its own can only give an empty scene."""


@dataclass
class Moments:
    """Mean and scatter of a set of points, kept in units of their largest coordinate magnitude.

    Storing ``mean / scale`` and ``scatter / scale**2`` keeps huge coordinates from overflowing
    (as :func:`recon.io.validate.singular_values` does for a whole cloud); two sets merge exactly
    (the parallel form of the mean / co-moment update), in any order.

    Attributes:
        n: number of points.
        scale: largest absolute coordinate seen, world units (0 when empty or all at the origin).
        mean: (3,) mean position / scale.
        scatter: (3, 3) sum of outer products of the centred positions / scale**2.
    """

    n: int = 0
    scale: float = 0.0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scatter: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))

    @classmethod
    def of(cls, xyz: np.ndarray) -> "Moments":
        """The moments of (K, 3) finite float64 positions."""
        if len(xyz) == 0:
            return cls()
        scale = float(np.max(np.abs(xyz)))
        if scale == 0.0:
            return cls(len(xyz))
        p = xyz / scale
        mean = p.mean(axis=0)
        centred = p - mean
        return cls(len(xyz), scale, mean, centred.T @ centred)

    def merged(self, other: "Moments") -> "Moments":
        """The moments of both sets together."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        scale = max(self.scale, other.scale)
        if scale == 0.0:
            return Moments(n)
        a, b = self.scale / scale, other.scale / scale
        m1, m2 = self.mean * a, other.mean * b
        d = m2 - m1
        mean = m1 + d * (other.n / n)
        scatter = self.scatter * (a * a) + other.scatter * (b * b) + np.outer(d, d) * (self.n * other.n / n)
        return Moments(n, scale, mean, scatter)

    def singular_values(self) -> np.ndarray:
        """(3,) singular values of the centred points, largest first, world units."""
        if self.n == 0 or self.scale == 0.0:
            return np.zeros(3)
        ev = np.linalg.eigvalsh((self.scatter + self.scatter.T) / 2)[::-1]
        return np.sqrt(np.clip(ev, 0.0, None)) * self.scale


def check_cloud(points: int, dropped: int, lo: np.ndarray, hi: np.ndarray, moments: Moments,
                where: str | os.PathLike | None) -> None:
    """Refuse a streamed cloud that cannot give a surface (see the module docstring).

    Args:
        points: finite points read.
        dropped: rows dropped for a non-finite coordinate.
        lo, hi: (3,) bounds of the finite points, world units.
        moments: their moments.
        where: the input named in the message (a file, or a description of several).

    Raises:
        InputError: one of the rules fails.
    """
    if points == 0:
        raise InputError(f"no finite points in the input (all {dropped:,} have NaN/Inf coordinates)", where,
                         "check the files: every coordinate is NaN or infinite")
    if points < MIN_BATCH_POINTS:
        raise InputError(f"only {points:,} valid points (need at least {MIN_BATCH_POINTS})", where,
                         "use a denser scan")
    if float(np.max(np.asarray(hi) - np.asarray(lo))) <= 0.0:
        raise InputError(f"all {points:,} points are identical", where,
                         "check the export (units, scale) or the scan")
    s = moments.singular_values()
    if s[1] <= COLLINEAR_RATIO * s[0]:
        raise InputError(f"all {points:,} points are collinear", where,
                         "a surface needs points spread in two directions; check the scan")


__all__ = ["MIN_BATCH_POINTS", "Moments", "check_cloud"]
