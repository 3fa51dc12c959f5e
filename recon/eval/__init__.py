"""Evaluation: surface sampling and reconstruction metrics (Chamfer, F-score, NC) against a
ground-truth mesh or a ground-truth point cloud."""

from recon.eval.metrics import MeshMetrics, evaluate_meshes
from recon.eval.point_gt import evaluate_mesh_against_points
from recon.ops.sampling import face_areas_normals, sample_surface

__all__ = ["MeshMetrics", "evaluate_mesh_against_points", "evaluate_meshes", "face_areas_normals", "sample_surface"]
