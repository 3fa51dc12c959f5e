"""Meshing of implicit fields: dense reference, sparse marching cubes with MISE refinement,
trimming and clean-up.

Sign convention (see :mod:`recon.field`): fields are negative inside; output faces are
counter-clockwise seen from the positive (outside) side.
"""

from recon.meshing.cleanup import (
    boundary_edge_count,
    euler_characteristic,
    face_components,
    is_watertight,
    mesh_volume,
    remove_small_components,
    remove_unreferenced_vertices,
)
from recon.meshing.dense import dense_marching_cubes, mesh_field_dense
from recon.meshing.sparse import empty_mesh, polygonise, sparse_marching_mesh
from recon.meshing.trim import trim_far_faces

__all__ = [
    "boundary_edge_count",
    "dense_marching_cubes",
    "empty_mesh",
    "euler_characteristic",
    "face_components",
    "is_watertight",
    "mesh_field_dense",
    "mesh_volume",
    "polygonise",
    "remove_small_components",
    "remove_unreferenced_vertices",
    "sparse_marching_mesh",
    "trim_far_faces",
]
