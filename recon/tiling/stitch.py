"""Stitching: merge the tile meshes into one binary PLY, streaming, welding border vertices.

Each tile mesh (written by :func:`recon.tiling.job.mesh_tile`) flags the vertices that lie
exactly on its core's border planes. Tiles are read one at a time in tile order; their
non-border vertices are appended as they are, their border vertices are looked up by exact
coordinates (float64 bit patterns) in a map of the border vertices already written and reused
when found. Only border vertices are ever kept in memory. Vertices and faces go to two
temporary files; the final PLY (header counts known by then) is their concatenation, written
atomically. The output is a function of the tile files and their order only, so a resumed run
writes the same bytes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.io.atomic import atomic_write
from recon.io.ply import parse_header
from recon.types import Mesh

_VERTEX = np.dtype([("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("border", "u1")])
_FACE = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
_KEY = np.dtype((np.void, 24))


def read_tile_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tile mesh written by :func:`recon.tiling.job.write_tile_mesh`.

    Returns:
        vertices (V, 3) float64 world, faces (F, 3) int64, border (V,) bool.
    """
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(4096)
    h = parse_header(head, p)
    nv = h.element("vertex").count
    nf = h.element("face").count if h.element("face") else 0
    v = np.fromfile(p, dtype=_VERTEX, count=nv, offset=h.body_offset)
    f = np.fromfile(p, dtype=_FACE, count=nf, offset=h.body_offset + nv * _VERTEX.itemsize)
    xyz = np.stack([v["x"], v["y"], v["z"]], 1)
    return xyz, f["i"].astype(np.int64), v["border"].astype(bool)


def _keys(xyz: np.ndarray) -> np.ndarray:
    """(K,) 24-byte keys of exact float64 coordinates (sortable, comparable)."""
    return np.ascontiguousarray(xyz + 0.0, dtype="<f8").view(_KEY).reshape(-1)


class BorderMap:
    """Exact-coordinate map of border vertices to their index in the merged mesh."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=_KEY)
        self.ids = np.zeros(0, dtype=np.int64)

    def lookup(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K,) merged indices and (K,) found flags of (K, 3) coordinates."""
        k = _keys(xyz)
        if len(self.keys) == 0 or len(k) == 0:
            return np.zeros(len(k), np.int64), np.zeros(len(k), bool)
        pos = np.minimum(np.searchsorted(self.keys, k), len(self.keys) - 1)
        found = self.keys[pos] == k
        return self.ids[pos], found

    def add(self, xyz: np.ndarray, ids: np.ndarray) -> None:
        if len(xyz) == 0:
            return
        keys = np.concatenate([self.keys, _keys(xyz)])
        ids = np.concatenate([self.ids, ids])
        order = np.argsort(keys, kind="stable")
        self.keys, self.ids = keys[order], ids[order]

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class MergeResult:
    """Counts of a merged mesh and where each tile's part lies in it.

    Attributes:
        path: the merged PLY.
        vertices, faces: totals.
        welded: border vertices reused from an earlier tile.
        ranges: per tile id, (first new vertex, new vertices, first face, faces).
    """

    path: str
    vertices: int
    faces: int
    welded: int
    ranges: dict[str, tuple[int, int, int, int]]


