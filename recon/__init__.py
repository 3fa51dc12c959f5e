"""recon: 3D surface reconstruction from point clouds and posed images.

The two-stage API mirrors NKSR's: a backend turns a point cloud into an implicit
:class:`~recon.field.Field` (or directly into a :class:`~recon.types.Mesh`), and
the field is meshed on demand.

    >>> from recon.io import load_point_cloud, save_mesh
    >>> from recon.pipeline import reconstruct
    >>> cloud = load_point_cloud("scan.ply")
    >>> result = reconstruct(cloud, backend="poisson")
    >>> save_mesh(result.mesh, "mesh.ply")
"""

from recon.errors import ConfigError, InputError, ReconError
from recon.types import Mesh, PointCloud, Scene

__all__ = ["ConfigError", "InputError", "Mesh", "PointCloud", "ReconError", "Scene"]
__version__ = "0.1.0"
