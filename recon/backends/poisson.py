"""Screened Poisson reconstruction through Open3D (the baseline backend).

The pipeline hands this backend a recentred cloud with oriented normals; the
result is a mesh in the same frame. Low-density vertices (where the octree had
few samples, typically the closing "bubble" over holes and open boundaries) are
trimmed by a density quantile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recon.config import MAX_THREADS, check_limits
from recon.errors import ConfigError, EmptyResultError, InputError
from recon.progress import NULL_PROGRESS, Progress
from recon.types import Mesh, PointCloud


@dataclass
class PoissonConfig:
    """Options of the ``poisson`` backend (``recon config show poisson`` prints them)."""

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"depth": (1, 16), "scale": (1.0, 10.0)}

    depth: int = 8
    """Maximum octree depth; the finest grid is at most 2^depth cells per side of the reconstruction
    cube (8: ~256^3; each step up costs about 4x the time and memory)."""
    scale: float = 1.1
    """Ratio of the reconstruction cube's diameter to the samples' bounding cube (> 1 pads)."""
    width: float = 0.0
    """Target width of the finest octree cell in world units; when > 0 it replaces `depth`."""
    linear_fit: bool = False
    """Place iso-vertices by linear interpolation of the implicit function (smoother, less accurate)."""
    density_quantile: float = 0.02
    """Remove vertices whose Open3D density is below this quantile of all densities, in [0, 1); trims
    surface invented far from the samples. 0 disables trimming."""
    n_threads: int = -1
    """Threads for Open3D's solver; -1 uses all cores."""

    def __post_init__(self) -> None:
        check_limits(self, self.LIMITS, "poisson.")
        if not self.width >= 0:
            raise ConfigError(f"poisson.width must be >= 0, got {self.width}", None, "use 0 to set the depth instead")
        if not 0.0 <= self.density_quantile < 1.0:
            raise ConfigError(f"poisson.density_quantile must be in [0, 1), got {self.density_quantile}", None,
                              "use 0.02, or 0 to disable trimming")
        if self.n_threads == 0 or not -1 <= self.n_threads <= MAX_THREADS:
            raise ConfigError(f"poisson.n_threads must be -1 or 1..{MAX_THREADS}, got {self.n_threads}", None, "use -1")


class PoissonBackend:
    """Open3D screened Poisson reconstruction with density trimming."""

    def __init__(self, config: PoissonConfig | None = None):
        self.config = config if config is not None else PoissonConfig()
        #: (V,) float64 Open3D densities of the kept vertices after the last fit.
        self.last_densities: np.ndarray | None = None

    def fit(self, cloud: PointCloud, *, device: str = "cpu", progress: Progress = NULL_PROGRESS) -> Mesh:
        """Reconstruct a mesh from an oriented point cloud.

        Args:
            cloud: (N, 3) points (recentred by the pipeline) with (N, 3) normals.
            device: ignored; Open3D's Poisson runs on the CPU.
            progress: receives "poisson" and "poisson trim" stages.

        Returns:
            The mesh in the cloud's frame: (V, 3) float64 vertices, (F, 3) int64 faces,
            (V, 3) float32 vertex normals.

        Raises:
            InputError: no normals, too few points, non-finite values.
            EmptyResultError: Poisson (or the trimming) produced no triangles.
        """
        import open3d as o3d

        cfg = self.config
        if cloud.normals is None:
            raise InputError("the poisson backend needs oriented normals", cloud.source,
                             "estimate normals first (the pipeline does this unless disabled)")
        pts = np.asarray(cloud.points, dtype=np.float64)
        nrm = np.asarray(cloud.normals, dtype=np.float64)
        if pts.shape[0] < 4:
            raise InputError(f"poisson needs at least 4 points, got {pts.shape[0]}", cloud.source)
        if nrm.shape != pts.shape:
            raise InputError(f"normals have shape {nrm.shape} but points {pts.shape}", cloud.source)
        if not (np.isfinite(pts).all() and np.isfinite(nrm).all()):
            raise InputError("points or normals contain NaN or infinite values", cloud.source,
                             "drop invalid points before reconstruction")

        progress.update("poisson", 0.0, f"depth {cfg.depth}, {len(pts)} points")
        pcd = o3d.geometry.PointCloud()
        pcd.points = o3d.utility.Vector3dVector(pts)
        pcd.normals = o3d.utility.Vector3dVector(nrm)
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
                pcd, depth=int(cfg.depth), width=float(cfg.width), scale=float(cfg.scale),
                linear_fit=bool(cfg.linear_fit), n_threads=int(cfg.n_threads))
        densities = np.asarray(dens, dtype=np.float64)
        progress.update("poisson trim", 0.9)
        if cfg.density_quantile > 0 and densities.size:
            cut = np.quantile(densities, cfg.density_quantile)
            mesh.remove_vertices_by_mask(densities < cut)
            densities = densities[densities >= cut]
        # remove_vertices_by_mask drops the faces and vertices; unreferenced ones can
        # remain from the solver itself, so clean up with an explicit index map.
        verts = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.triangles, dtype=np.int64).reshape(-1, 3)
        vn = np.asarray(mesh.vertex_normals, dtype=np.float32) if mesh.has_vertex_normals() else None
        used = np.zeros(len(verts), dtype=bool)
        used[faces.ravel()] = True
        remap = np.cumsum(used) - 1
        faces = remap[faces]
        verts = verts[used]
        if vn is not None and len(vn) == len(used):
            vn = vn[used]
        else:
            vn = None
        self.last_densities = densities[used] if densities.size == len(used) else None
        progress.update("poisson trim", 1.0, f"{len(faces)} faces")
        if len(faces) == 0:
            raise EmptyResultError("poisson produced an empty mesh", cloud.source,
                                   "check the normals' orientation, lower poisson.density_quantile or the depth")
        return Mesh(verts, faces, vertex_normals=vn)


__all__ = ["PoissonBackend", "PoissonConfig"]
