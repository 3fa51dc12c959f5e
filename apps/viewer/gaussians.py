"""Saved 3D Gaussians in the viewer (``recon reconstruct DIR --backend gvkf --save-gaussians G.npz``).

Each Gaussian is drawn as its ellipsoid at ``sigma`` standard deviations (an icosphere mapped
through ``R diag(sigma * s)``, built for all Gaussians at once), coloured by its RGB; the centres
are a second, hidden layer. Nearly transparent Gaussians (opacity below ``min_opacity``) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recon.errors import InputError

from recon_apps.viewer.layers import Coloring, Layer


@dataclass
class GaussianSource:
    """Gaussians to show: ``gaussians`` (a :class:`recon.backends.gvkf.gaussians.GaussianSet` in world
    units) and the file they came from."""

    gaussians: Any
    source: str | None = None


def is_saved_gaussians(path: str | Path) -> bool:
    """Whether ``path`` is an .npz written by ``GaussianSet.save`` (reads one small entry)."""
    from recon.backends.gvkf.gaussians import FORMAT

    p = Path(path)
    if p.suffix.lower() != ".npz" or not p.is_file():
        return False
    try:
        with np.load(p, allow_pickle=False) as z:
            return "format" in z.files and str(z["format"]) == FORMAT
    except (OSError, ValueError):
        return False


def load_saved_gaussians(path: str | Path) -> GaussianSource:
    """A :class:`GaussianSource` for a saved Gaussians file (one-line InputError when unreadable)."""
    from recon.backends.gvkf.gaussians import GaussianSet

    try:
        return GaussianSource(GaussianSet.load(path), source=str(path))
    except (OSError, ValueError, KeyError):
        raise InputError("the saved Gaussians cannot be read", path,
                         "write them again with `recon reconstruct DIR --backend gvkf --save-gaussians G.npz`") from None


def _icosphere() -> tuple[np.ndarray, np.ndarray]:
    """A unit icosahedron subdivided once: (42, 3) vertices, (80, 3) faces."""
    t = (1 + 5 ** 0.5) / 2
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                  [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], np.float64)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    uniq, inv = np.unique(edges, axis=0, return_inverse=True)
    mid = 12 + inv.reshape(3, -1).T                           # (20, 3) midpoint index of edges 01, 12, 20
    v = np.concatenate([v, (v[uniq[:, 0]] + v[uniq[:, 1]]) / 2])
    a, b, c = f.T
    ab, bc, ca = mid.T
    f = np.concatenate([np.stack(x, 1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return v / np.linalg.norm(v, axis=1, keepdims=True), f


def ellipsoids(means: np.ndarray, rotations: np.ndarray, scales: np.ndarray, sigma: float = 1.5
               ) -> tuple[np.ndarray, np.ndarray]:
    """Triangle meshes of N ellipsoids: (N * 42, 3) vertices and (N * 80, 3) faces.

    Args:
        means: (N, 3) centres; rotations: (N, 3, 3) local-to-world; scales: (N, 3) standard deviations.
        sigma: the ellipsoids' radius in standard deviations.
    """
    sv, sf = _icosphere()
    verts = means[:, None, :] + np.einsum("nij,kj->nki", rotations * (sigma * scales)[:, None, :], sv)
    faces = sf[None] + (np.arange(len(means)) * len(sv))[:, None, None]
    return verts.reshape(-1, 3), faces.reshape(-1, 3)


def gaussian_layers(src: GaussianSource, label: str, options: Any, min_opacity: float = 0.1,
                    max_gaussians: int = 60_000) -> list:
    """Layers: "gaussians" (ellipsoids coloured by RGB) and "centres" (points, hidden)."""
    import pyvista as pv

    g = src.gaussians
    keep = (g.opacities() >= min_opacity).cpu().numpy()
    idx = np.nonzero(keep)[0]
    if len(idx) > max_gaussians:  # the most opaque ones
        idx = idx[np.argsort(-g.opacities().cpu().numpy()[idx])[:max_gaussians]]
    if len(idx) == 0:
        raise InputError(f"no Gaussian is more than {min_opacity:.0%} opaque", src.source,
                         "train longer, or check the file")
    means = g.means.detach().cpu().numpy().astype(np.float64)[idx]
    rot = g.rotations().detach().cpu().numpy().astype(np.float64)[idx]
    scales = g.scales().detach().cpu().numpy().astype(np.float64)[idx]
    rgb = (np.clip(g.colours().detach().cpu().numpy()[idx], 0, 1) * 255 + 0.5).astype(np.uint8)
    v, f = ellipsoids(means, rot, scales)
    poly = pv.PolyData.from_regular_faces(v, f)
    poly.point_data["rgb"] = np.repeat(rgb, 42, axis=0)
    centres = pv.PolyData(means)
    centres.point_data["rgb"] = rgb
    return [Layer("gaussians", poly, "surface", [Coloring("rgb", "rgb", rgb=True), Coloring("solid")], style="flat"),
            Layer("centres", centres, "points", [Coloring("rgb", "rgb", rgb=True)], visible=False,
                  point_size=options.point_size)]
