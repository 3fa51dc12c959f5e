"""The Dask driver of a batch job: plan, shard, fit and mesh tiles, stitch, report.

Steps (each resumable; the driver holds the plan, the manifest and small task results only):

1. check the options, the inputs' headers and the job folder's location (writable, not an input),
   and cut the inputs into pieces;
2. pass 1: one :func:`recon.tiling.plan.count_piece` task per piece -> counts, bounds and moments;
   the cloud is checked like ``recon reconstruct`` checks its input
   (:func:`recon.tiling.cloudcheck.check_cloud`) -> lattice. Only now is the job folder created;
3. pass 2: one :func:`recon.tiling.shards.spill_piece` task per piece -> shards on disk;
4. fit and mesh the tiles (:mod:`recon.tiling.scheduler`);
5. stitch the tile meshes into ``scene.ply`` (streamed), write the preview and ``scene.json``
   (:func:`recon.tiling.scene_index.write_scene_index`).

Every stage is a function of one :class:`recon.tiling.run_context.BatchRun` (options, job folder,
client, manifest, progress, log, summary, lattice) and its own few inputs.

The cluster (:mod:`recon.tiling.cluster`) is an embedded :class:`distributed.LocalCluster` or an
existing scheduler (``scheduler``); the folder must then be on a file system every worker sees under
the same path. A failed start leaves no job folder behind; a full disk or a refused write later is
one error line (:func:`recon.tiling.jobfolder.reported_write_errors`).
"""

from __future__ import annotations

import resource
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from distributed import as_completed

from recon.backends.kernel.config import KernelConfig
from recon.errors import EmptyResultError
from recon.tiling.cloudcheck import check_cloud
from recon.tiling.cluster import check_local_workers, cluster_memory_limit, dask_client
from recon.tiling.config import BatchConfig
from recon.tiling.job import mesh_path, preview_path
from recon.tiling.jobfolder import MANIFEST, JobFolder, check_job_folder, reported_write_errors
from recon.tiling.lattice import Lattice, parse_tile_id, tile_id
from recon.tiling.manifest import Manifest
from recon.tiling.plan import CountGrid, count_piece, make_lattice
from recon.tiling.run_context import Bars, BatchRun, BatchSummary, Log, TileCallback
from recon.tiling.scene_index import write_scene_index
from recon.tiling.scheduler import run_tiles, stable_hash
from recon.tiling.shards import remove_temporaries, spill_task
from recon.tiling.stitch import merge_tiles
from recon.tiling.streams import Piece, Source, list_inputs, make_pieces, probe

PLAN_VERSION = 1


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- the run


def run_batch(cfg: BatchConfig, console: Any = None, progress: bool = True, log: Log | None = None,
              on_tile: TileCallback | None = None) -> BatchSummary:
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
    bars = Bars(console, progress)
    folder = JobFolder(out)
    try:
        with reported_write_errors(out), dask_client(cfg, log) as (client, dashboard):
            run = BatchRun(cfg, out, client, bars, summary, log, on_tile)
            summary.dashboard = dashboard
            t = time.perf_counter()
            run.lattice, plan = _plan(run, sources, pieces, _previous_plan(out, cfg.resume))
            run.plan_key = plan["key"]
            summary.points, summary.dropped = plan["grid"]["points"], plan["grid"]["dropped"]
            summary.lattice, summary.notes = run.lattice.to_dict(), plan["notes"]
            summary.seconds["plan"] = time.perf_counter() - t
            folder.create()
            try:
                with Manifest(out / MANIFEST) as man:
                    run.man = man
                    man.set("plan", plan)
                    _timed(run, "shard", lambda: _shard(run, pieces))
                    _timed(run, "tiles", lambda: run_tiles(run))
                    bars.close()
                    _timed(run, "stitch", lambda: _stitch(run))
            except BaseException:
                folder.discard_if_unused()
                raise
    finally:
        bars.close()
    summary.seconds["total"] = time.perf_counter() - t_start
    summary.driver_rss_mib = _rss_mib()
    return summary


def _timed(run: BatchRun, name: str, stage: Callable[[], None]) -> None:
    """Run ``stage`` and record its wall time as ``summary.seconds[name]``."""
    t = time.perf_counter()
    stage()
    run.summary.seconds[name] = time.perf_counter() - t


