"""Mesh-to-point-cloud metrics: a reconstruction scored against a ground-truth scan.

The protocol is that of :mod:`recon.eval.metrics` with the ground-truth surface
samples replaced by the cloud's own points: ``n_samples`` area-weighted samples are
drawn from the predicted mesh, and the cloud contributes its points (a seeded random
subset of ``n_samples`` when it has more). Chamfer-L1, accuracy, completeness and
precision / recall / F-score follow as for two meshes. Normal consistency needs
normals on both sides, so it is computed only when the cloud has them (None otherwise).

The Chamfer floor now depends on the cloud's point spacing as well as ``n_samples``:
report results with both.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from recon.errors import InputError
from recon.eval.metrics import MeshMetrics, check_taus, empty_prediction, has_area, longest_side, score_samples
from recon.ops.sampling import sample_surface
from recon.types import Mesh

#: the ``gt_kind`` recorded in :attr:`MeshMetrics.extra` for a point-cloud ground truth
POINT_CLOUD_GT = "point cloud"


def evaluate_mesh_against_points(
    pred: Mesh,
    gt_points: np.ndarray,
    gt_normals: np.ndarray | None = None,
    *,
    n_samples: int = 100_000,
    tau: float | Sequence[float] = 0.01,
    relative: bool = True,
    seed: int = 0,
) -> MeshMetrics:
    """Compare a predicted mesh with a ground-truth point cloud.

    Args:
        pred: reconstructed mesh, same frame and units as the cloud.
        gt_points: (N, 3) ground-truth points, world units, finite.
        gt_normals: (N, 3) unit normals of those points, or None (no normal consistency).
        n_samples: samples drawn from ``pred``; also the most cloud points used.
        tau: one threshold or several for precision / recall / F-score.
        relative: if True, each tau is a fraction of the cloud's longest bounding-box side.
        seed: seed of the two random streams (cloud subset, mesh samples).

    Returns:
        The :class:`MeshMetrics`; ``extra`` holds ``gt_kind`` ("point cloud") and
        ``gt_points`` (the cloud points used). An empty prediction gives distances inf and
        P = R = F = 0 (NC 0 when the cloud has normals).

    Raises:
        InputError: the cloud is empty, not finite, all one point, or its normals do not
            match its points; a tau is not positive.
    """
    taus = check_taus(tau)
    pts = np.asarray(gt_points, dtype=np.float64).reshape(-1, 3)
    if pts.shape[0] == 0 or not np.isfinite(pts).all():
        raise InputError("ground-truth point cloud is empty or has non-finite points")
    if gt_normals is not None and np.shape(gt_normals) != pts.shape:
        raise InputError(f"ground-truth normals have shape {np.shape(gt_normals)}, points {pts.shape}")
    scale = longest_side(pts)
    if not scale > 0:
        raise InputError("ground-truth point cloud has zero extent (all points identical)")
    tau_abs = tuple(t * scale if relative else t for t in taus)
    gt_rng, pred_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2))
    keep = np.arange(pts.shape[0])
    if pts.shape[0] > n_samples:
        keep = np.sort(gt_rng.choice(pts.shape[0], size=int(n_samples), replace=False))
    gp = pts[keep]
    gn = None if gt_normals is None else np.asarray(gt_normals, dtype=np.float64)[keep]
    extra = {"gt_kind": POINT_CLOUD_GT, "gt_points": int(gp.shape[0])}
    if not has_area(pred):
        m = empty_prediction(taus, tau_abs, relative, scale, n_samples,
                             normal_consistency=None if gn is None else 0.0)
    else:
        pp, pn = sample_surface(pred, n_samples, pred_rng)
        m = score_samples(pp, pn, gp, gn, taus=taus, tau_abs=tau_abs, relative=relative, scale=scale,
                          n_samples=n_samples)
    m.extra.update(extra)
    return m


__all__ = ["POINT_CLOUD_GT", "evaluate_mesh_against_points"]
