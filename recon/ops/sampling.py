"""Area-weighted random sampling of triangle-mesh surfaces."""

from __future__ import annotations

import numpy as np

from recon.errors import InputError
from recon.types import Mesh


def face_areas_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face area and unit normal.

    Args:
        vertices: (V, 3) float positions.
        faces: (F, 3) int vertex indices (counter-clockwise seen from outside).

    Returns:
        areas: (F,) float64 triangle areas in squared world units.
        normals: (F, 3) float64 unit normals (right-hand rule); zero rows for
            degenerate (zero-area) faces.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = np.cross(b - a, c - a)
    norm = np.linalg.norm(cross, axis=1)
    areas = 0.5 * norm
    normals = np.zeros_like(cross)
    ok = norm > 0
    normals[ok] = cross[ok] / norm[ok, None]
    return areas, normals


def sample_surface(
    mesh: Mesh, n: int, seed: int | np.random.Generator = 0, *, return_faces: bool = False
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` points uniformly by area from the surface of ``mesh``.

    Faces are picked with probability proportional to their area (degenerate
    faces never), and a point uniformly inside the face via the square-root
    barycentric map. Fully vectorised and deterministic for a given seed.

    Args:
        mesh: the triangle mesh (world units).
        n: number of samples, >= 0.
        seed: integer seed or a numpy Generator.
        return_faces: also return the face index of each sample.

    Returns:
        points: (n, 3) float64 positions on the surface.
        normals: (n, 3) float32 unit face normals of the sampled faces.
        faces: (n,) int64 face indices, only with ``return_faces=True``.

    Raises:
        InputError: the mesh has no face of positive area (and n > 0).
    """
    n = int(n)
    if n < 0:
        raise InputError(f"number of samples must be >= 0, got {n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    areas, fnormals = face_areas_normals(mesh.vertices, mesh.faces)
    total = float(areas.sum()) if areas.size else 0.0
    if n == 0:
        out = (np.zeros((0, 3)), np.zeros((0, 3), np.float32))
        return (*out, np.zeros(0, np.int64)) if return_faces else out
    if not np.isfinite(total) or total <= 0:
        raise InputError("cannot sample a mesh with no face of positive area")
    cdf = np.cumsum(areas)
    cdf /= cdf[-1]
    u = rng.random(n)
    fid = np.searchsorted(cdf, u, side="right")
    fid = np.minimum(fid, len(cdf) - 1)  # guard u == 1 after rounding
    r1 = np.sqrt(rng.random(n))
    r2 = rng.random(n)
    w0 = 1.0 - r1
    w1 = r1 * (1.0 - r2)
    w2 = r1 * r2
    f = mesh.faces[fid]
    v = mesh.vertices
    pts = w0[:, None] * v[f[:, 0]] + w1[:, None] * v[f[:, 1]] + w2[:, None] * v[f[:, 2]]
    nrm = fnormals[fid].astype(np.float32)
    if return_faces:
        return pts, nrm, fid.astype(np.int64)
    return pts, nrm


__all__ = ["face_areas_normals", "sample_surface"]
