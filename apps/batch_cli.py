"""``recon batch`` (out-of-core scene jobs on Dask) and ``recon synth-scene`` (a generated scene).

:func:`register` adds both commands to a typer app; heavy imports (dask, torch) happen inside
the commands, so registering costs nothing at start-up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from recon.errors import ConfigError

from recon_apps.entry import run


def _console():
    from rich.console import Console

    return Console(stderr=True)


def batch(inputs: list[str], output: str | None = None, job: str | None = None, quiet: bool = False,
          json_out: bool = False, view: bool = False, view_snapshot: str | None = None, **options: Any) -> int:
    """Run ``recon batch``; returns the exit status (0 ok, 1 some tiles failed).

    Args:
        inputs: point cloud files / folders, or a single job ``.yaml`` file.
        output: the job folder (overrides the job file's).
        job: a job YAML file (same fields as :class:`recon.tiling.config.BatchConfig`).
        quiet: no progress output.
        json_out: print the summary as JSON on stdout.
        view: show the finished tiles in a window while the job runs (redrawn on the driver as tiles finish).
        view_snapshot: headless live view: refresh this PNG as tiles finish.
        options: BatchConfig fields given on the command line (None = not given).
    """
    from recon.tiling.config import BatchConfig, load_job
    from recon.tiling.options import check_options
    from recon.tiling.runner import run_batch

    data: dict[str, Any] = {}
    if len(inputs) == 1 and Path(inputs[0]).suffix.lower() in (".yaml", ".yml"):
        job, inputs = inputs[0], []
    if job:
        data.update(load_job(job))  # types and ranges checked, errors name the file and key
    flags = {k: v for k, v in options.items() if v is not None}
    check_options(flags, cli=True)  # errors name the flag
    if inputs:
        data["inputs"] = list(inputs)
    if output:
        data["output"] = output
    data.update(flags)
    if not data.get("inputs"):
        raise ConfigError("no input given", None, "pass point cloud files, a folder, or a job .yaml")
    if not data.get("output"):
        raise ConfigError("no output folder given", None, "pass -o OUTDIR (or set output in the job file)")
    cfg = BatchConfig.from_dict(data, job)
    console = _console()

    def log(msg: str) -> None:
        if not quiet:
            console.print(msg, highlight=False, soft_wrap=True)

    live = None
    on_tile = None
    if view or view_snapshot:
        from recon_apps.viewer.live import TileMosaic
        from recon_apps.viewer.live_process import make_live_view

        live = make_live_view(view, view_snapshot)  # tiles arrive on this (the driver's) thread
        on_tile = TileMosaic(live).on_tile
    try:
        summary = run_batch(cfg, console=None if quiet else console, progress=not quiet, log=log, on_tile=on_tile)
        if live is not None:
            live.refresh(force=True)
    except KeyboardInterrupt:
        if (Path(cfg.output).expanduser() / "manifest.sqlite").exists():
            console.print("[bold red]interrupted[/bold red]: finished tiles are kept; run again with --resume",
                          highlight=False)
        else:
            console.print("[bold red]interrupted[/bold red]: nothing was written", highlight=False)
        return 130
    if json_out:
        print(json.dumps(summary.to_dict(), indent=1, default=str))
    if not quiet:
        print_batch_summary(summary, console)
    if live is not None:
        live.hold(lambda: console.print("close the window to exit", highlight=False))
    return 1 if summary.failed else 0


def _parse_faults(items: list[str]) -> dict | None:
    out = {}
    for item in items:
        key, sep, spec = item.rpartition("=")
        if not sep or ":" not in key:
            raise ConfigError(f"--fault '{item}' is not PHASE:TILE=KIND:N", None, "e.g. --fault fit:0_0_0=raise:1")
        out[key] = spec
    return out or None


def register(app: typer.Typer) -> None:
    """Add ``batch`` and ``synth-scene`` to ``app`` (a second call does nothing)."""
    if any(getattr(c, "name", None) == "batch" for c in app.registered_commands):
        return

    @app.command("batch")
    def batch_command(
        inputs: list[str] = typer.Argument(..., help="LAS/LAZ, binary PLY or NPY files, folders of them, or a job .yaml"),
        output: Optional[str] = typer.Option(None, "-o", "--output", help="job folder (manifest, tiles, scene.ply)"),
        tile_size: Optional[float] = typer.Option(None, "--tile-size", help="x/y tile edge, world units (default: the largest that fits --memory-limit)"),
        overlap: Optional[float] = typer.Option(None, "--overlap", help="blend half-width between tiles, world units (default: 4 voxels)"),
        backend: Optional[str] = typer.Option(None, "--backend", "-b", help="kernel (the only backend with seamless tiles)"),
        workers: Optional[int] = typer.Option(None, "--workers", "-w", help="local Dask workers (processes; default 2)"),
        memory_limit: Optional[str] = typer.Option(None, "--memory-limit", help="per-worker memory, e.g. 2GB"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="existing Dask scheduler, e.g. tcp://host:8786"),
        resume: bool = typer.Option(False, "--resume", help="continue the job in the output folder"),
        retries: Optional[int] = typer.Option(None, "--retries", help="re-runs of a failing tile before it is reported (default 2)"),
        voxel_size: Optional[float] = typer.Option(None, "--voxel-size", help="finest voxel, world units (default: from the density)"),
        detail: Optional[float] = typer.Option(None, "--detail", help="0..1, points per voxel 20..1 (default 0.6)"),
        orient: Optional[str] = typer.Option(None, "--orient", help="normals when the input has none: up (airborne) | mst"),
        tile_shape: Optional[str] = typer.Option(None, "--tile-shape", help="auto (columns when they fit) | column | cube"),
        max_tile_points: Optional[int] = typer.Option(None, "--max-tile-points", help="points per tile (default: from --memory-limit)"),
        preview: Optional[bool] = typer.Option(None, "--preview/--no-preview", help="write a decimated preview.ply (default on)"),
        config: Optional[str] = typer.Option(None, "--config", "-c", help="job YAML file (e.g. configs/batch/batch.yaml)"),
        in_process: bool = typer.Option(False, "--in-process", hidden=True, help="threads in this process (debugging)"),
        fault: list[str] = typer.Option([], "--fault", hidden=True, help="fault injection PHASE:TILE=KIND:N (tests)"),
        json_out: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
        view: bool = typer.Option(False, "--view", help="show the finished tiles in a window while the job runs"),
        view_snapshot: Optional[str] = typer.Option(None, "--view-snapshot", help="headless live view: refresh this PNG as tiles finish"),
    ) -> None:
        """Reconstruct a large scene out of core: tiles on Dask, resumable, stitched into one mesh."""
        code = batch(inputs, output, job=config, quiet=quiet, json_out=json_out, view=view,
                     view_snapshot=view_snapshot, tile_size=tile_size,
                     overlap=overlap, backend=backend, workers=workers, memory_limit=memory_limit,
                     scheduler=scheduler, resume=resume or None, retries=retries, voxel_size=voxel_size,
                     detail=detail, orient=orient, tile_shape=tile_shape, max_tile_points=max_tile_points, preview=preview,
                     processes=False if in_process else None, faults=_parse_faults(fault))
        if code:  # sys.exit, not typer.Exit: the status must survive standalone_mode=False in recon_apps.cli
            sys.exit(code)

    @app.command("synth-scene")
    def synth_scene_command(
        output: Path = typer.Option(..., "-o", "--output", help="scene file: .laz, .las, .ply or .npy"),
        points: str = typer.Option("1M", "--points", "-n", help="number of points, e.g. 20M, 300k"),
        seed: int = typer.Option(0, "--seed", help="random seed"),
        density: float = typer.Option(12.0, "--density", help="points per square metre of ground (sets the size)"),
        noise: float = typer.Option(0.03, "--noise", help="range noise std, metres"),
        outliers: float = typer.Option(0.0005, "--outliers", help="fraction of outlier points"),
        normals: bool = typer.Option(True, "--normals/--no-normals", help="store normals (LAS extra bytes nx ny nz)"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    ) -> None:
        """Generate a city-like airborne LiDAR scene (terrain, buildings, trees, scanner noise), streamed."""
        from recon.io.outputs import check_output_file
        from recon.tiling.synth_scene import SceneSpec, check_disk_space, parse_count, scene_format, write_scene

        spec = SceneSpec(parse_count(points), seed=seed, density=density, noise=noise, outliers=outliers)
        scene_format(output)
        check_output_file(output, option="-o")
        check_disk_space(output, spec, normals)
        n = spec.points
        console = _console()
        if quiet:
            info = write_scene(output, spec, normals=normals)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn("[bold]synth-scene"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task("points", total=n)
                info = write_scene(output, spec, normals=normals,
                                   progress=lambda done, total: bar.update(task, completed=done))
        if not quiet:
            console.print(f"[green]wrote[/green] {info['path']}: {info['points']:,} points, {info['side']:.0f} m square, "
                          f"offset {tuple(info['offset'])}", highlight=False, soft_wrap=True)


def print_batch_summary(s: Any, console: Any) -> None:
    """The end of a ``recon batch`` run on stderr: tile counts, what was written, each failed tile and the fix."""
    console.print(f"tiles: {s.fitted} fitted, {s.done} meshed, {s.empty} empty, {len(s.failed)} failed of {s.tiles} "
                  f"({s.reused_fits} fits and {s.reused_meshes} meshes reused); {s.points:,} points "
                  f"in {s.seconds.get('total', 0):.1f} s; driver peak RSS {s.driver_rss_mib:.0f} MiB",
                  highlight=False, soft_wrap=True)
    console.print(f"[green]wrote[/green] {escape(str(s.mesh))} ({s.vertices:,} vertices, {s.faces:,} faces), "
                  f"{escape(str(s.index))}" + (f", {escape(str(s.preview))}" if s.preview else ""),
                  highlight=False, soft_wrap=True)
    for f in s.failed:
        console.print(f"[bold red]failed[/bold red] tile {escape(str(f['tile']))} ({f['phase']}, {f['attempts']} "
                      f"attempts): {escape(str(f['error']))}", highlight=False, soft_wrap=True)
    if s.failed:
        console.print("fix the cause and run again with --resume: only unfinished tiles are recomputed",
                      highlight=False)


def main(argv: list[str] | None = None) -> None:
    """``python -m recon_apps.batch_cli batch ...``: ``batch`` and ``synth-scene`` as a command of their own,
    errors reported as by ``recon`` (see :func:`recon_apps.entry.run`)."""
    app = typer.Typer(name="recon", add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
    register(app)
    run(app, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
