"""Mesh clean-up and topology checks, vectorised over faces."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from recon.types import Mesh


def _subset(mesh: Mesh, faces: np.ndarray, keep_vertex: np.ndarray | None = None) -> Mesh:
    """A mesh with ``faces`` (F', 3) over ``mesh.vertices`` restricted to referenced vertices.

    Per-vertex normals and colours follow their vertices.
    """
    used = np.zeros(mesh.n_vertices, dtype=bool)
    used[faces.ravel()] = True
    if keep_vertex is not None:
        used &= keep_vertex
    new_index = np.cumsum(used) - 1
    take = np.flatnonzero(used)
    vn = None if mesh.vertex_normals is None else mesh.vertex_normals[take]
    vc = None if mesh.vertex_colors is None else mesh.vertex_colors[take]
    return Mesh(mesh.vertices[take], new_index[faces], vn, vc)


def remove_unreferenced_vertices(mesh: Mesh) -> Mesh:
    """Drop vertices no face uses and reindex the faces (vertex attributes follow)."""
    return _subset(mesh, mesh.faces)


def _undirected_edge_counts(faces: np.ndarray) -> np.ndarray:
    """(E,) int64 number of faces using each distinct undirected edge of (F, 3) faces."""
    if faces.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e.sort(axis=1)
    n = int(faces.max()) + 1
    _, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)
    return counts


def boundary_edge_count(mesh: Mesh) -> int:
    """Number of undirected edges used by exactly one face."""
    return int(np.count_nonzero(_undirected_edge_counts(mesh.faces) == 1))


def is_watertight(mesh: Mesh) -> bool:
    """True when the mesh has faces and every undirected edge is used by exactly two faces.

    An empty mesh is reported as not watertight.
    """
    counts = _undirected_edge_counts(mesh.faces)
    return bool(counts.size > 0 and np.all(counts == 2))


def face_components(mesh: Mesh) -> tuple[int, np.ndarray]:
    """Connected components of the faces, two faces being connected when they share a vertex.

    Returns:
        ``(n, labels)``: the number of components and (F,) int64 component of each face.
    """
    f = mesh.faces
    if f.shape[0] == 0:
        return 0, np.zeros(0, dtype=np.int64)
    nv = max(mesh.n_vertices, int(f.max()) + 1)
    rows = np.concatenate([f[:, 0], f[:, 1]])
    cols = np.concatenate([f[:, 1], f[:, 2]])
    g = sp.coo_matrix((np.ones(rows.shape[0], dtype=np.int8), (rows, cols)), shape=(nv, nv)).tocsr()
    _, vlabel = connected_components(g, directed=False)
    _, labels = np.unique(vlabel[f[:, 0]], return_inverse=True)
    return int(labels.max()) + 1, labels.reshape(-1).astype(np.int64)


def remove_small_components(mesh: Mesh, min_faces: int | None = None, keep_largest: bool = False) -> Mesh:
    """Remove connected components (faces sharing vertices) that are too small.

    Args:
        mesh: the mesh.
        min_faces: drop components with fewer faces than this (None: no size threshold).
        keep_largest: keep only the component with the most faces (ties: the one whose
            first face comes first); applied after ``min_faces``.

    Returns:
        The mesh restricted to the kept faces, unreferenced vertices dropped. With neither
        option set the mesh is returned with unreferenced vertices dropped only.
    """
    n, labels = face_components(mesh)
    if n == 0:
        return remove_unreferenced_vertices(mesh)
    sizes = np.bincount(labels, minlength=n)
    keep = np.ones(n, dtype=bool)
    if min_faces is not None:
        keep &= sizes >= int(min_faces)
    if keep_largest and keep.any():
        best = int(np.argmax(np.where(keep, sizes, -1)))
        keep[:] = False
        keep[best] = True
    return _subset(mesh, mesh.faces[keep[labels]])


def face_areas(mesh: Mesh) -> np.ndarray:
    """(F,) float64 triangle areas (world units squared)."""
    v = np.asarray(mesh.vertices, np.float64)
    a, b, c = v[mesh.faces[:, 0]], v[mesh.faces[:, 1]], v[mesh.faces[:, 2]]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def component_area_shares(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Share of the mesh area in each connected component (faces sharing vertices).

    Returns:
        ``(shares, labels)``: (n,) float64 area fractions summing to 1 (uniform when the area is 0) and
        (F,) int64 component of each face; both empty for a mesh without faces.
    """
    n, labels = face_components(mesh)
    if n == 0:
        return np.zeros(0), labels
    area = np.bincount(labels, weights=face_areas(mesh), minlength=n)
    total = float(area.sum())
    return (area / total if total > 0 else np.full(n, 1.0 / n)), labels


def largest_piece_share(mesh: Mesh) -> float:
    """Fraction of the mesh area in its largest connected component (0 for a mesh without faces)."""
    shares, _ = component_area_shares(mesh)
    return float(shares.max()) if shares.size else 0.0


def remove_small_pieces(mesh: Mesh, min_share: float) -> Mesh:
    """Drop connected components holding less than ``min_share`` of the mesh area (the largest is always
    kept), then unreferenced vertices."""
    shares, labels = component_area_shares(mesh)
    if shares.size == 0:
        return remove_unreferenced_vertices(mesh)
    keep = shares >= float(min_share)
    keep[int(np.argmax(shares))] = True
    return _subset(mesh, mesh.faces[keep[labels]])


def crop_to_box(mesh: Mesh, lo: np.ndarray, hi: np.ndarray) -> Mesh:
    """Keep the faces whose three vertices lie in the axis-aligned box [lo, hi] ((3,) each, the mesh's
    units); unreferenced vertices are dropped (vertex attributes follow)."""
    v = np.asarray(mesh.vertices, np.float64)
    inside = np.all((v >= np.asarray(lo, np.float64)) & (v <= np.asarray(hi, np.float64)), axis=1)
    return _subset(mesh, mesh.faces[inside[mesh.faces].all(axis=1)])


def euler_characteristic(mesh: Mesh) -> int:
    """V - E + F over referenced vertices and distinct undirected edges."""
    if mesh.n_faces == 0:
        return 0
    v = np.unique(mesh.faces).size
    e = _undirected_edge_counts(mesh.faces).size
    return int(v - e + mesh.n_faces)


def mesh_volume(mesh: Mesh) -> float:
    """Signed enclosed volume (divergence theorem), in world units cubed.

    Positive for a closed mesh whose faces are counter-clockwise seen from outside.
    Vertices are centred first to limit cancellation far from the origin.
    """
    if mesh.n_faces == 0:
        return 0.0
    v = mesh.vertices - mesh.vertices.mean(axis=0)
    a, b, c = v[mesh.faces[:, 0]], v[mesh.faces[:, 1]], v[mesh.faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
