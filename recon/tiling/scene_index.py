"""``scene.json``: the index of a stitched batch job (what each tile holds and where it went).

Written once per run by :func:`write_scene_index`, after ``scene.ply`` (and ``preview.ply``)
exist; read by people and tools that follow a job (e.g. ``tests/e2e/test_trust_batch.py``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Sequence

from recon.io.atomic import atomic_write
from recon.tiling.job import mesh_path
from recon.tiling.jobfolder import relative_name
from recon.tiling.lattice import Lattice, parse_tile_id
from recon.tiling.stitch import MergeResult

SCENE_INDEX = "scene.json"
SCENE_FORMAT = "recon-batch-scene/1"


def write_scene_index(out: Path, lattice: Lattice, rows: Sequence[sqlite3.Row], merged: MergeResult,
                      has_preview: bool) -> Path:
    """Write ``out/scene.json`` atomically (JSON, one-space indent) and return its path.

    Fields, in this order:

    * ``format``: ``"recon-batch-scene/1"``;
    * ``mesh``: ``"scene.ply"``, the welded mesh (relative to the job folder);
    * ``preview``: ``"preview.ply"`` or null when no preview was written;
    * ``origin`` (3 floats), ``voxel_size``: the lattice's world origin and voxel size;
    * ``tile_edge`` (3 floats): a tile core's edge lengths; ``overlap``: the blend margin (world units);
    * ``vertices``, ``faces``: the counts in ``scene.ply``;
    * ``tiles``: one object per tile of the manifest (manifest order), with ``id`` ("i_j_k"),
      ``ijk``, ``core_box`` ([[lo x, y, z], [hi x, y, z]] world), ``fit`` (fit status: "done",
      "empty", "failed", ...), ``mesh_status``, ``core_points``, ``points`` (core + margin),
      ``mesh`` (the tile's mesh relative to the job folder, null unless meshed), ``vertices`` and
      ``faces`` of the tile mesh, ``merged_vertices`` / ``merged_faces`` ([first, count] of the
      tile's new vertices / its faces in ``scene.ply``, null when not merged) and ``error`` (the
      last failure's one line, or null).

    Args:
        out: the job folder.
        lattice: the run's lattice.
        rows: the manifest's tile rows (:meth:`recon.tiling.manifest.Manifest.tiles`).
        merged: what :func:`recon.tiling.stitch.merge_tiles` wrote to ``scene.ply``.
        has_preview: ``preview.ply`` was written.
    """
    index = {
        "format": SCENE_FORMAT,
        "mesh": "scene.ply",
        "preview": "preview.ply" if has_preview else None,
        "origin": list(lattice.origin), "voxel_size": lattice.voxel_size,
        "tile_edge": [float(v) for v in lattice.tile_edge],
        "overlap": lattice.margin, "vertices": merged.vertices, "faces": merged.faces,
        "tiles": [_tile_entry(out, r, merged) for r in rows],
    }
    path = out / SCENE_INDEX
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    return path


def _tile_entry(out: Path, r: sqlite3.Row, merged: MergeResult) -> dict:
    """One element of ``tiles`` (see :func:`write_scene_index`)."""
    rng = merged.ranges.get(r["id"])
    return {
        "id": r["id"], "ijk": [r["i"], r["j"], r["k"]],
        "core_box": [[r["lo_x"], r["lo_y"], r["lo_z"]], [r["hi_x"], r["hi_y"], r["hi_z"]]],
        "fit": r["fit_status"], "mesh_status": r["mesh_status"], "core_points": r["core"], "points": r["points"],
        "mesh": relative_name(out, mesh_path(out, parse_tile_id(r["id"]))) if r["mesh_status"] == "done" else None,
        "vertices": r["vertices"], "faces": r["faces"],
        "merged_vertices": [rng[0], rng[1]] if rng else None, "merged_faces": [rng[2], rng[3]] if rng else None,
        "error": r["error"],
    }


__all__ = ["SCENE_FORMAT", "SCENE_INDEX", "write_scene_index"]
