"""The Dask driver of a batch job: plan, shard, fit and mesh tiles, stitch, report.

Steps (each resumable; the driver holds the plan, the manifest and small task results only):

1. check the options, the inputs' headers and the job folder's location (writable, not an input),
   and cut the inputs into pieces;
2. pass 1: one :func:`recon.tiling.plan.count_piece` task per piece -> counts, bounds and moments;
   the cloud is checked like ``recon reconstruct`` checks its input
   (:func:`recon.tiling.cloudcheck.check_cloud`) -> lattice. Only now is the job folder created;
3. pass 2: one :func:`recon.tiling.shards.spill_piece` task per piece -> shards on disk;
4. fit and mesh the tiles (:mod:`recon.tiling.scheduler`);
5. stitch the tile meshes into ``scene.ply`` (streamed), write ``scene.json`` and the preview.

The cluster (:mod:`recon.tiling.cluster`) is an embedded :class:`distributed.LocalCluster` or an
existing scheduler (``scheduler``); the folder must then be on a file system every worker sees under
the same path. A failed start leaves no job folder behind; a full disk or a refused write later is
one error line (:func:`recon.tiling.jobfolder.reported_write_errors`).
"""

from __future__ import annotations

import json
import resource
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from recon.errors import EmptyResultError
from recon.tiling.cloudcheck import check_cloud
from recon.tiling.cluster import check_local_workers, cluster_memory_limit, dask_client
from recon.tiling.config import BatchConfig
from recon.tiling.job import mesh_path, preview_path
from recon.tiling.jobfolder import MANIFEST, JobFolder, check_job_folder, relative_name, reported_write_errors
from recon.tiling.lattice import Lattice, parse_tile_id, tile_id
from recon.tiling.manifest import Manifest
from recon.tiling.scheduler import run_tiles, stable_hash
from recon.tiling.streams import Source, list_inputs, make_pieces, probe

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


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
        ReconError: bad inputs, options or job folder (one line); no job folder is left behind
            when the run fails before pass 2.
    """
    log = log or (lambda _msg: None)
    t_start = time.perf_counter()
    out = Path(cfg.output).expanduser().resolve()
    files = list_inputs(cfg.inputs)
    check_job_folder(out, [*cfg.inputs, *files], cfg.resume)
    check_local_workers(cfg)
    cfg.kernel_options()  # refuses bad kernel options now, not in every tile
    sources = [probe(p.resolve()) for p in files]
    pieces = make_pieces(sources, cfg.piece_points)
    summary = BatchSummary(output=str(out))
    bars = _Bars(console, progress)
    folder = JobFolder(out)
    try:
        with reported_write_errors(out), dask_client(cfg, log) as (client, dashboard):
            summary.dashboard = dashboard
            t = time.perf_counter()
            lattice, plan = _plan(client, cfg, sources, pieces, _previous_plan(out, cfg.resume), bars, log)
            summary.points, summary.dropped = plan["grid"]["points"], plan["grid"]["dropped"]
            summary.lattice, summary.notes = lattice.to_dict(), plan["notes"]
            summary.seconds["plan"] = time.perf_counter() - t
            folder.create()
            try:
                with Manifest(out / MANIFEST) as man:
                    man.set("plan", plan)
                    t = time.perf_counter()
                    _shard(client, cfg, out, lattice, plan["key"], pieces, man, bars, log)
                    summary.seconds["shard"] = time.perf_counter() - t
                    t = time.perf_counter()
                    run_tiles(client, cfg, out, lattice, man, bars, summary, log, on_tile)
                    summary.seconds["tiles"] = time.perf_counter() - t
                    bars.close()
                    t = time.perf_counter()
                    _stitch(cfg, out, lattice, man, summary, log)
                    summary.seconds["stitch"] = time.perf_counter() - t
            except BaseException:
                folder.discard_if_unused()
                raise
    finally:
        bars.close()
    summary.seconds["total"] = time.perf_counter() - t_start
    summary.driver_rss_mib = _rss_mib()
    return summary


def _previous_plan(out: Path, resume: bool) -> dict | None:
    """The plan stored by the job being resumed (None: a new job)."""
    if not resume or not (out / MANIFEST).is_file():
        return None
    with Manifest(out / MANIFEST) as man:
        plan = man.get("plan")
    return plan if isinstance(plan, dict) else None


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


def _inputs_name(sources: list[Source]) -> str:
    """The input named in an error about the whole cloud: the file, or how many files."""
    return sources[0].path if len(sources) == 1 else f"{len(sources)} input files"


def _plan(client, cfg: BatchConfig, sources, pieces, old: dict | None, bars: _Bars, log: Log) -> tuple[Lattice, dict]:
    """Pass 1, the input check and the lattice (reused on resume when inputs and options are unchanged).

    Writes nothing: the caller stores the plan once the job folder exists.
    """
    from recon.backends.kernel.config import KernelConfig
    from recon.tiling.plan import CountGrid, count_piece, make_lattice

    kopts = cfg.kernel_options()
    budget = cfg.tile_point_budget()
    key = stable_hash(PLAN_VERSION, [(s.path, s.fingerprint, s.count) for s in sources], cfg.tile_size,
                      cfg.overlap, cfg.voxel_size, kopts, budget, cfg.piece_points, cfg.tile_shape)
    # a plan is reused only when it was checked (plans of older versions have no "spread")
    if old is not None and old.get("key") == key and "spread" in old.get("grid", {}):
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
    check_cloud(grid.points, grid.dropped, grid.lo, grid.hi, grid.moments, _inputs_name(sources))
    lattice, notes = make_lattice(grid, depth=int(kopts.get("depth", KernelConfig.depth)), voxel_size=cfg.voxel_size,
                                  detail=float(kopts.get("detail", KernelConfig.detail)),
                                  min_resolution=kopts.get("min_resolution", KernelConfig.min_resolution),
                                  tile_size=cfg.tile_size,
                                  overlap=cfg.overlap, max_tile_points=budget, shape=cfg.tile_shape)
    plan = {"key": key, "lattice": lattice.to_dict(), "grid": grid.to_dict(), "notes": notes,
            "sources": [asdict(s) for s in sources]}
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


# --------------------------------------------------------------------------- stitching


def _stitch(cfg: BatchConfig, out: Path, lattice: Lattice, man, summary: BatchSummary, log: Log) -> None:
    """Merge the meshed tiles (tile order) into scene.ply; write scene.json and preview.ply.

    Raises:
        EmptyResultError: every tile succeeded and none holds a face (nothing is written).
    """
    from recon.io.atomic import atomic_write
    from recon.tiling.stitch import merge_tiles

    rows = man.tiles()
    done = [r for r in rows if r["mesh_status"] == "done"]
    if not summary.failed and not any(r["faces"] for r in done):
        raise EmptyResultError(f"the reconstruction is empty: none of the {len(rows)} tile(s) holds a surface", out,
                               "use a denser scan, or a larger --tile-size or --voxel-size")
    comment = (f"recon batch: {len(done)} tiles, origin {' '.join(repr(v) for v in lattice.origin)}, "
               f"voxel {lattice.voxel_size!r}")
    merged = merge_tiles([(r["id"], str(mesh_path(out, parse_tile_id(r["id"])))) for r in done], out / "scene.ply",
                         comments=(comment,))
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
            "mesh": relative_name(out, mesh_path(out, parse_tile_id(r["id"]))) if r["mesh_status"] == "done" else None,
            "vertices": r["vertices"], "faces": r["faces"],
            "merged_vertices": [rng[0], rng[1]] if rng else None, "merged_faces": [rng[2], rng[3]] if rng else None,
            "error": r["error"],
        })
    with atomic_write(out / "scene.json") as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    summary.index = str(out / "scene.json")


__all__ = ["BatchSummary", "cluster_memory_limit", "dask_client", "run_batch"]
