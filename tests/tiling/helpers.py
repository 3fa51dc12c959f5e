"""Small synthetic inputs and a quiet in-process batch run for the tiling tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.tiling.config import BatchConfig
from recon.tiling.runner import BatchSummary, run_batch

#: A georeferenced offset like the synthetic scene's, so float64 handling is exercised.
OFFSET = np.array([636000.0, 850000.0, 100.0])


def wavy_plane(path: Path, n: int = 24_000, box=(1.3, 14.7, 1.3, 6.7), seed: int = 0) -> Path:
    """An (N, 6) .npy of a gently waving height field over [x0, x1] x [y0, y1] (plus :data:`OFFSET`),
    with exact upward normals."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(box[0], box[1], n)
    y = rng.uniform(box[2], box[3], n)
    z = 0.3 * np.sin(x / 2.0) + 0.2 * np.cos(y / 1.7)
    nrm = np.stack([-0.15 * np.cos(x / 2.0), 0.2 / 1.7 * np.sin(y / 1.7), np.ones(n)], 1)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    np.save(path, np.c_[np.stack([x, y, z], 1) + OFFSET, nrm])
    return path


def seam_gaps(mesh, lattice, box=(1.3, 14.7, 1.3, 6.7), pad: float = 0.5) -> int:
    """Open edges lying on a tile border plane farther than ``pad`` from the rim of a
    :func:`wavy_plane` (there the surface goes on, so an open edge is a gap in the seam)."""
    from recon.tiling.stitch import boundary_edges, plane_edges

    on = plane_edges(mesh, lattice)
    mid = mesh.vertices[boundary_edges(mesh.faces)[on]].mean(1) - OFFSET
    inner = ((mid[:, 0] > box[0] + pad) & (mid[:, 0] < box[1] - pad) & (mid[:, 1] > box[2] + pad)
             & (mid[:, 1] < box[3] - pad))
    return int(inner.sum())


def sphere(path: Path, n: int = 30_000, radius: float = 3.0, seed: int = 0) -> Path:
    """An (N, 6) .npy of points on a sphere around :data:`OFFSET` + (0.3, 0.7, 0.2) with outward normals."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    np.save(path, np.c_[OFFSET + np.array([0.3, 0.7, 0.2]) + radius * d, d])
    return path


def run(inputs, out: Path, **options) -> BatchSummary:
    """``run_batch`` with in-process Dask workers (threads), no preview, no output."""
    opts = dict(processes=False, workers=2, preview=False)
    opts.update(options)
    return run_batch(BatchConfig(inputs=[str(p) for p in np.atleast_1d(inputs)], output=str(out), **opts))
