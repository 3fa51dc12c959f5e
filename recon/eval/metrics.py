"""Mesh-to-mesh reconstruction metrics from random surface samples.

Protocol
--------
``n_samples`` points are drawn by area from each mesh (independent random
streams derived from ``seed``), and nearest neighbours are found between the two
sample sets with a cKDTree:

* accuracy     = mean distance pred sample -> nearest GT sample;
* completeness = mean distance GT sample -> nearest pred sample;
* chamfer_l1   = 0.5 * (accuracy + completeness), unsquared, world units;
* precision(tau) = fraction of pred samples within tau of the GT samples,
  recall(tau) = fraction of GT samples within tau of the pred samples,
  F(tau) = 2 P R / (P + R);
* normal consistency = 0.5 * (mean |cos| pred->GT + mean |cos| GT->pred) between
  the face normals of matched samples (orientation-agnostic).

Because both surfaces are represented by finite samples, two identical meshes
score a small positive Chamfer distance, about ``0.5 / sqrt(n_samples / area)``
(the mean nearest-neighbour spacing of the samples): 0.0056 for a unit sphere at
100k samples (area 4 pi). Report results with the sample count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.spatial import cKDTree

from recon.errors import InputError
from recon.ops.sampling import sample_surface
from recon.types import Mesh


@dataclass
class MeshMetrics:
    """Metrics of a predicted mesh against a ground-truth mesh.

    Attributes:
        chamfer_l1: 0.5 * (accuracy + completeness), world units (inf for an empty prediction).
        accuracy: mean pred -> GT nearest-sample distance, world units.
        completeness: mean GT -> pred nearest-sample distance, world units.
        normal_consistency: in [0, 1]; 1 = matched face normals parallel (sign ignored); None when
            the ground truth has no normals (a point cloud without them).
        taus: the thresholds as given (relative to the GT's longest side if ``relative``).
        tau_abs: the thresholds actually used, world units, one per ``taus``.
        precision: fraction of pred samples within tau_abs of GT, one per tau.
        recall: fraction of GT samples within tau_abs of pred, one per tau.
        fscore: harmonic mean of precision and recall, one per tau.
        relative: whether ``taus`` were relative to the GT's longest bounding-box side.
        gt_scale: the GT's longest bounding-box side, world units.
        n_samples: samples drawn per mesh.
    """

    chamfer_l1: float
    accuracy: float
    completeness: float
    normal_consistency: float | None
    taus: tuple[float, ...]
    tau_abs: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    fscore: tuple[float, ...]
    relative: bool
    gt_scale: float
    n_samples: int
    extra: dict[str, Any] = field(default_factory=dict)

    def f_at(self, tau: float) -> float:
        """F-score at the threshold ``tau`` as given (must be one of ``taus``)."""
        for t, f in zip(self.taus, self.fscore):
            if np.isclose(t, tau, rtol=1e-9, atol=0.0):
                return f
        raise KeyError(f"tau {tau} not evaluated (have {self.taus})")

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-friendly dict: scalar metrics plus ``f@tau``, ``precision@tau``,
        ``recall@tau`` and ``tau_abs@tau`` keys for each threshold as given."""
        out: dict[str, Any] = {
            "chamfer_l1": float(self.chamfer_l1),
            "accuracy": float(self.accuracy),
            "completeness": float(self.completeness),
            "normal_consistency": None if self.normal_consistency is None else float(self.normal_consistency),
            "relative": bool(self.relative),
            "gt_scale": float(self.gt_scale),
            "n_samples": int(self.n_samples),
        }
        for t, ta, p, r, f in zip(self.taus, self.tau_abs, self.precision, self.recall, self.fscore):
            key = f"{t:g}"
            out[f"f@{key}"] = float(f)
            out[f"precision@{key}"] = float(p)
            out[f"recall@{key}"] = float(r)
            out[f"tau_abs@{key}"] = float(ta)
        out.update(self.extra)
        return out


def _fscore(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    denom = p + r
    return np.where(denom > 0, 2.0 * p * r / np.where(denom > 0, denom, 1.0), 0.0)


def has_area(mesh: Mesh) -> bool:
    """True when the mesh has a face of positive, finite area."""
    if mesh.n_faces == 0 or mesh.n_vertices == 0:
        return False
    v = mesh.vertices
    f = mesh.faces
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return bool(np.isfinite(cross).all() and np.linalg.norm(cross, axis=1).sum() > 0)


def check_taus(tau: float | Sequence[float]) -> tuple[float, ...]:
    """The thresholds as a tuple of positive finite floats.

    Raises:
        InputError: no threshold, or one that is not positive and finite.
    """
    taus = tuple(float(t) for t in (np.atleast_1d(np.asarray(tau, dtype=np.float64))))
    if not taus or any(not np.isfinite(t) or t <= 0 for t in taus):
        raise InputError(f"tau must be positive, got {tau!r}")
    return taus


def longest_side(points: np.ndarray) -> float:
    """The longest bounding-box side of (N, 3) points, world units."""
    return float(np.max(points.max(axis=0) - points.min(axis=0)))


def empty_prediction(taus: tuple[float, ...], tau_abs: tuple[float, ...], relative: bool, scale: float,
                     n_samples: int, normal_consistency: float | None = 0.0) -> MeshMetrics:
    """The score of an empty (or zero-area) prediction: distances inf, P = R = F = 0."""
    zeros = (0.0,) * len(taus)
    return MeshMetrics(np.inf, np.inf, np.inf, normal_consistency, taus, tau_abs, zeros, zeros, zeros,
                       relative, scale, int(n_samples))


def score_samples(
    pred_points: np.ndarray,
    pred_normals: np.ndarray,
    gt_points: np.ndarray,
    gt_normals: np.ndarray | None,
    *,
    taus: tuple[float, ...],
    tau_abs: tuple[float, ...],
    relative: bool,
    scale: float,
    n_samples: int,
) -> MeshMetrics:
    """Nearest-neighbour metrics between two sample sets (see the module docstring).

    Args:
        pred_points: (P, 3) samples of the prediction, world units.
        pred_normals: (P, 3) unit normals of those samples.
        gt_points: (G, 3) ground-truth samples, world units.
        gt_normals: (G, 3) unit normals, or None: normal consistency is then not computed (None).
        taus, tau_abs: the thresholds as given and in world units.
        relative, scale, n_samples: recorded in the result.
    """
    d_pg, i_pg = cKDTree(gt_points).query(pred_points, k=1, workers=-1)  # pred -> gt
    d_gp, i_gp = cKDTree(pred_points).query(gt_points, k=1, workers=-1)  # gt -> pred
    acc = float(d_pg.mean())
    comp = float(d_gp.mean())
    ta = np.asarray(tau_abs)
    prec = (d_pg[None, :] < ta[:, None]).mean(axis=1)
    rec = (d_gp[None, :] < ta[:, None]).mean(axis=1)
    fs = _fscore(prec, rec)
    nc = None
    if gt_normals is not None:
        pn, gn = pred_normals.astype(np.float64), gt_normals.astype(np.float64)
        cos_pg = np.abs(np.einsum("ij,ij->i", pn, gn[i_pg]))
        cos_gp = np.abs(np.einsum("ij,ij->i", gn, pn[i_gp]))
        nc = 0.5 * (float(cos_pg.mean()) + float(cos_gp.mean()))
    return MeshMetrics(
        chamfer_l1=0.5 * (acc + comp),
        accuracy=acc,
        completeness=comp,
        normal_consistency=nc,
        taus=taus,
        tau_abs=tau_abs,
        precision=tuple(float(x) for x in prec),
        recall=tuple(float(x) for x in rec),
        fscore=tuple(float(x) for x in fs),
        relative=relative,
        gt_scale=scale,
        n_samples=int(n_samples),
    )


def evaluate_meshes(
    pred: Mesh,
    gt: Mesh,
    *,
    n_samples: int = 100_000,
    tau: float | Sequence[float] = 0.01,
    relative: bool = True,
    seed: int = 0,
) -> MeshMetrics:
    """Compare a predicted mesh with a ground-truth mesh (see module docstring).

    Args:
        pred: reconstructed mesh, same frame and units as ``gt``.
        gt: reference mesh; must have a face of positive area.
        n_samples: points sampled from each surface.
        tau: one threshold or several for precision / recall / F-score.
        relative: if True, each tau is a fraction of the GT's longest bounding-box
            side; if False, tau is in world units.
        seed: seed of the two sampling streams.

    Returns:
        The :class:`MeshMetrics`. An empty (or zero-area) prediction gives
        chamfer/accuracy/completeness = inf and P = R = F = NC = 0.

    Raises:
        InputError: the GT mesh is empty or has zero area; a tau is not positive.
    """
    taus = check_taus(tau)
    if not has_area(gt):
        raise InputError("ground-truth mesh is empty or has zero area")
    scale = longest_side(gt.vertices[np.unique(gt.faces)])  # ignore unreferenced vertices
    tau_abs = tuple(t * scale if relative else t for t in taus)
    ss = np.random.SeedSequence(int(seed))
    gt_rng, pred_rng = (np.random.default_rng(s) for s in ss.spawn(2))
    if not has_area(pred):
        return empty_prediction(taus, tau_abs, relative, scale, n_samples)
    gp, gn = sample_surface(gt, n_samples, gt_rng)
    pp, pn = sample_surface(pred, n_samples, pred_rng)
    return score_samples(pp, pn, gp, gn, taus=taus, tau_abs=tau_abs, relative=relative, scale=scale,
                         n_samples=n_samples)


__all__ = ["MeshMetrics", "check_taus", "empty_prediction", "evaluate_meshes", "has_area", "longest_side",
           "score_samples"]
