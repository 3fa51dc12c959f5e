"""First-hit ray casting of a triangle mesh with Open3D's ``RaycastingScene``.

The mesh is moved to a local frame centred on its bounding box before it goes to Open3D
(float32), so world coordinates far from the origin keep their precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.errors import DependencyError
from recon.types import Mesh


def smooth_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float64 area-weighted vertex normals; zero rows for unreferenced vertices."""
    cross = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    acc = np.zeros_like(vertices)
    for k in range(3):  # three corners, vectorised over faces
        np.add.at(acc, faces[:, k], cross)
    n = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.divide(acc, n, out=np.zeros_like(acc), where=n > 0)


@dataclass
class Hits:
    """Ray hits; rows without a hit have ``hit`` False and zeros elsewhere.

    Attributes:
        hit: (R,) bool.
        t: (R,) float64 distance along the (unit) ray.
        points: (R, 3) float64 world hit positions.
        normals: (R, 3) float64 unit normals interpolated from the vertex normals.
    """

    hit: np.ndarray
    t: np.ndarray
    points: np.ndarray
    normals: np.ndarray


class MeshRaycaster:
    """Cast rays against one mesh (built once, then reused for every view)."""

    def __init__(self, mesh: Mesh, threads: int = 1) -> None:
        try:
            import open3d as o3d
        except ImportError as exc:  # pragma: no cover - open3d is a dependency
            raise DependencyError("the renderer needs open3d", None, "pip install open3d") from exc
        self._o3d = o3d
        self.threads = threads
        lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
        self.offset = 0.5 * (lo + hi)
        self.vertices = mesh.vertices
        self.faces = mesh.faces
        self.vertex_normals = smooth_vertex_normals(mesh.vertices, mesh.faces)
        fn = np.cross(mesh.vertices[mesh.faces[:, 1]] - mesh.vertices[mesh.faces[:, 0]],
                      mesh.vertices[mesh.faces[:, 2]] - mesh.vertices[mesh.faces[:, 0]])
        ln = np.linalg.norm(fn, axis=1, keepdims=True)
        self.face_normals = np.divide(fn, ln, out=np.zeros_like(fn), where=ln > 0)
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor((mesh.vertices - self.offset).astype(np.float32)),
                                 o3d.core.Tensor(mesh.faces.astype(np.uint32)))

    def cast(self, origins: np.ndarray, dirs: np.ndarray) -> Hits:
        """First hits of rays (R, 3) origins and (R, 3) unit directions, world units."""
        rays = np.concatenate([origins - self.offset, dirs], axis=1).astype(np.float32)
        out = self.scene.cast_rays(self._o3d.core.Tensor(rays), nthreads=self.threads)
        t = out["t_hit"].numpy().astype(np.float64)
        hit = np.isfinite(t)
        prim = np.where(hit, out["primitive_ids"].numpy().astype(np.int64), 0)
        uv = out["primitive_uvs"].numpy().astype(np.float64)
        tri = self.faces[prim]
        w = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], -1)
        n = np.einsum("rk,rkd->rd", w, self.vertex_normals[tri])
        ln = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.where(ln > 1e-8, n / np.maximum(ln, 1e-300), self.face_normals[prim])
        pts = np.einsum("rk,rkd->rd", w, self.vertices[tri])
        t = np.where(hit, np.linalg.norm(pts - origins, axis=1), 0.0)  # float64, from the exact hit point
        hit_f = hit[:, None]
        return Hits(hit=hit, t=t, points=np.where(hit_f, pts, 0.0), normals=np.where(hit_f, n, 0.0))


__all__ = ["Hits", "MeshRaycaster", "smooth_vertex_normals"]
