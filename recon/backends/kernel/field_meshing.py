"""Meshing of kernel fields on their sparse finest cells (via :mod:`recon.meshing`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from recon.meshing import empty_mesh, sparse_marching_mesh, trim_far_faces
from recon.types import Mesh


def mesh_field(field: Any, cells: np.ndarray, *, mise_iter: int, upsample: int, trim: bool, level: float,
               trim_distance: float) -> Mesh:
    """Marching cubes of ``field`` over finest cells, then trimming far from the input.

    Args:
        field: a kernel field with ``evaluate``, ``offset`` (3,), ``voxel_size`` and ``points``
            ((N, 3) local frame, world units).
        cells: (M, 3) int64 finest cube coordinates in the field's local frame.
        mise_iter, upsample: refinement options of :func:`recon.meshing.sparse_marching_mesh`.
        trim: delete faces with a vertex farther than ``trim_distance`` finest voxels from the points.
        level: iso-value, world units.
        trim_distance: in finest voxels.

    Returns:
        The mesh in world units (local frame shifted by ``field.offset``).
    """
    if len(cells) == 0:
        return empty_mesh()
    offset = field.offset

    def evaluate(x: np.ndarray) -> np.ndarray:
        return field.evaluate(x + offset)

    mesh = sparse_marching_mesh(evaluate, cells, np.zeros(3), field.voxel_size, level=level, upsample=upsample,
                                mise_iter=mise_iter)
    if trim and mesh.n_faces:
        mesh = trim_far_faces(mesh, field.points, trim_distance * field.voxel_size)
    return mesh.transformed(1.0, offset)