def _previous_plan(out: Path, resume: bool) -> dict | None:
    """The plan stored by the job being resumed (None: a new job)."""
    if not resume or not (out / MANIFEST).is_file():
        return None
    with Manifest(out / MANIFEST) as man:
        plan = man.get("plan")
    return plan if isinstance(plan, dict) else None


def _gather(futures: list, on_result: Callable[[Any], None]) -> None:
    """Wait for ``futures``; call ``on_result`` for each; re-raise the first task error as is."""
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


def _plan(run: BatchRun, sources: list[Source], pieces: list[Piece], old: dict | None) -> tuple[Lattice, dict]:
    """Pass 1, the input check and the lattice (reused on resume when inputs and options are unchanged).

    Writes nothing: the caller stores the plan once the job folder exists.
    """
    cfg, log = run.cfg, run.log
    kopts = cfg.kernel_options()
    budget = cfg.tile_point_budget()
    key = stable_hash(PLAN_VERSION, [(s.path, s.fingerprint, s.count) for s in sources], cfg.tile_size,
                      cfg.overlap, cfg.voxel_size, kopts, budget, cfg.piece_points, cfg.tile_shape)
    # a plan is reused only when it was checked (plans of older versions have no "spread")
    if old is not None and old.get("key") == key and "spread" in old.get("grid", {}):
        log(f"plan: reused ({len(sources)} file(s), {old['grid']['points']:,} points)")
        return Lattice.from_dict(old["lattice"]), old
    run.bars.add("pass 1: count", len(pieces))
    grid = CountGrid()

    def add(stats) -> None:
        grid.add(stats)
        run.bars.advance("pass 1: count", info=f"{grid.points:,} points")

    run_id = uuid.uuid4().hex[:8]
    futs = run.client.map(count_piece, pieces, chunk_points=cfg.chunk_points,
                          key=[f"count-{p.index}-{run_id}" for p in pieces])
    _gather(futs, add)
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


def _shard(run: BatchRun, pieces: list[Piece]) -> None:
    """Pass 2: spill the pieces not yet spilled under this plan (same inputs, same lattice)."""
    lattice, man = run.planned()
    shard_dir = run.out / "shards"
    if man.get("shard_plan") != run.plan_key:  # other inputs or another lattice: start pass 2 over
        man.reset_shards()
        shutil.rmtree(shard_dir, ignore_errors=True)
        man.set("shard_plan", run.plan_key)
    remove_temporaries(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    todo = [p for p in pieces if p.index not in man.done_pieces()]
    if not todo:
        run.log("pass 2: shards reused")
        return
    run.bars.add("pass 2: shard", len(todo))
    by_index = {p.index: p for p in todo}
    t0 = {p.index: time.perf_counter() for p in todo}

    def done(result) -> None:
        idx, parts = result
        p = by_index[idx]
        man.piece_done(idx, p.source.path, p.start, p.stop, time.perf_counter() - t0[idx],
                       [(tile_id(q.tile), q.core, q.margin, q.sha1) for q in parts])
        run.bars.advance("pass 2: shard")

    run_id = uuid.uuid4().hex[:8]
    futs = [run.client.submit(spill_task, p, lattice, str(shard_dir), run.cfg.chunk_points,
                              key=f"spill-{p.index}-{run_id}")
            for p in todo]
    _gather(futs, done)


# --------------------------------------------------------------------------- stitching


def _stitch(run: BatchRun) -> None:
    """Merge the meshed tiles (tile order) into scene.ply; write preview.ply and scene.json.

    Raises:
        EmptyResultError: every tile succeeded and none holds a face (nothing is written).
    """
    lattice, man = run.planned()
    out, summary = run.out, run.summary
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
    run.log(f"stitched {len(done)} tile(s): {merged.vertices:,} vertices, {merged.faces:,} faces "
            f"({merged.welded:,} border vertices welded) -> {merged.path}")
    if run.cfg.preview:
        prev = [(r["id"], str(preview_path(out, parse_tile_id(r["id"])))) for r in done]
        prev = [p for p in prev if Path(p[1]).exists()]
        if prev:
            summary.preview = merge_tiles(prev, out / "preview.ply", weld=False, comments=(comment,)).path
    summary.index = str(write_scene_index(out, lattice, rows, merged, has_preview=bool(summary.preview)))


__all__ = ["BatchRun", "BatchSummary", "cluster_memory_limit", "dask_client", "run_batch"]
