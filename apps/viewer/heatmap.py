"""Distance-to-ground-truth heat map values and the metrics shown in the corner text."""

from __future__ import annotations

import numpy as np
import pyvista as pv

from recon.types import Mesh, PointCloud

from recon_apps.viewer.layers import mesh_to_polydata


def distance_to_mesh(points: np.ndarray, gt: Mesh) -> np.ndarray:
    """Unsigned distance (float64, world units) from each point to the GT *surface*.

    Exact point-to-triangle distances through VTK's cell locator
    (``vtkImplicitPolyDataDistance``), not distances to the GT's vertices, so a coarse
    GT does not inflate the error.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        return np.zeros(0)
    surface = mesh_to_polydata(gt)
    probe = pv.PolyData(pts)
    out = probe.compute_implicit_distance(surface, inplace=False)
    return np.abs(np.asarray(out.point_data["implicit_distance"], dtype=np.float64))


def metrics_text(pred: Mesh | PointCloud, gt: Mesh, *, n_samples: int = 50_000, tau: float = 0.01) -> str:
    """Corner text: Chamfer-L1, F-score at ``tau`` (fraction of the GT's longest side) and
    normal consistency from :func:`recon.eval.evaluate_meshes` for a mesh; mean and 95th
    percentile distance to the GT surface for a point cloud."""
    if isinstance(pred, PointCloud):
        d = distance_to_mesh(pred.points, gt)
        return f"to GT: mean {d.mean():.4g}  p95 {np.percentile(d, 95):.4g}  max {d.max():.4g}"
    from recon.eval import evaluate_meshes

    m = evaluate_meshes(pred, gt, n_samples=n_samples, tau=tau)
    return (f"Chamfer-L1 {m.chamfer_l1:.4g}\n"
            f"F@{tau:g} {m.fscore[0]:.3f} (tau {m.tau_abs[0]:.3g})\n"
            f"normal consistency {m.normal_consistency:.3f}\n"
            f"{n_samples:,} samples")


__all__ = ["distance_to_mesh", "metrics_text"]
