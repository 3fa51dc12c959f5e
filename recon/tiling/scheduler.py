"""Phase 1 and 2 of a batch job on Dask: fit every tile, mesh each one once its neighbourhood is fitted.

:func:`run_tiles` registers the tiles found by pass 2 in the manifest and runs a :class:`TileScheduler`:
one :func:`recon.tiling.job.fit_tile` task per tile; as soon as a tile and all its existing neighbours
are fitted, its :func:`recon.tiling.job.mesh_tile` task (higher priority). A failing task is resubmitted
up to ``retries`` times, then recorded as failed while the others go on (a neighbour that failed is left
out of the blend). With ``resume``, tiles whose inputs are unchanged and whose files are still in the job
folder are kept. File locations come from the job folder and the tile id
(:func:`recon.tiling.job.field_path`, :func:`~recon.tiling.job.mesh_path`), so a moved folder resumes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import numpy as np
from distributed import as_completed

from recon.errors import ReconError
from recon.tiling.job import TileTask, field_path, fit_tile, mesh_path, mesh_tile
from recon.tiling.jobfolder import relative_name
from recon.tiling.lattice import neighbours, parse_tile_id, tile_id
from recon.tiling.run_context import BatchRun
from recon.tiling.shards import shard_hash


def stable_hash(*parts: Any) -> str:
    """sha1 hex digest of JSON-serialisable ``parts`` (keys sorted)."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class TileScheduler:
    """Submits tile tasks, retries failures, and starts a tile's meshing once its neighbourhood is fitted."""

    def __init__(self, run: BatchRun):
        """Schedule the tiles registered in ``run.man`` (after pass 2)."""
        self.lattice, self.man = run.planned()
        self.client, self.cfg, self.out = run.client, run.cfg, run.out
        self.bars, self.summary, self.log, self.on_tile = run.bars, run.summary, run.log, run.on_tile
        self.ac = as_completed()
        self.running: dict[str, tuple] = {}
        self.run_id = uuid.uuid4().hex[:8]
        self.kopts = self.cfg.kernel_options()
        self.rows = {r["id"]: dict(r) for r in self.man.tiles()}
        self.existing = {parse_tile_id(t) for t in self.rows}
        self.fit_state: dict[str, str] = {}
        self.mesh_state: dict[str, str] = {}
        self.points_done = 0

    def task(self, tid: str, nbrs: tuple = ()) -> TileTask:
        return TileTask(parse_tile_id(tid), self.lattice.to_dict(), str(self.out), self.kopts, self.cfg.orient,
                        nbrs, self.cfg.preview_ratio if self.cfg.preview else 0.0, dict(self.cfg.faults))

    def submit(self, phase: str, tid: str, attempt: int, nbrs: tuple = ()) -> None:
        fn = fit_tile if phase == "fit" else mesh_tile
        fut = self.client.submit(fn, self.task(tid, nbrs), key=f"{phase}-{tid}-{attempt}-{self.run_id}", pure=False,
                                 priority=10 if phase == "mesh" else 0)
        self.running[fut.key] = (phase, tid, attempt, nbrs)
        self.ac.add(fut)

    # ------------------------------------------------------------------ decisions
    def deps_hash(self, tid: str) -> tuple[tuple, str]:
        nbrs = tuple(n for n in neighbours(parse_tile_id(tid), self.existing) if self.fit_state[tile_id(n)] == "done")
        digest = stable_hash([(tile_id(n), self.rows[tile_id(n)]["field_sha1"]) for n in nbrs], self.kopts,
                             self.cfg.preview, self.cfg.preview_ratio)
        return nbrs, digest

    def maybe_mesh(self, tid: str) -> None:
        """Submit the meshing of ``tid`` once it and all its existing neighbours are settled.

        A tile without a field of its own ("empty": too few core points) is still meshed from its
        neighbours' fields, so surfaces reaching into it from a neighbour are not cut at the border.
        """
        if tid in self.mesh_state or self.fit_state.get(tid) not in ("done", "empty"):
            return
        ijk = parse_tile_id(tid)
        if any(self.fit_state.get(tile_id(n)) == "running" for n in neighbours(ijk, self.existing)):
            return
        nbrs, digest = self.deps_hash(tid)
        row = self.rows[tid]
        if not nbrs:
            self.mesh_state[tid] = "empty"
            self.bars.advance("mesh")
            return
        if (self.cfg.resume and row["mesh_status"] == "done" and row["deps_hash"] == digest
                and mesh_path(self.out, ijk).exists()):
            self.mesh_state[tid] = "done"
            self.summary.reused_meshes += 1
            self.bars.advance("mesh")
            return
        self.mesh_state[tid] = "running"
        self.rows[tid]["deps_hash"] = digest
        self.submit("mesh", tid, 1, nbrs)

    def settle_fit(self, tid: str, state: str) -> None:
        self.fit_state[tid] = state
        if state == "failed":
            self.mesh_state[tid] = state
            self.bars.advance("mesh")
        for n in neighbours(parse_tile_id(tid), self.existing):
            self.maybe_mesh(tile_id(n))

    # ------------------------------------------------------------------ results
    def on_fit(self, tid: str, attempt: int, res: dict) -> None:
        self.man.log_event(tid, "fit", attempt, res["status"], res)
        values = dict(fit_status=res["status"], fit_attempts=attempt, fit_seconds=res.get("seconds"), error=None)
        if res["status"] == "done":
            values.update(field_path=relative_name(self.out, res["field"]), field_sha1=res["field_sha1"])
            self.rows[tid].update(field_sha1=res["field_sha1"])
        self.man.update_tile(tid, **values)
        self.points_done += self.rows[tid]["core"] or 0
        self.bars.advance("fit", info=f"{self.points_done:,} points")
        if self.on_tile is not None:
            self.on_tile("fit", tid, res)
        self.settle_fit(tid, res["status"])

    def on_mesh(self, tid: str, attempt: int, res: dict) -> None:
        self.man.log_event(tid, "mesh", attempt, "done", res)
        self.man.update_tile(tid, mesh_status="done", mesh_attempts=attempt, mesh_seconds=res.get("seconds"),
                             mesh_path=relative_name(self.out, res["mesh"]), mesh_sha1=res["mesh_sha1"],
                             deps_hash=self.rows[tid]["deps_hash"],
                             vertices=res["vertices"], faces=res["faces"], error=None)
        self.mesh_state[tid] = "done"
        self.bars.advance("mesh")
        if self.on_tile is not None:
            self.on_tile("mesh", tid, res)

    def on_error(self, phase: str, tid: str, attempt: int, nbrs: tuple, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{type(exc).__name__}: {text}"[:300]
        self.man.log_event(tid, phase, attempt, "error", None, msg)
        if attempt <= self.cfg.retries and not isinstance(exc, ReconError):
            self.log(f"tile {tid}: {phase} failed ({msg}); retry {attempt}/{self.cfg.retries}")
            self.submit(phase, tid, attempt + 1, nbrs)
            return
        self.log(f"tile {tid}: {phase} failed after {attempt} attempt(s): {msg}")
        self.summary.failed.append({"tile": tid, "phase": phase, "attempts": attempt, "error": msg})
        if phase == "fit":
            self.man.update_tile(tid, fit_status="failed", fit_attempts=attempt, error=msg)
            self.bars.advance("fit")
            self.settle_fit(tid, "failed")
        else:
            self.man.update_tile(tid, mesh_status="failed", mesh_attempts=attempt, error=msg)
            self.mesh_state[tid] = "failed"
            self.bars.advance("mesh")

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        total_pts = sum(r["core"] or 0 for r in self.rows.values())
        self.bars.add("fit", len(self.rows), f"0 / {total_pts:,} points")
        self.bars.add("mesh", len(self.rows))
        todo = []
        for tid in sorted(self.rows, key=parse_tile_id):
            row = self.rows[tid]
            ok = (self.cfg.resume and row["fit_status"] in ("done", "empty")
                  and (row["fit_status"] == "empty" or field_path(self.out, parse_tile_id(tid)).exists()))
            if ok:
                self.fit_state[tid] = row["fit_status"]
                self.summary.reused_fits += row["fit_status"] == "done"
                self.points_done += row["core"] or 0
                self.bars.advance("fit", info=f"{self.points_done:,} points")
            else:
                self.fit_state[tid] = "running"
                todo.append(tid)
        for tid in todo:
            self.submit("fit", tid, 1)
        for tid in sorted(self.rows, key=parse_tile_id):
            self.maybe_mesh(tid)
        for fut in self.ac:
            phase, tid, attempt, nbrs = self.running.pop(fut.key)
            if fut.status == "finished":
                res = fut.result()
                (self.on_fit if phase == "fit" else self.on_mesh)(tid, attempt, res)
            else:
                exc = fut.exception() if fut.status == "error" else RuntimeError(f"task {fut.status}")
                self.on_error(phase, tid, attempt, nbrs, exc)
            fut.release()


def run_tiles(run: BatchRun) -> None:
    """Register the tiles found by pass 2, then fit and mesh them (counts go to ``run.summary``)."""
    lattice, man = run.planned()
    summary = run.summary
    parts = man.tile_parts()
    kopts = run.cfg.kernel_options()
    for tid, info in sorted(parts.items()):
        ijk = parse_tile_id(tid)
        input_hash = stable_hash(shard_hash(info["parts"]), lattice.key(), kopts, run.cfg.orient)
        man.upsert_tile(tid, ijk, lattice.core_box(np.asarray(ijk)), info["core"], info["points"], input_hash)
    man.drop_tiles_except(set(parts))
    sched = TileScheduler(run)
    sched.run()
    summary.tiles = len(sched.rows)
    summary.fitted = sum(1 for s in sched.fit_state.values() if s == "done")
    summary.empty = sum(1 for s in sched.mesh_state.values() if s == "empty")
    summary.done = sum(1 for s in sched.mesh_state.values() if s == "done")


__all__ = ["TileScheduler", "run_tiles", "stable_hash"]
