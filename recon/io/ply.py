"""PLY files: :func:`read_ply`, the cloud and mesh built from them, and a binary PLY writer.

Reads ``ascii``, ``binary_little_endian`` and ``binary_big_endian`` files with any elements,
scalar properties and list properties (header: :mod:`recon.io.ply_header`; bodies, with every
declared count checked against the file before allocating: :mod:`recon.io.ply_body`).

Cloud semantics (see :func:`ply_to_cloud`): vertex ``x y z`` (float or double), optional
``nx ny nz`` (or ``normal_x`` ...), optional ``red green blue`` (uchar -> /255, ushort ->
/65535, float as is); every other vertex scalar is kept in ``attrs``. A file with a
``face`` or ``tristrips`` element is a mesh (see :func:`ply_to_mesh`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io._common import colors_to_unit, read_bytes
from recon.io.ply_body import read_ascii, read_binary
from recon.io.ply_header import (
    FIX_CORRUPT,
    FORMATS,
    NAME_OF,
    PLY_TYPES,
    PlyElement,
    PlyHeader,
    PlyList,
    PlyProperty,
    parse_header,
)
from recon.types import Mesh, PointCloud


def read_ply(path: str | os.PathLike, wanted: set[str] | None = None) -> tuple[PlyHeader, dict[str, dict[str, Any]]]:
    """Read a PLY file into ``{element: {property: array or PlyList}}``.

    Args:
        path: the file.
        wanted: element names to keep (all are still walked); None keeps all.

    Raises:
        InputError: any problem with the file.
    """
    data = read_bytes(path)
    header = parse_header(data, path)
    if header.format == "ascii":
        return header, read_ascii(data, header, path, wanted)
    return header, read_binary(data, header, path, wanted)


_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))
_COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
MESH_ELEMENTS = ("face", "tristrips")


def _vertex_arrays(
    vertex: dict[str, Any], path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, dict[str, np.ndarray]]:
    """points (N,3) f8, normals (N,3) or None, colours (N,3) f4 in [0,1] or None, sensors (N,3) or None, attrs."""
    if not all(k in vertex for k in ("x", "y", "z")):
        raise InputError("PLY vertex element lacks x, y, z properties", path, "export the vertex positions as x y z")
    pts = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in ("x", "y", "z")], axis=1)
    used = {"x", "y", "z"}
    normals = colors = None
    for names in _NORMAL_NAMES:
        if all(k in vertex and not isinstance(vertex[k], PlyList) for k in names):
            normals = np.stack([np.asarray(vertex[k], dtype=np.float32) for k in names], axis=1)
            used.update(names)
            break
    for names in _COLOR_NAMES:
        if all(k in vertex and not isinstance(vertex[k], PlyList) for k in names):
            raw = np.stack([vertex[k] for k in names], axis=1)
            colors = colors_to_unit(raw)
            used.update(names)
            break
    sensors = None
    names = ("sensor_x", "sensor_y", "sensor_z")
    if all(k in vertex and not isinstance(vertex[k], PlyList) for k in names):
        sensors = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in names], axis=1)
        used.update(names)
    attrs = {k: np.asarray(v) for k, v in vertex.items() if k not in used and not isinstance(v, PlyList)}
    return pts, normals, colors, sensors, attrs


def header_info(header: PlyHeader) -> dict[str, Any]:
    return {
        "format": f"PLY {header.format}",
        "elements": {e.name: e.count for e in header.elements},
        "vertex_properties": [p.name for p in (header.element("vertex") or PlyElement("vertex", 0)).properties],
        "comments": header.comments[:10],
    }


def ply_is_mesh(header: PlyHeader) -> bool:
    """True when the header declares a non-empty ``face`` or ``tristrips`` element."""
    return any(e.name in MESH_ELEMENTS and e.count > 0 for e in header.elements)


def ply_to_cloud(path: str | os.PathLike, header: PlyHeader, elements: dict[str, dict[str, Any]]) -> PointCloud:
    """Build a :class:`PointCloud` from the vertex element of a parsed PLY."""
    vertex = elements.get("vertex")
    if vertex is None:
        raise InputError("PLY file has no vertex element", path, "export the points as a 'vertex' element")
    pts, normals, colors, sensors, attrs = _vertex_arrays(vertex, path)
    return PointCloud(pts, normals, colors, sensors, attrs=attrs, source=os.fspath(path))


def decode_tristrips(strips: np.ndarray) -> np.ndarray:
    """Triangles from concatenated triangle strips separated by -1.

    Strip ``(a, b, c, d, e)`` gives ``(a,b,c), (c,b,d), (c,d,e)``: every other triangle is
    flipped to keep a consistent winding. Triangles with a repeated vertex (used to join
    strips) are dropped.

    Args:
        strips: (K,) integer vertex indices with -1 between strips.

    Returns:
        (F, 3) int64 faces.
    """
    s = np.asarray(strips, dtype=np.int64).reshape(-1)
    if s.shape[0] < 3:
        return np.zeros((0, 3), dtype=np.int64)
    j = np.arange(s.shape[0], dtype=np.int64)
    is_sep = s < 0
    # index of the first element of the strip that contains position j
    strip_start = np.maximum.accumulate(np.where(is_sep, j + 1, 0))
    a, b, c = s[:-2], s[1:-1], s[2:]
    valid = (a >= 0) & (b >= 0) & (c >= 0)
    odd = ((j[:-2] - strip_start[:-2]) % 2).astype(bool)
    tri = np.stack([np.where(odd, b, a), np.where(odd, a, b), c], axis=1)[valid]
    degenerate = (tri[:, 0] == tri[:, 1]) | (tri[:, 1] == tri[:, 2]) | (tri[:, 0] == tri[:, 2])
    return tri[~degenerate]


def polygons_to_triangles(lst: PlyList) -> np.ndarray:
    """Fan-triangulate polygons ((R,) lists of >= 3 indices) into (F, 3) int64 faces.

    Polygons with fewer than 3 vertices are dropped.
    """
    counts = lst.counts.astype(np.int64)
    values = lst.values.astype(np.int64)
    if counts.size and np.all(counts == 3):
        return values.reshape(-1, 3)
    starts = np.cumsum(counts) - counts
    ntri = np.maximum(counts - 2, 0)
    first = np.repeat(starts, ntri)
    k = np.arange(int(ntri.sum()), dtype=np.int64) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    return np.stack([values[first], values[first + k + 1], values[first + k + 2]], axis=1)


def ply_to_mesh(path: str | os.PathLike, header: PlyHeader, elements: dict[str, dict[str, Any]]) -> Mesh:
    """Build a :class:`Mesh` from a parsed PLY with ``face`` and/or ``tristrips`` elements."""
    vertex = elements.get("vertex")
    if vertex is None:
        raise InputError("PLY file has no vertex element", path, "export the mesh vertices as a 'vertex' element")
    pts, normals, colors, _, _ = _vertex_arrays(vertex, path)
    faces = [np.zeros((0, 3), dtype=np.int64)]
    for name in MESH_ELEMENTS:
        el = elements.get(name)
        if not el:
            continue
        lists = [v for k, v in el.items() if isinstance(v, PlyList) and k in ("vertex_indices", "vertex_index")]
        if not lists:
            lists = [v for v in el.values() if isinstance(v, PlyList)]
        if not lists:
            raise InputError(f"PLY {name} element has no index list", path, "export faces as 'property list uchar int vertex_indices'")
        if name == "face":
            faces.append(polygons_to_triangles(lists[0]))
        else:
            faces.append(decode_tristrips(lists[0].values))
    f = np.concatenate(faces)
    if f.size and (f.min() < 0 or f.max() >= pts.shape[0]):
        raise InputError("PLY face refers to a vertex that does not exist", path, FIX_CORRUPT)
    if normals is not None and not np.all(np.isfinite(normals)):
        normals = None
    return Mesh(pts, f, vertex_normals=normals, vertex_colors=colors)


def write_ply(
    path: str | os.PathLike,
    vertex_fields: list[tuple[str, np.ndarray]],
    faces: np.ndarray | None = None,
    comments: tuple[str, ...] = (),
) -> None:
    """Write a binary little-endian PLY (directly; callers wrap it in :func:`atomic_write`).

    Args:
        path: the output file.
        vertex_fields: ``(name, (N,) array)`` in order; each array's dtype is the PLY type.
        faces: optional (F, 3) vertex indices, written as ``list uchar int vertex_indices``.
        comments: header comment lines.
    """
    n = vertex_fields[0][1].shape[0] if vertex_fields else 0
    vdt = np.dtype([(name, "<" + np.asarray(a).dtype.str[1:]) for name, a in vertex_fields])
    vert = np.empty(n, dtype=vdt)
    for name, a in vertex_fields:
        vert[name] = a
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {n}")
    lines += [f"property {NAME_OF[np.dtype(vdt[name]).str[1:]]} {name}" for name, _ in vertex_fields]
    fdata = b""
    if faces is not None:
        f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        fdt = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
        rec = np.empty(f.shape[0], dtype=fdt)
        rec["n"] = 3
        rec["i"] = f
        lines += [f"element face {f.shape[0]}", "property list uchar int vertex_indices"]
        fdata = rec.tobytes()
    lines.append("end_header")
    with open(path, "wb") as fh:
        fh.write(("\n".join(lines) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(fdata)


__all__ = [
    "FORMATS", "MESH_ELEMENTS", "PLY_TYPES", "PlyElement", "PlyHeader", "PlyList", "PlyProperty", "decode_tristrips",
    "header_info", "parse_header", "ply_is_mesh", "ply_to_cloud", "ply_to_mesh", "polygons_to_triangles", "read_ply",
    "write_ply",
]
