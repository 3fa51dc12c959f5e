"""Procedural shapes with analytic signed distances, and simulated scans of them.

Used for the sample in data/, for tests (exact ground truth) and later for training
data. Signed distances are negative inside. Everything is vectorised over points.

Regenerate the README sample with::

    python -m recon.synthetic data/sample_scan.ply
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from recon.io import save_point_cloud
from recon.types import Mesh, PointCloud

SDF = Callable[[np.ndarray], np.ndarray]


def sphere(centre=(0.0, 0.0, 0.0), radius: float = 0.5) -> SDF:
    c = np.asarray(centre, dtype=np.float64)
    return lambda p: np.linalg.norm(p - c, axis=-1) - radius


def box(centre=(0.0, 0.0, 0.0), half=(0.5, 0.5, 0.5), rounding: float = 0.0) -> SDF:
    c = np.asarray(centre, dtype=np.float64)
    h = np.asarray(half, dtype=np.float64) - rounding

    def f(p: np.ndarray) -> np.ndarray:
        q = np.abs(p - c) - h
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        inside = np.minimum(q.max(axis=-1), 0.0)
        return outside + inside - rounding

    return f


def torus(centre=(0.0, 0.0, 0.0), major: float = 0.35, minor: float = 0.1, axis: int = 2) -> SDF:
    """Torus around the coordinate ``axis`` through ``centre``."""
    c = np.asarray(centre, dtype=np.float64)
    others = [i for i in range(3) if i != axis]

    def f(p: np.ndarray) -> np.ndarray:
        q = p - c
        ring = np.hypot(q[..., others[0]], q[..., others[1]]) - major
        return np.hypot(ring, q[..., axis]) - minor

    return f


def cylinder(centre=(0.0, 0.0, 0.0), radius: float = 0.3, half_height: float = 0.4, axis: int = 2) -> SDF:
    """Capped cylinder along ``axis``."""
    c = np.asarray(centre, dtype=np.float64)
    others = [i for i in range(3) if i != axis]

    def f(p: np.ndarray) -> np.ndarray:
        q = p - c
        d = np.stack([np.hypot(q[..., others[0]], q[..., others[1]]) - radius, np.abs(q[..., axis]) - half_height], -1)
        return np.minimum(d.max(axis=-1), 0.0) + np.linalg.norm(np.maximum(d, 0.0), axis=-1)

    return f


def union(*fs: SDF) -> SDF:
    return lambda p: np.min(np.stack([f(p) for f in fs]), axis=0)


def difference(a: SDF, b: SDF) -> SDF:
    return lambda p: np.maximum(a(p), -b(p))


def smooth_union(a: SDF, b: SDF, k: float = 0.05) -> SDF:
    """Polynomial smooth minimum of two distances with blend radius ``k``."""

    def f(p: np.ndarray) -> np.ndarray:
        da, db = a(p), b(p)
        h = np.clip(0.5 + 0.5 * (db - da) / k, 0.0, 1.0)
        return db * (1 - h) + da * h - k * h * (1 - h)

    return f


def mug() -> SDF:
    """A cup with a handle, about 1 unit tall: thin walls, a hole (genus 1) and a flat base."""
    body = cylinder((0, 0, 0), 0.32, 0.4)
    hollow = cylinder((0, 0, 0.08), 0.27, 0.4)
    handle = torus((0.36, 0, 0.02), 0.17, 0.045, axis=1)
    cup = difference(body, hollow)
    return smooth_union(cup, difference(handle, cylinder((0, 0, 0), 0.3, 0.5)), 0.02)


def sdf_gradient(f: SDF, p: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """(N, 3) central-difference gradient of ``f`` at (N, 3) points."""
    g = np.empty_like(p)
    for axis in range(3):  # three axes, vectorised over points
        d = np.zeros(3)
        d[axis] = eps
        g[:, axis] = (f(p + d) - f(p - d)) / (2 * eps)
    return g


def mesh_sdf(f: SDF, bounds: np.ndarray, resolution: int = 128):
    """Dense marching cubes of an SDF over a (2, 3) box -> :class:`recon.types.Mesh`."""
    from skimage.measure import marching_cubes

    lo, hi = np.asarray(bounds, dtype=np.float64)
    spacing = float(np.max(hi - lo)) / (resolution - 1)
    axes = [np.arange(lo[i], hi[i] + 0.5 * spacing, spacing) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    vals = f(grid.reshape(-1, 3)).reshape(grid.shape[:3])
    verts, faces, _, _ = marching_cubes(vals, 0.0, spacing=(spacing,) * 3)
    return Mesh(verts + lo, faces[:, ::-1])


def sample_sdf_surface(f: SDF, bounds: np.ndarray, n: int, seed: int = 0, resolution: int = 160):
    """(n, 3) points on the zero level of ``f`` with (n, 3) unit outward normals.

    Area-weighted samples of a marching-cubes mesh, projected onto the exact surface
    by two Newton steps along the SDF gradient.
    """
    mesh = mesh_sdf(f, bounds, resolution)
    rng = np.random.default_rng(seed)
    tri = mesh.vertices[mesh.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    face = rng.choice(len(area), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[face]
    p = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    for _ in range(2):
        g = sdf_gradient(f, p)
        g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        p = p - f(p)[:, None] * g
    g = sdf_gradient(f, p)
    return p, (g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def visible_from(points: np.ndarray, normals: np.ndarray, sensor: np.ndarray, pixels: int = 256,
                 tolerance: float = 0.01) -> np.ndarray:
    """(N,) bool: points a depth camera at ``sensor`` looking at the points' centre would see.

    A z-buffer over a ``pixels`` x ``pixels`` image with a field of view that covers all
    points; a point is visible when it faces the sensor and is within ``tolerance``
    (world units) of the nearest depth in its pixel.
    """
    sensor = np.asarray(sensor, dtype=np.float64)
    centre = points.mean(axis=0)
    z = centre - sensor
    z /= np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rel = points - sensor
    depth = rel @ z
    uv = np.stack([rel @ x, rel @ y], 1) / np.maximum(depth, 1e-9)[:, None]
    lo, hi = uv.min(0), uv.max(0)
    ij = np.clip(((uv - lo) / np.maximum(hi - lo, 1e-12) * (pixels - 1)).round().astype(np.int64), 0, pixels - 1)
    pix = ij[:, 0] * pixels + ij[:, 1]
    zbuf = np.full(pixels * pixels, np.inf)
    np.minimum.at(zbuf, pix, depth)
    facing = np.einsum("ij,ij->i", normals, sensor - points) > 0
    return facing & (depth <= zbuf[pix] + tolerance)


@dataclass
class SimulatedScan:
    points: np.ndarray  # (N, 3) float64
    normals: np.ndarray  # (N, 3) float32 ground-truth normals
    sensors: np.ndarray  # (N, 3) float64 position of the sensor that saw each point


def simulate_scan(f: SDF, bounds: np.ndarray, sensors: np.ndarray, n_candidates: int = 200_000,
                  noise: float = 0.002, seed: int = 0) -> SimulatedScan:
    """Points a few depth sensors would record of the surface of ``f``, with Gaussian noise.

    Args:
        f: signed distance function (negative inside).
        bounds: (2, 3) box around the shape.
        sensors: (S, 3) sensor positions.
        n_candidates: surface samples before visibility.
        noise: standard deviation of the position noise, world units.
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    p, n = sample_sdf_surface(f, bounds, n_candidates, seed=seed)
    seen_by = np.full(len(p), -1)
    for s_idx, s in enumerate(np.asarray(sensors, dtype=np.float64)):  # a few sensors
        vis = visible_from(p, n, s) & (seen_by < 0)
        seen_by[vis] = s_idx
    keep = seen_by >= 0
    pts = p[keep] + rng.normal(scale=noise, size=(int(keep.sum()), 3))
    return SimulatedScan(pts, n[keep], np.asarray(sensors, dtype=np.float64)[seen_by[keep]])


def sample_scan(seed: int = 7, n_points: int = 25_000):
    """The README sample: a noisy partial scan of :func:`mug` from three sensors (no normals)."""

    bounds = np.array([[-0.6, -0.6, -0.5], [0.6, 0.6, 0.5]])
    sensors = np.array([[2.0, -1.2, 1.2], [-1.6, -1.6, 0.9], [0.3, 2.2, 1.4]])
    scan = simulate_scan(mug(), bounds, sensors, n_candidates=120_000, noise=0.003, seed=seed)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(scan.points), size=min(n_points, len(scan.points)), replace=False))
    return PointCloud(scan.points[idx].astype(np.float32).astype(np.float64))


def main(argv: list[str] | None = None) -> None:

    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else "data/sample_scan.ply"
    cloud = sample_scan()
    save_point_cloud(cloud, out)
    print(f"wrote {out}: {len(cloud)} points")


if __name__ == "__main__":
    main()