def merge_tiles(tile_files: list[tuple[str, str]], out_path: str | os.PathLike, *, weld: bool = True,
                comments: tuple[str, ...] = ()) -> MergeResult:
    """Write one binary PLY (double x y z, int faces) from tile meshes, one tile in memory at a time.

    Args:
        tile_files: (tile id, mesh file) in the order to write them (tile order).
        out_path: the merged PLY (written atomically).
        weld: reuse border vertices with identical coordinates (off for previews).
        comments: PLY header comments.
    """
    out = Path(out_path)
    tmp_v = out.with_name(f".{out.name}.vertices.tmp")
    tmp_f = out.with_name(f".{out.name}.faces.tmp")
    border = BorderMap()
    n_v = n_f = welded = 0
    ranges: dict[str, tuple[int, int, int, int]] = {}
    try:
        with open(tmp_v, "wb") as fv, open(tmp_f, "wb") as ff:
            for tid, path in tile_files:
                xyz, faces, on_border = read_tile_mesh(path)
                gid = np.empty(len(xyz), dtype=np.int64)
                new = np.ones(len(xyz), dtype=bool)
                if weld:
                    b = np.flatnonzero(on_border)
                    ids, found = border.lookup(xyz[b])
                    gid[b[found]] = ids[found]
                    new[b[found]] = False
                    welded += int(found.sum())
                k = int(new.sum())
                gid[new] = n_v + np.arange(k)
                if weld:
                    add = new & on_border
                    border.add(xyz[add], gid[add])
                np.ascontiguousarray(xyz[new] + 0.0, dtype="<f8").tofile(fv)
                rec = np.empty(len(faces), dtype=_FACE)
                rec["n"] = 3
                rec["i"] = gid[faces]
                rec.tofile(ff)
                ranges[tid] = (n_v, k, n_f, len(faces))
                n_v += k
                n_f += len(faces)
        header = ["ply", "format binary_little_endian 1.0", *[f"comment {c}" for c in comments],
                  f"element vertex {n_v}", "property double x", "property double y", "property double z",
                  f"element face {n_f}", "property list uchar int vertex_indices", "end_header"]
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as tmp:
            with open(tmp, "wb") as fo:
                fo.write(("\n".join(header) + "\n").encode("ascii"))
                for part in (tmp_v, tmp_f):
                    with open(part, "rb") as fi:
                        shutil.copyfileobj(fi, fo, 1 << 22)
    finally:
        for part in (tmp_v, tmp_f):
            part.unlink(missing_ok=True)
    return MergeResult(str(out), n_v, n_f, welded, ranges)


# --------------------------------------------------------------------------- seam checks


def plane_edges(mesh, lattice, upsample: int = 1) -> np.ndarray:
    """(E,) bool over the mesh's boundary edges: both endpoints on the same tile border plane.

    A boundary edge (used by one face) lying in a tile border plane is a seam gap unless the
    surface really ends there. Returns the flags for the edges of :func:`boundary_edges`.
    """
    e = boundary_edges(mesh.faces)
    if len(e) == 0:
        return np.zeros(0, bool)
    v = mesh.vertices
    h_mesh = float(lattice.voxel_size)
    if upsample > 1:
        h_mesh /= upsample
    step = lattice.tile_voxels * upsample
    o = lattice.origin_array
    on = np.zeros(len(e), bool)
    for a in range(3):
        x0, x1 = v[e[:, 0], a], v[e[:, 1], a]
        k = np.rint((x0 - o[a]) / (h_mesh * step[a])).astype(np.int64)
        plane = o[a] + h_mesh * (k * step[a]).astype(np.float64)
        on |= (x0 == plane) & (x1 == plane)
    return on


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) int64 undirected edges used by exactly one face (sorted endpoints)."""
    if len(faces) == 0:
        return np.zeros((0, 2), np.int64)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e.sort(axis=1)
    u, counts = np.unique(e, axis=0, return_counts=True)
    return u[counts == 1]


def load_merged(path: str | os.PathLike):
    """The merged PLY as a :class:`recon.types.Mesh` (for checks and benchmarks; holds it all)."""
    p = Path(path)
    with open(p, "rb") as fh:
        h = parse_header(fh.read(4096), p)
    nv, nf = h.element("vertex").count, h.element("face").count
    v = np.fromfile(p, dtype="<f8", count=3 * nv, offset=h.body_offset).reshape(-1, 3)
    f = np.fromfile(p, dtype=_FACE, count=nf, offset=h.body_offset + 24 * nv)
    return Mesh(v, f["i"].astype(np.int64))
