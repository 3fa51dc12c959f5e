"""How the commands read their INPUT argument: a posed-image set or a point cloud / mesh file."""

from __future__ import annotations

from pathlib import Path

from recon.io.formats import read_any
from recon.io.meshes import MESH_READ_EXTENSIONS, load_mesh, read_mesh_any
from recon.io.validate import validate_point_cloud
from recon.types import Mesh, PointCloud

#: camera files that name a posed-image set on their own
POSED_IMAGE_FILES = ("cameras.npz", "cameras.txt", "cameras.bin")


def is_posed_images(path: Path) -> bool:
    """A folder, or a camera file that names a posed-image set (transforms*.json, *_par.txt, cameras.*)."""
    name = path.name.lower()
    return path.is_dir() or (name.startswith("transforms") and name.endswith(".json")) \
        or name.endswith("_par.txt") or name in POSED_IMAGE_FILES


def load_checked_cloud(path: Path, sample: int | None = None,
                       drop_normals: bool = False) -> tuple[PointCloud, list[str]]:
    """Read and validate a cloud (or a mesh as points); returns (cloud, notes for the user).

    Args:
        path: any point or mesh file :func:`recon.io.load_point_cloud` reads.
        sample: ``--sample``: N area-weighted surface samples of a mesh; for a point cloud a
            seeded random N-point subset (all points when it has N or fewer, said in a note).
        drop_normals: discard the file's normals before validation, so broken normals cannot
            stop a command that estimates new ones.

    Returns:
        The validated cloud, points (N, 3) float64 in the file's units, and the notes
        (rows dropped, the subset taken).
    """
    cloud, details = read_any(path, sample=sample)
    notes: list[str] = []
    if sample is not None and "mesh_faces" not in details:
        if "subsampled_to" in details:
            notes.append(f"--sample {sample}: kept a random {len(cloud):,} of the cloud's points (seeded)")
        else:
            notes.append(f"--sample {sample}: the cloud has only {len(cloud):,} points; all are used")
    if drop_normals and cloud.normals is not None:
        cloud = cloud.with_normals(None)
    cloud, checked = validate_point_cloud(cloud, path)
    return cloud, notes + checked


def load_mesh_or_cloud(path: Path) -> Mesh | PointCloud:
    """A mesh when the file has faces, else the validated point cloud (a PLY or OBJ of points included).

    Raises:
        InputError: missing, unreadable or unusable file (the message names it).
    """
    ext = path.suffix.lower()
    if ext in MESH_READ_EXTENSIONS and ext != ".ply":  # PLY: read_any tells a mesh from a cloud (a mesh is read again)
        mesh, _ = read_mesh_any(path)
        if mesh.n_faces > 0:
            return mesh
    cloud, details = read_any(path)
    if details.get("mesh_faces"):
        return load_mesh(path)
    cloud, _ = validate_point_cloud(cloud, path)
    return cloud


__all__ = ["POSED_IMAGE_FILES", "is_posed_images", "load_checked_cloud", "load_mesh_or_cloud"]
