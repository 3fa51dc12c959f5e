"""Input/output: point clouds and meshes in common formats.

Readers (all failures raise :class:`recon.errors.InputError` with a one-line message):

* :func:`load_point_cloud` - PLY, PCD, XYZ/PTS/TXT/CSV, NPY/NPZ, LAS/LAZ, KITTI/nuScenes/
  ScanNet ``.bin``, and meshes (vertices or ``sample=N`` surface samples).
* :func:`load_mesh` - PLY (incl. triangle strips), OBJ, STL, OFF, GLB, glTF.
* :func:`describe` - counts, bounds, attributes, format details and a units guess.

Writers (atomic: a temporary sibling renamed into place):

* :func:`save_mesh` - PLY (binary), OBJ, STL, OFF, GLB.
* :func:`save_point_cloud` - PLY (binary), NPZ, XYZ.
"""

from recon.io.atomic import atomic_write
from recon.io.formats import (
    SUPPORTED_MESH_EXTENSIONS,
    SUPPORTED_POINT_EXTENSIONS,
    describe,
    load_point_cloud,
)
from recon.io.meshes import (
    MESH_WRITE_EXTENSIONS,
    POINT_WRITE_EXTENSIONS,
    load_mesh,
    sample_surface,
    save_mesh,
    save_point_cloud,
)
from recon.io.validate import validate_point_cloud

__all__ = [
    "MESH_WRITE_EXTENSIONS",
    "POINT_WRITE_EXTENSIONS",
    "SUPPORTED_MESH_EXTENSIONS",
    "SUPPORTED_POINT_EXTENSIONS",
    "atomic_write",
    "describe",
    "load_mesh",
    "load_point_cloud",
    "sample_surface",
    "save_mesh",
    "save_point_cloud",
    "validate_point_cloud",
]
