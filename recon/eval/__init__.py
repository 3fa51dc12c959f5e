"""Evaluation: surface sampling and mesh-to-mesh metrics (Chamfer, F-score, NC)."""

from recon.eval.metrics import MeshMetrics, evaluate_meshes
from recon.ops.sampling import face_areas_normals, sample_surface

__all__ = ["MeshMetrics", "evaluate_meshes", "face_areas_normals", "sample_surface"]
