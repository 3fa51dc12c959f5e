"""Mesh reading (trimesh plus our PLY reader), surface sampling and the writers.

* PLY meshes go through :mod:`recon.io.ply` (so ``tristrips`` and polygon faces work);
  every other format through trimesh, geometry only (materials and textures are skipped, so no
  texture is decoded and no file named inside the mesh is opened). Scenes and multi-body
  files are concatenated into one mesh (node transforms applied). STL vertices, stored once
  per triangle, are merged.
* mesh inputs can be turned into area-weighted, seeded samples with face normals
  (:func:`recon.ops.sampling.sample_surface`).
* :func:`save_mesh` / :func:`save_point_cloud` write through :func:`atomic_write`; PLY is
  written by our own binary little-endian writer so that coordinates beyond 1e5 world
  units are stored as double.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from recon.errors import EmptyResultError, InputError
from recon.io import ply as plymod
from recon.io._common import check_readable, guarded, quiet_logger
from recon.io.atomic import atomic_write
from recon.ops.sampling import sample_surface
from recon.types import Mesh, PointCloud

MESH_READ_EXTENSIONS = (".ply", ".obj", ".stl", ".off", ".glb", ".gltf")
MESH_WRITE_EXTENSIONS = (".ply", ".obj", ".stl", ".off", ".glb")
POINT_WRITE_EXTENSIONS = (".ply", ".npz", ".xyz")
LARGE_COORDINATE = 1e5
_TRIMESH_TYPES = {".obj": "obj", ".stl": "stl", ".off": "off", ".glb": "glb", ".gltf": "gltf"}


def _ext(path: str | os.PathLike) -> str:
    return Path(path).suffix.lower()


def _read_trimesh(path: Path) -> Any:
    import trimesh

    ext = _ext(path)

    def load() -> Any:
        # only geometry (and vertex colours) is used: skipping materials means no texture is decoded and
        # no material file named inside the mesh is opened; warnings (an odd file) must not reach stderr
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = trimesh.load(str(path), file_type=_TRIMESH_TYPES[ext], force="mesh", process=False,
                               skip_materials=True)
        if isinstance(obj, list):  # very old trimesh returned lists for multi-body STL
            obj = trimesh.util.concatenate(obj)
        return obj

    fix = f"check the file opens in a mesh viewer; re-export it as binary PLY or {ext.upper().lstrip('.')}"
    with quiet_logger("trimesh"):
        return guarded(path, f"cannot read {ext.lstrip('.').upper()} mesh", fix, load)


def read_mesh_any(path: str | os.PathLike) -> tuple[Mesh, dict[str, Any]]:
    """Read a mesh (possibly with zero faces) and a format description.

    Raises:
        InputError: missing file, unknown extension, unreadable or corrupt file.
    """
    p = check_readable(path)
    ext = _ext(p)
    if ext == ".ply":
        header, elements = plymod.read_ply(p)
        return plymod.ply_to_mesh(p, header, elements), plymod.header_info(header)
    if ext not in _TRIMESH_TYPES:
        raise InputError(f"unknown mesh extension {ext or '(none)'!r}", p, f"use one of {', '.join(MESH_READ_EXTENSIONS)}")
    if p.stat().st_size == 0:
        raise InputError("empty file", p, "check the file was fully written")
    tm = _read_trimesh(p)

    def convert() -> Mesh:
        vertices = np.asarray(getattr(tm, "vertices", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
        faces = np.asarray(getattr(tm, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
        if ext == ".stl" and faces.size:
            unique, inverse = np.unique(vertices, axis=0, return_inverse=True)
            vertices, faces = unique, inverse.reshape(-1)[faces]
        colors = None
        visual = getattr(tm, "visual", None)
        if visual is not None and getattr(visual, "kind", None) == "vertex":
            vc = np.asarray(visual.vertex_colors)
            if vc.shape[0] == vertices.shape[0]:
                colors = vc[:, :3].astype(np.float32) / 255.0
        return Mesh(vertices, faces, vertex_colors=colors)

    mesh = guarded(p, "cannot convert mesh", "re-export it as binary PLY", convert)
    if mesh.n_vertices and not np.all(np.isfinite(mesh.vertices)):
        raise InputError("mesh has non-finite vertex coordinates", p, "repair the mesh (remove NaN/Inf vertices) and re-export it")
    if mesh.faces.size and (mesh.faces.min() < 0 or mesh.faces.max() >= mesh.n_vertices):
        raise InputError("mesh face refers to a vertex that does not exist", p, "repair and re-export the mesh")
    return mesh, {"format": f"{ext.lstrip('.').upper()} (trimesh)"}


def load_mesh(path: str | os.PathLike) -> Mesh:
    """Load a triangle mesh from ``.ply .obj .stl .off .glb .gltf``.

    PLY ``tristrips`` elements are decoded (alternate winding, degenerate joins dropped);
    polygon faces are fan-triangulated; multi-body files are concatenated.

    Returns:
        The mesh, vertices in the file's units.

    Raises:
        InputError: missing/unreadable/corrupt file, unknown extension, or a mesh without faces.
    """
    mesh, _ = read_mesh_any(path)
    if mesh.n_vertices == 0 or mesh.n_faces == 0:
        raise InputError(
            f"empty mesh ({mesh.n_vertices} vertices, {mesh.n_faces} faces)",
            path,
            "check the export settings; to read a point cloud use load_point_cloud",
        )
    return mesh


def vertex_normals(mesh: Mesh) -> np.ndarray | None:
    """Area-weighted vertex normals (V, 3) float32, or None if any vertex gets a zero normal."""
    v = mesh.vertices - mesh.vertices.mean(axis=0)
    cross = np.cross(v[mesh.faces[:, 1]] - v[mesh.faces[:, 0]], v[mesh.faces[:, 2]] - v[mesh.faces[:, 0]])
    acc = np.zeros((mesh.n_vertices, 3), dtype=np.float64)
    idx = mesh.faces.reshape(-1)
    rep = np.repeat(cross, 3, axis=0)
    for k in range(3):  # three components, not a loop over points
        acc[:, k] = np.bincount(idx, weights=rep[:, k], minlength=mesh.n_vertices)
    length = np.linalg.norm(acc, axis=1)
    if not np.all(length > 1e-300):
        return None
    return (acc / length[:, None]).astype(np.float32)


def mesh_to_cloud(mesh: Mesh, path: str | os.PathLike, sample: int | None, seed: int) -> PointCloud:
    """A mesh given as point input: its vertices (with area-weighted normals when every vertex
    has one), or ``sample`` area-weighted surface samples with face normals."""
    src = os.fspath(path)
    if sample is None:
        if mesh.n_vertices == 0:
            raise InputError("mesh has no vertices", path, "check the export settings")
        normals = mesh.vertex_normals
        if mesh.n_faces and normals is None:
            normals = vertex_normals(mesh)
        return PointCloud(mesh.vertices, normals, mesh.vertex_colors, source=src)
    if mesh.n_faces == 0:
        raise InputError("cannot sample a surface from a mesh with no faces", path, "drop --sample to use the vertices")
    try:
        pts, nrm = sample_surface(mesh, int(sample), seed)
    except InputError:
        raise InputError("cannot sample a mesh of zero surface area", path, "check the mesh; drop --sample to use its vertices") from None
    return PointCloud(pts, nrm, source=src, attrs={})


# --------------------------------------------------------------------------- writers


def _coord_dtype(xyz: np.ndarray) -> type:
    big = xyz.size and float(np.nanmax(np.abs(xyz))) > LARGE_COORDINATE
    return np.float64 if big else np.float32


def save_mesh(mesh: Mesh, path: str | os.PathLike) -> None:
    """Write ``mesh`` to ``.ply`` (binary LE), ``.obj``, ``.stl``, ``.off`` or ``.glb`` atomically.

    PLY vertices are double when any |coordinate| > 1e5 (georeferenced meshes keep mm),
    float otherwise; vertex normals (float) and colours (uchar ``red green blue``) are written when
    present. Vertex colours also go to OBJ (``v x y z r g b``, r g b in [0, 1]) and GLB (``COLOR_0``);
    every format stores them with 8 bits per channel (rounded).

    Raises:
        InputError: unknown extension or missing output directory.
        EmptyResultError: the mesh has no faces.
    """
    ext = _ext(path)
    if ext not in MESH_WRITE_EXTENSIONS:
        raise InputError(f"unknown mesh output extension {ext or '(none)'!r}", path, f"use one of {', '.join(MESH_WRITE_EXTENSIONS)}")
    if mesh.n_faces == 0 or mesh.n_vertices == 0:
        raise EmptyResultError("refusing to write an empty mesh", path, "check the reconstruction settings")
    with atomic_write(path) as tmp:
        if ext == ".ply":
            v = mesh.vertices
            dt = _coord_dtype(v)
            fields: list[tuple[str, np.ndarray]] = [(k, v[:, i].astype(dt)) for i, k in enumerate("xyz")]
            if mesh.vertex_normals is not None:
                fields += [(k, mesh.vertex_normals[:, i].astype(np.float32)) for i, k in enumerate(("nx", "ny", "nz"))]
            if mesh.vertex_colors is not None:
                c8 = colours_to_uint8(mesh.vertex_colors)
                fields += [(k, c8[:, i]) for i, k in enumerate(("red", "green", "blue"))]
            plymod.write_ply(tmp, fields, mesh.faces, comments=("written by recon",))
        else:
            _to_trimesh(mesh).export(str(tmp), file_type=ext.lstrip("."))


def colours_to_uint8(colors: np.ndarray) -> np.ndarray:
    """(V, 3) float RGB in [0, 1] -> (V, 3) uint8, rounded to the nearest step (NaN -> 0)."""
    return np.round(np.clip(np.nan_to_num(np.asarray(colors, np.float64)), 0, 1) * 255).astype(np.uint8)


def _to_trimesh(mesh: Mesh) -> Any:
    """A trimesh for the OBJ / GLB / OFF / STL writers: vertex colours rounded to 8 bits and opaque.

    trimesh writes them as ``v x y z r g b`` in OBJ (floats in [0, 1]) and as the ``COLOR_0`` vertex
    attribute in GLB; OFF and STL drop them.
    """
    import trimesh

    kwargs: dict[str, Any] = {}
    if mesh.vertex_colors is not None:
        rgb = colours_to_uint8(mesh.vertex_colors)
        kwargs["vertex_colors"] = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], 1)
    if mesh.vertex_normals is not None:
        kwargs["vertex_normals"] = mesh.vertex_normals
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False, **kwargs)


_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLY_OK = {"i1", "u1", "i2", "u2", "i4", "u4", "f4", "f8"}


def save_point_cloud(cloud: PointCloud, path: str | os.PathLike) -> None:
    """Write ``cloud`` to ``.ply`` (binary LE), ``.npz`` or ``.xyz`` atomically.

    PLY: ``x y z`` double when any |coordinate| > 1e5 else float; ``nx ny nz`` float;
    ``red green blue`` uchar; sensors as ``sensor_x sensor_y sensor_z`` double; 1-D numeric
    ``attrs`` as extra properties (int64 as double, bool as uchar).
    NPZ: ``points``, ``normals``, ``colors`` (float32 0..1), ``sensors`` and every attr.
    XYZ: ``x y z [nx ny nz] [r g b]`` text, colours as integers 0..255.

    Raises:
        InputError: unknown extension or missing output directory.
    """
    ext = _ext(path)
    if ext not in POINT_WRITE_EXTENSIONS:
        raise InputError(f"unknown point cloud output extension {ext or '(none)'!r}", path, f"use one of {', '.join(POINT_WRITE_EXTENSIONS)}")
    n = len(cloud)
    with atomic_write(path) as tmp:
        if ext == ".ply":
            p = cloud.points
            dt = _coord_dtype(p)
            fields: list[tuple[str, np.ndarray]] = [(k, p[:, i].astype(dt)) for i, k in enumerate("xyz")]
            if cloud.normals is not None:
                fields += [(k, cloud.normals[:, i].astype(np.float32)) for i, k in enumerate(("nx", "ny", "nz"))]
            if cloud.colors is not None:
                c8 = np.round(np.clip(cloud.colors, 0, 1) * 255).astype(np.uint8)
                fields += [(k, c8[:, i]) for i, k in enumerate(("red", "green", "blue"))]
            if cloud.sensors is not None:
                fields += [(k, cloud.sensors[:, i]) for i, k in enumerate(("sensor_x", "sensor_y", "sensor_z"))]
            taken = {f[0] for f in fields}
            for name, arr in cloud.attrs.items():
                a = np.asarray(arr)
                if a.ndim != 1 or a.shape[0] != n or not _ATTR_NAME.match(name) or name in taken or a.dtype.kind not in "biuf":
                    continue
                if a.dtype.kind == "b":
                    a = a.astype(np.uint8)
                elif a.dtype.str[1:] not in _PLY_OK:
                    a = a.astype(np.float64)
                fields.append((name, a))
            plymod.write_ply(tmp, fields, None, comments=("written by recon",))
        elif ext == ".npz":
            arrays: dict[str, np.ndarray] = {"points": cloud.points}
            for key, val in (("normals", cloud.normals), ("colors", cloud.colors), ("sensors", cloud.sensors)):
                if val is not None:
                    arrays[key] = val
            for name, arr in cloud.attrs.items():
                if name not in arrays and _ATTR_NAME.match(name):
                    arrays[name] = np.asarray(arr)
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        else:
            cols = [cloud.points]
            fmt = ["%.17g"] * 3
            if cloud.normals is not None:
                cols.append(cloud.normals.astype(np.float64))
                fmt += ["%.9g"] * 3
            if cloud.colors is not None:
                cols.append(np.round(np.clip(cloud.colors, 0, 1) * 255))
                fmt += ["%d"] * 3
            np.savetxt(tmp, np.concatenate(cols, axis=1), fmt=" ".join(fmt))
