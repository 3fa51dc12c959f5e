"""The Dask driver of a batch job: plan, shard, fit and mesh tiles, stitch, report.

Steps (each resumable; the driver holds the plan, the manifest and small task results only):

1. probe the inputs (headers), cut them into pieces;
2. pass 1: one :func:`recon.tiling.plan.count_piece` task per piece -> counts -> lattice;
3. pass 2: one :func:`recon.tiling.shards.spill_piece` task per piece -> shards on disk;
4. one :func:`recon.tiling.job.fit_tile` task per tile; as soon as a tile and all its existing
   neighbours are fitted, its :func:`recon.tiling.job.mesh_tile` task (higher priority);
   a failing task is resubmitted up to ``retries`` times, then recorded as failed while the
   others go on (a neighbour that failed is left out of the blend);
5. stitch the tile meshes into ``scene.ply`` (streamed), write ``scene.json`` and the preview.

The cluster is an embedded :class:`distributed.LocalCluster` (processes, one thread each,
``memory_limit`` per worker) or an existing scheduler (``scheduler``); the folder must then be
on a file system every worker sees under the same path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import resource
import shutil
import signal
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recon.errors import ConfigError, ReconError
from recon.tiling.config import BatchConfig
from recon.tiling.lattice import Lattice, neighbours, parse_tile_id, tile_id

PLAN_VERSION = 1
Log = Callable[[str], None]


@dataclass
class BatchSummary:
    """What a batch run did (also printed as JSON by ``recon batch --json``)."""

    output: str
    mesh: str | None = None
    index: str | None = None
    preview: str | None = None
    points: int = 0
    dropped: int = 0
    tiles: int = 0
    fitted: int = 0
    done: int = 0
    empty: int = 0
    reused_fits: int = 0
    reused_meshes: int = 0
    failed: list[dict] = field(default_factory=list)
    vertices: int = 0
    faces: int = 0
    welded: int = 0
    lattice: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    driver_rss_mib: float = 0.0
    dashboard: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return asdict(self)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _sha1(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- cluster


def cluster_memory_limit(cfg: BatchConfig) -> str | int:
    """The ``memory_limit`` handed to the LocalCluster's workers.

    Worker processes get ``cfg.memory_limit`` each (Dask pauses a worker at 80 % and restarts it at 95 %).
    Workers running as threads of this process (``processes=False``) get 0, no limit: Dask's monitor
    reads the RSS of the whole process, shared by every worker and by the caller, so a caller that is
    already large (a long test session, a viewer) would pause every worker for good and the job would
    wait forever. Tile sizes still follow ``cfg.memory_limit`` through ``cfg.tile_point_budget()``.
    """
    return cfg.memory_limit if cfg.processes else 0


@contextlib.contextmanager
def dask_client(cfg: BatchConfig, log: Log):
    """(client, dashboard URL or None): on ``cfg.scheduler``, or on an embedded LocalCluster (closed on exit)."""
    from distributed import Client, LocalCluster

    if cfg.scheduler:
        try:
            client = Client(cfg.scheduler, timeout="15s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ReconError(f"cannot reach the Dask scheduler at {cfg.scheduler} ({type(exc).__name__})", None,
                             "start one with `dask scheduler` and `dask worker`, or drop --scheduler") from None
        try:
            n = len(client.scheduler_info().get("workers", {}))
            log(f"scheduler {cfg.scheduler}: {n} worker(s); dashboard {client.dashboard_link}")
            yield client, client.dashboard_link
        finally:
            client.close()
        return
    try:
        import bokeh  # noqa: F401 - the dashboard needs it

        dash = True
    except ImportError:
        dash = False
    # a free port for the scheduler's HTTP server (health endpoints, and the dashboard with bokeh)
    # workers are spawned with SIGINT ignored (inherited through exec): Ctrl-C in a terminal reaches the
    # whole process group, and only the driver should handle it (it closes the cluster)
    old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
    try:
        cluster = LocalCluster(n_workers=cfg.workers, threads_per_worker=1, processes=cfg.processes,
                               memory_limit=cluster_memory_limit(cfg), dashboard_address="127.0.0.1:0",
                               silence_logs=logging.CRITICAL)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    client = Client(cluster)
    try:
        link = cluster.dashboard_link if dash else None
        each = f"{cfg.memory_limit} each" if cfg.processes else "threads of this process"
        log(f"local cluster: {cfg.workers} worker(s) x 1 thread, {each}; dashboard "
            f"{link or 'off (pip install bokeh for it)'}")
        yield client, link
    finally:
        with contextlib.suppress(Exception):
            client.close()
        with contextlib.suppress(Exception):
            cluster.close()


# --------------------------------------------------------------------------- the run


class _Bars:
    """Rich progress bars (tiles fitted / meshed, points) or nothing."""

    def __init__(self, console: Any, enabled: bool):
        self.p = None
        if enabled and console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                              disable=not console.is_terminal)
            self.p.__enter__()
        self.tasks: dict[str, Any] = {}

    def add(self, name: str, total: int, info: str = "") -> None:
        if self.p is not None:
            self.tasks[name] = self.p.add_task(name, total=total, info=info)

    def advance(self, name: str, n: int = 1, info: str | None = None) -> None:
        if self.p is not None and name in self.tasks:
            kw = {"info": info} if info is not None else {}
            self.p.update(self.tasks[name], advance=n, **kw)

    def close(self) -> None:
        if self.p is not None:
            self.p.__exit__(None, None, None)
            self.p = None


def run_batch(cfg: BatchConfig, console: Any = None, progress: bool = True, log: Log | None = None,
              on_tile: Callable[[str, str, dict], None] | None = None) -> BatchSummary:
    """Run (or resume) a batch job; see the module docstring.

    Args:
        cfg: the options.
        console: a rich console for progress bars (None: no bars).
        progress: show progress bars.
        log: receives one-line status messages (default: dropped).
        on_tile: called on the driver as ``on_tile(phase, tile_id, result)`` when a tile's fit
            ("fit") or mesh ("mesh") has finished (e.g. a live view; ``result["mesh"]`` /
            ``result["preview"]`` are the tile's files).

    Returns:
        The summary; ``summary.failed`` lists tiles that failed after their retries.

    Raises:
        ReconError: bad inputs or options (one line), nothing written for the failing step.
    """
    from recon.tiling.manifest import Manifest
    from recon.tiling.streams import list_inputs, make_pieces, probe

    log = log or (lambda _msg: None)
    t_start = time.perf_counter()
    out = Path(cfg.output).expanduser().resolve()
    sources = [probe(p.resolve()) for p in list_inputs(cfg.inputs)]
    _prepare_output(out, cfg.resume)
    pieces = make_pieces(sources, cfg.piece_points)
    summary = BatchSummary(output=str(out))
    bars = _Bars(console, progress)
    try:
        with Manifest(out / "manifest.sqlite") as man, dask_client(cfg, log) as (client, dashboard):
            summary.dashboard = dashboard
            t = time.perf_counter()
            lattice, plan = _plan(client, cfg, sources, pieces, man, bars, log)
            summary.points, summary.dropped = plan["grid"]["points"], plan["grid"]["dropped"]
            summary.lattice, summary.notes = lattice.to_dict(), plan["notes"]
            summary.seconds["plan"] = time.perf_counter() - t
            t = time.perf_counter()
            _shard(client, cfg, out, lattice, plan["key"], pieces, man, bars, log)
            summary.seconds["shard"] = time.perf_counter() - t
            t = time.perf_counter()
            _tiles(client, cfg, out, lattice, man, bars, summary, log, on_tile)
            summary.seconds["tiles"] = time.perf_counter() - t
            bars.close()
            t = time.perf_counter()
            _stitch(cfg, out, lattice, man, summary, log)
            summary.seconds["stitch"] = time.perf_counter() - t
    finally:
        bars.close()
    summary.seconds["total"] = time.perf_counter() - t_start
    summary.driver_rss_mib = _rss_mib()
    return summary


def _prepare_output(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError("the output exists and is not a folder", out, "give a folder for -o")
    if out.is_dir() and any(out.iterdir()) and not resume:
        if (out / "manifest.sqlite").exists():
            raise ConfigError("the output folder holds a previous batch job", out,
                              "pass --resume to continue it, or choose a new folder")
        raise ConfigError("the output folder is not empty", out, "choose a new or empty folder")
    if resume and not (out / "manifest.sqlite").exists() and out.is_dir() and any(out.iterdir()):
        raise ConfigError("--resume: the folder holds no batch job (no manifest.sqlite)", out, "check the folder")
    out.mkdir(parents=True, exist_ok=True)


def _gather(client: Any, futures: list, on_result: Callable[[Any], None]) -> None:
    """Wait for ``futures``; call ``on_result`` for each; re-raise the first task error as is."""
    from distributed import as_completed

    for fut in as_completed(futures):
        if fut.status != "finished":
            exc = fut.exception()
            for f in futures:
                f.cancel()
            raise exc
        on_result(fut.result())
        fut.release()


def _plan(client, cfg: BatchConfig, sources, pieces, man, bars: _Bars, log: Log) -> tuple[Lattice, dict]:
    """Pass 1 and the lattice (reused on resume when inputs and options are unchanged)."""
    from recon.backends.kernel.config import KernelConfig
    from recon.tiling.plan import CountGrid, count_piece, make_lattice

    kopts = cfg.kernel_options()
    budget = cfg.tile_point_budget()
    key = _sha1(PLAN_VERSION, [(s.path, s.fingerprint, s.count) for s in sources], cfg.tile_size, cfg.overlap,
                cfg.voxel_size, kopts, budget, cfg.piece_points, cfg.tile_shape)
    old = man.get("plan")
    if old is not None and old.get("key") == key:
        log(f"plan: reused ({len(sources)} file(s), {old['grid']['points']:,} points)")
        return Lattice.from_dict(old["lattice"]), old
    bars.add("pass 1: count", len(pieces))
    grid = CountGrid()

    def add(stats) -> None:
        grid.add(stats)
        bars.advance("pass 1: count", info=f"{grid.points:,} points")

    run_id = uuid.uuid4().hex[:8]
    futs = client.map(count_piece, pieces, chunk_points=cfg.chunk_points,
                      key=[f"count-{p.index}-{run_id}" for p in pieces])
    _gather(client, futs, add)
    lattice, notes = make_lattice(grid, depth=int(kopts.get("depth", KernelConfig.depth)), voxel_size=cfg.voxel_size,
                                  detail=float(kopts.get("detail", KernelConfig.detail)),
                                  min_resolution=kopts.get("min_resolution", KernelConfig.min_resolution),
                                  tile_size=cfg.tile_size,
                                  overlap=cfg.overlap, max_tile_points=budget, shape=cfg.tile_shape)
    plan = {"key": key, "lattice": lattice.to_dict(), "grid": grid.to_dict(), "notes": notes,
            "sources": [asdict(s) for s in sources]}
    man.set("plan", plan)
    edge = " x ".join(f"{v:.4g}" for v in lattice.tile_edge)
    log(f"plan: {grid.points:,} points, voxel {lattice.voxel_size:g}, {notes['shape']} tiles {edge}, "
        f"overlap {lattice.margin:g}, ~{notes['estimated_tiles']} tiles "
        f"(largest ~{notes['largest_shard_estimate']:,} points)")
    if "warning" in notes:
        log(f"warning: {notes['warning']}")
    return lattice, plan


def _shard(client, cfg: BatchConfig, out: Path, lattice: Lattice, plan_key: str, pieces, man, bars: _Bars,
           log: Log) -> None:
    """Pass 2: spill the pieces not yet spilled under this plan (same inputs, same lattice)."""
    from recon.tiling.shards import remove_temporaries

    shard_dir = out / "shards"
    if man.get("shard_plan") != plan_key:  # other inputs or another lattice: start pass 2 over
        man.reset_shards()
        shutil.rmtree(shard_dir, ignore_errors=True)
        man.set("shard_plan", plan_key)
    remove_temporaries(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    todo = [p for p in pieces if p.index not in man.done_pieces()]
    if not todo:
        log("pass 2: shards reused")
        return
    bars.add("pass 2: shard", len(todo))
    by_index = {p.index: p for p in todo}
    t0 = {p.index: time.perf_counter() for p in todo}

    def done(result) -> None:
        idx, parts = result
        p = by_index[idx]
        man.piece_done(idx, p.source.path, p.start, p.stop, time.perf_counter() - t0[idx],
                       [(tile_id(q.tile), q.core, q.margin, q.sha1) for q in parts])
        bars.advance("pass 2: shard")

    run_id = uuid.uuid4().hex[:8]
    futs = [client.submit(_spill, p, lattice, str(shard_dir), cfg.chunk_points, key=f"spill-{p.index}-{run_id}")
            for p in todo]
    _gather(client, futs, done)


def _spill(piece, lattice, shard_dir, chunk_points):
    from recon.tiling.shards import spill_piece

    return piece.index, spill_piece(piece, lattice, shard_dir, chunk_points)


# --------------------------------------------------------------------------- tiles


class _Scheduler:
    """Submits tile tasks, retries failures, and starts a tile's meshing once its neighbourhood is fitted."""

    def __init__(self, client, cfg: BatchConfig, out: Path, lattice: Lattice, man, bars: _Bars,
                 summary: BatchSummary, log: Log):
        from distributed import as_completed

        self.client, self.cfg, self.out, self.lattice, self.man = client, cfg, out, lattice, man
        self.bars, self.summary, self.log = bars, summary, log
        self.ac = as_completed()
        self.running: dict[str, tuple] = {}
        self.run_id = uuid.uuid4().hex[:8]
        self.kopts = cfg.kernel_options()
        self.rows = {r["id"]: dict(r) for r in man.tiles()}
        self.existing = {parse_tile_id(t) for t in self.rows}
        self.fit_state: dict[str, str] = {}
        self.mesh_state: dict[str, str] = {}
        self.points_done = 0
        self.on_tile: Callable[[str, str, dict], None] | None = None

    def task(self, tid: str, nbrs: tuple = ()):
        from recon.tiling.job import TileTask

        return TileTask(parse_tile_id(tid), self.lattice.to_dict(), str(self.out), self.kopts, self.cfg.orient,
                        nbrs, self.cfg.preview_ratio if self.cfg.preview else 0.0, dict(self.cfg.faults))

    def submit(self, phase: str, tid: str, attempt: int, nbrs: tuple = ()) -> None:
        from recon.tiling.job import fit_tile, mesh_tile

        fn = fit_tile if phase == "fit" else mesh_tile
        fut = self.client.submit(fn, self.task(tid, nbrs), key=f"{phase}-{tid}-{attempt}-{self.run_id}", pure=False,
                                 priority=10 if phase == "mesh" else 0)
        self.running[fut.key] = (phase, tid, attempt, nbrs)
        self.ac.add(fut)

    # ------------------------------------------------------------------ decisions
    def deps_hash(self, tid: str) -> tuple[tuple, str]:
        nbrs = tuple(n for n in neighbours(parse_tile_id(tid), self.existing) if self.fit_state[tile_id(n)] == "done")
        digest = _sha1([(tile_id(n), self.rows[tile_id(n)]["field_sha1"]) for n in nbrs], self.kopts,
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
        if (self.cfg.resume and row["mesh_status"] == "done" and row["deps_hash"] == digest and row["mesh_path"]
                and Path(row["mesh_path"]).exists()):
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
            values.update(field_path=res["field"], field_sha1=res["field_sha1"])
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
                             mesh_path=res["mesh"], mesh_sha1=res["mesh_sha1"], deps_hash=self.rows[tid]["deps_hash"],
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
                  and (row["fit_status"] == "empty" or (row["field_path"] and Path(row["field_path"]).exists())))
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


def _tiles(client, cfg: BatchConfig, out: Path, lattice: Lattice, man, bars: _Bars, summary: BatchSummary,
           log: Log, on_tile: Callable[[str, str, dict], None] | None = None) -> None:
    """Register the tiles found by pass 2, then fit and mesh them."""
    from recon.tiling.shards import shard_hash

    parts = man.tile_parts()
    kopts = cfg.kernel_options()
    for tid, info in sorted(parts.items()):
        ijk = parse_tile_id(tid)
        input_hash = _sha1(shard_hash(info["parts"]), lattice.key(), kopts, cfg.orient)
        man.upsert_tile(tid, ijk, lattice.core_box(np.asarray(ijk)), info["core"], info["points"], input_hash)
    man.drop_tiles_except(set(parts))
    sched = _Scheduler(client, cfg, out, lattice, man, bars, summary, log)
    sched.on_tile = on_tile
    sched.run()
    summary.tiles = len(sched.rows)
    summary.fitted = sum(1 for s in sched.fit_state.values() if s == "done")
    summary.empty = sum(1 for s in sched.mesh_state.values() if s == "empty")
    summary.done = sum(1 for s in sched.mesh_state.values() if s == "done")


# --------------------------------------------------------------------------- stitching


def _stitch(cfg: BatchConfig, out: Path, lattice: Lattice, man, summary: BatchSummary, log: Log) -> None:
    """Merge the meshed tiles (tile order) into scene.ply; write scene.json and preview.ply."""
    from recon.io.atomic import atomic_write
    from recon.tiling.job import preview_path
    from recon.tiling.stitch import merge_tiles

    rows = man.tiles()
    done = [r for r in rows if r["mesh_status"] == "done" and r["mesh_path"]]
    comment = (f"recon batch: {len(done)} tiles, origin {' '.join(repr(v) for v in lattice.origin)}, "
               f"voxel {lattice.voxel_size!r}")
    merged = merge_tiles([(r["id"], r["mesh_path"]) for r in done], out / "scene.ply", comments=(comment,))
    summary.mesh, summary.vertices, summary.faces = merged.path, merged.vertices, merged.faces
    summary.welded = merged.welded
    log(f"stitched {len(done)} tile(s): {merged.vertices:,} vertices, {merged.faces:,} faces "
        f"({merged.welded:,} border vertices welded) -> {merged.path}")
    if cfg.preview:
        prev = [(r["id"], str(preview_path(out, parse_tile_id(r["id"])))) for r in done]
        prev = [p for p in prev if Path(p[1]).exists()]
        if prev:
            summary.preview = merge_tiles(prev, out / "preview.ply", weld=False, comments=(comment,)).path
    index = {
        "format": "recon-batch-scene/1",
        "mesh": "scene.ply",
        "preview": "preview.ply" if summary.preview else None,
        "origin": list(lattice.origin), "voxel_size": lattice.voxel_size,
        "tile_edge": [float(v) for v in lattice.tile_edge],
        "overlap": lattice.margin, "vertices": merged.vertices, "faces": merged.faces,
        "tiles": [],
    }
    for r in rows:
        rng = merged.ranges.get(r["id"])
        index["tiles"].append({
            "id": r["id"], "ijk": [r["i"], r["j"], r["k"]],
            "core_box": [[r["lo_x"], r["lo_y"], r["lo_z"]], [r["hi_x"], r["hi_y"], r["hi_z"]]],
            "fit": r["fit_status"], "mesh_status": r["mesh_status"], "core_points": r["core"], "points": r["points"],
            "mesh": str(Path(r["mesh_path"]).relative_to(out)) if r["mesh_path"] else None,
            "vertices": r["vertices"], "faces": r["faces"],
            "merged_vertices": [rng[0], rng[1]] if rng else None, "merged_faces": [rng[2], rng[3]] if rng else None,
            "error": r["error"],
        })
    with atomic_write(out / "scene.json") as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    summary.index = str(out / "scene.json")
