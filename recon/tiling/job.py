"""The per-tile work, run on Dask workers: phase 1 fits a tile's field, phase 2 meshes its core.

Phase 1 (:func:`fit_tile`): load the tile's shard (core + margin), estimate normals where the
input has none, solve the kernel field in the tile's lattice-aligned frame with the scene's
voxel size, save it (:mod:`recon.tiling.fieldio`) atomically.

Phase 2 (:func:`mesh_tile`): load the tile's field and its neighbours' (cropped to the tile's
core), blend them with the partition of unity of :class:`recon.backends.kernel.FusedField`,
march over the finest lattice cells inside the core only, trim faces far from the shard's
points, and write the tile mesh (world float64 vertices plus a flag for vertices on the core's
border planes) atomically. Because the blend is a deterministic function of the same fields and
the same lattice points, two neighbours compute bit-identical values on their shared border
plane, so their border vertices coincide exactly and :mod:`recon.tiling.stitch` welds them.
MISE refinement is off in batch mode (its refinement set depends on tile-wide statistics).

Both tasks take and return small plain objects (paths, the lattice, numbers), never points.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from recon.backends.kernel.chunked import FusedField
from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.frontend import fit_checked
from recon.device import torch_threads
from recon.io.atomic import atomic_write
from recon.io.ply import write_ply
from recon.meshing import sparse_marching_mesh
from recon.meshing.cleanup import remove_unreferenced_vertices
from recon.normals import estimate_normals
from recon.tiling.fieldio import load_field, save_field
from recon.tiling.lattice import Lattice, tile_id, unique_rows
from recon.tiling.shards import load_shard
from recon.types import Mesh

MIN_TILE_POINTS = 50
"""Tiles with fewer core points get no field of their own (status "empty"; their core is still
meshed from the neighbours' fields)."""


@dataclass(frozen=True)
class TileTask:
    """Everything a tile task needs.

    Attributes:
        tile: (i, j, k).
        lattice: the tiling (as a dict, see :meth:`Lattice.to_dict`).
        outdir: the job folder (shards/, fields/, tiles/ live under it).
        kernel: :class:`recon.backends.kernel.KernelConfig` fields.
        orient: normal orientation when the input has no normals: "up" (airborne: towards +z)
            or "mst" (spanning-tree propagation).
        neighbours: phase 2 only: the fitted tiles among the 27 around ``tile`` (itself included
            when it has a field).
        preview_ratio: phase 2: fraction of faces kept in the decimated preview (0: none).
        faults: fault injection for tests, ``{"fit:<tile>" or "mesh:*": "raise:N" | "kill:N" | "sleep:S"}``.
    """

    tile: tuple[int, int, int]
    lattice: dict
    outdir: str
    kernel: dict
    orient: str = "up"
    neighbours: tuple = ()
    preview_ratio: float = 0.0
    faults: dict = field(default_factory=dict)


def field_path(outdir: str | os.PathLike, tile) -> Path:
    return Path(outdir) / "fields" / f"{tile_id(tile)}.npz"


def mesh_path(outdir: str | os.PathLike, tile) -> Path:
    return Path(outdir) / "tiles" / f"{tile_id(tile)}.ply"


def preview_path(outdir: str | os.PathLike, tile) -> Path:
    return Path(outdir) / "tiles" / f"{tile_id(tile)}.preview.ply"


def file_sha1(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _worker_info(cpu0: float) -> dict:
    """Worker process id, host, peak RSS so far (MiB) and the task's CPU seconds (this thread)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "cpu_seconds": time.thread_time() - cpu0,
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def inject_fault(task: TileTask, phase: str) -> None:
    """Fail on purpose when ``task.faults`` asks for it (tests and benchmarks only).

    "raise:N" raises on the first N attempts, "kill:N" SIGKILLs the worker process on the first N
    attempts (a worker dying mid-tile), "sleep:S" sleeps S seconds every time. Attempts are
    counted with marker files in ``<outdir>/faults`` so they survive worker restarts.
    """
    name = tile_id(task.tile)
    spec = task.faults.get(f"{phase}:{name}") or task.faults.get(f"{phase}:*")
    if not spec:
        return
    kind, _, arg = str(spec).partition(":")
    if kind == "sleep":
        time.sleep(float(arg or 1))
        return
    d = Path(task.outdir) / "faults"
    d.mkdir(parents=True, exist_ok=True)
    key = f"{phase}-{name}"
    used = len(list(d.glob(f"{key}.*")))
    if used >= int(arg or 1):
        return
    (d / f"{key}.{used}").touch()
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected failure in {phase} of tile {name} (attempt {used + 1})")


def _kernel_config(options: dict) -> KernelConfig:
    opts = dict(options)
    opts.update(mise_iter=0, chunk_size=None, device="cpu")
    return KernelConfig(**opts)


def _normals(xyz: np.ndarray, normals: np.ndarray, orient: str) -> np.ndarray:
    """The shard's normals, estimated (PCA) and oriented when any is missing."""
    if np.isfinite(normals).all():
        return normals
    local = xyz - xyz.mean(0)
    if orient == "up":
        return estimate_normals(local, orient="sensor", sensor=local + np.array([0.0, 0.0, 1.0]))
    return estimate_normals(local, orient="mst")


def fit_tile(task: TileTask) -> dict:
    """Phase 1: solve and save the tile's field.

    Returns:
        ``status`` ("done" or "empty"), ``points`` (shard), ``core`` (core points), timings,
        ``field`` path and ``field_sha1``, solver ``iterations``, ``voxels``, worker pid/host/peak RSS.
    """
    t0, cpu0 = time.perf_counter(), time.thread_time()
    inject_fault(task, "fit")
    lat = Lattice.from_dict(task.lattice)
    rec = load_shard(Path(task.outdir) / "shards", task.tile)
    out = {"points": int(len(rec)), "core": int(rec["core"].sum()) if len(rec) else 0}
    if out["core"] < MIN_TILE_POINTS:
        return {**out, "status": "empty", "seconds": time.perf_counter() - t0, **_worker_info(cpu0)}
    xyz = rec["xyz"]
    t = time.perf_counter()
    normals = _normals(xyz, rec["normal"], task.orient)
    out["normals_seconds"] = time.perf_counter() - t
    del rec
    offset = lat.field_offset(np.asarray(task.tile))
    cfg = _kernel_config(task.kernel)
    pts = torch.from_numpy((xyz - offset).astype(np.float32))
    fld = fit_checked(pts, normals, lat.voxel_size, cfg, offset=offset)
    path = field_path(task.outdir, task.tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_field(path, fld)
    out.update(status="done", field=str(path), field_sha1=file_sha1(path), iterations=int(fld.solver_info.iterations),
               voxels=int(sum(len(lv) for lv in fld.levels)), timings=dict(fld.timings),
               seconds=time.perf_counter() - t0)
    return {**out, **_worker_info(cpu0)}


# --------------------------------------------------------------------------- phase 2


def tile_cells(fields: list, tiles: list[tuple[int, int, int]], lat: Lattice, tile) -> np.ndarray:
    """Finest lattice cells (global integer coordinates) to mesh inside ``tile``'s core.

    A cell is meshed when some field has it as a finest voxel with its centre inside that
    field's blend region (as :meth:`FusedField.cells`); the result is restricted to the core,
    so every cell of the scene is meshed by exactly one tile.
    """
    e, mv = lat.tile_voxels, lat.margin_voxels
    lo, hi = lat.core_index(np.asarray(tile))
    out = []
    for f, t in zip(fields, tiles):
        c = f.cells()
        c = c[((c >= -mv) & (c < e + mv)).all(1)] + np.asarray(t, dtype=np.int64) * e
        out.append(c[((c >= lo) & (c < hi)).all(1)])
    cells = np.concatenate(out) if out else np.zeros((0, 3), np.int64)
    return unique_rows(cells)[0]


def trim_anchored(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, anchor: np.ndarray,
                  max_distance: float) -> np.ndarray:
    """Faces whose three vertices lie within ``max_distance`` of some point: (F,) bool.

    Distances are taken relative to a fixed ``anchor`` (the lattice origin), not to a
    tile-dependent centre, so two tiles that see the same points near a border decide the same
    for a shared vertex (exact float64 arithmetic on identical operands).
    """
    if len(faces) == 0 or len(points) == 0:
        return np.zeros(len(faces), dtype=bool)
    tree = cKDTree(points - anchor)
    d, _ = tree.query(vertices - anchor, k=1, distance_upper_bound=float(np.nextafter(max_distance, np.inf)))
    near = d <= max_distance
    return near[faces].all(1)


def border_flags(vertices: np.ndarray, lat: Lattice, tile, upsample: int) -> np.ndarray:
    """(V,) bool: vertices lying exactly on one of the tile core's six border planes.

    The plane positions use the expression marching cubes uses for lattice points
    (``origin + h_mesh * p``, ``h_mesh = h / upsample``), so on-plane vertices match exactly.
    """
    h_mesh = float(lat.voxel_size)
    if upsample > 1:
        h_mesh /= upsample
    lo, hi = lat.core_index(np.asarray(tile))
    o = lat.origin_array
    flag = np.zeros(len(vertices), dtype=bool)
    for a in range(3):
        for idx in (lo[a], hi[a]):
            flag |= vertices[:, a] == o[a] + h_mesh * float(idx * upsample)
    return flag


def write_tile_mesh(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, border: np.ndarray) -> None:
    """Binary PLY: double x y z, uchar border; faces as int lists (atomic)."""
    v = vertices + 0.0  # -0.0 -> 0.0 so equal coordinates have equal bytes
    with atomic_write(path) as tmp:
        write_ply(tmp, [("x", v[:, 0].copy()), ("y", v[:, 1].copy()), ("z", v[:, 2].copy()),
                        ("border", border.astype(np.uint8))], faces)


def mesh_tile(task: TileTask) -> dict:
    """Phase 2: mesh the tile's core from the blended fields of itself and its neighbours.

    Returns:
        ``status`` "done", ``vertices``, ``faces``, ``border_vertices``, ``cells``, timings,
        ``mesh`` path and ``mesh_sha1``, worker pid/host/peak RSS.
    """
    t0, cpu0 = time.perf_counter(), time.thread_time()
    inject_fault(task, "mesh")
    lat = Lattice.from_dict(task.lattice)
    cfg = _kernel_config(task.kernel)
    tile = tuple(task.tile)
    core = lat.core_box(np.asarray(tile))
    crop = core + np.array([-1.0, 1.0])[:, None] * 2 * lat.voxel_size
    tiles = sorted(tuple(t) for t in task.neighbours)
    fields = [load_field(field_path(task.outdir, t), crop=crop) for t in tiles]
    o = lat.origin_array
    boxes = np.stack([lat.core_box(np.asarray(t)) for t in tiles]) - o if tiles else np.zeros((0, 2, 3))
    fused = FusedField(fields, boxes, lat.margin, o, np.zeros((0, 3), np.float32))
    cells = tile_cells(fields, tiles, lat, tile)
    t = time.perf_counter()
    with torch_threads(1):
        mesh = sparse_marching_mesh(fused.evaluate, cells, o, lat.voxel_size, upsample=cfg.upsample, mise_iter=0)
    mesh_seconds = time.perf_counter() - t
    del fields, fused
    rec = load_shard(Path(task.outdir) / "shards", tile)
    keep = trim_anchored(mesh.vertices, mesh.faces, rec["xyz"], o, cfg.trim_distance * lat.voxel_size)
    del rec
    mesh = remove_unreferenced_vertices(Mesh(mesh.vertices, mesh.faces[keep])) if not keep.all() else mesh
    border = border_flags(mesh.vertices, lat, tile, cfg.upsample)
    path = mesh_path(task.outdir, tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tile_mesh(path, mesh.vertices, mesh.faces, border)
    out = {"status": "done", "cells": int(len(cells)), "vertices": mesh.n_vertices, "faces": mesh.n_faces,
           "border_vertices": int(border.sum()), "mesh": str(path), "mesh_sha1": file_sha1(path),
           "march_seconds": mesh_seconds}
    if task.preview_ratio > 0 and mesh.n_faces:
        out["preview_faces"] = write_preview(preview_path(task.outdir, tile), Mesh(mesh.vertices, mesh.faces),
                                             task.preview_ratio, core[0])
        out["preview"] = str(preview_path(task.outdir, tile))
    out["seconds"] = time.perf_counter() - t0
    return {**out, **_worker_info(cpu0)}


def write_preview(path: str | os.PathLike, mesh, ratio: float, anchor: np.ndarray) -> int:
    """Quadric-decimated copy of a tile mesh (Open3D), written atomically; returns its faces."""
    import open3d as o3d  # lazy: ~3 s to import, needed only for previews

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices - anchor),
                                  o3d.utility.Vector3iVector(mesh.faces.astype(np.int32)))
    target = max(4, int(mesh.n_faces * ratio))
    d = m.simplify_quadric_decimation(target_number_of_triangles=target)
    v = np.asarray(d.vertices) + anchor
    f = np.asarray(d.triangles).astype(np.int64)
    write_tile_mesh(path, v, f, np.zeros(len(v), dtype=bool))
    return int(len(f))
