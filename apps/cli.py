"""The ``recon`` command line.

Every subcommand is a thin layer over the library. User mistakes raise
:class:`recon.errors.ReconError`; :func:`main` prints them as one line on stderr and
exits with status 2, without a traceback and without writing any output file.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from recon.errors import ConfigError, ReconError
from recon.io.outputs import check_output_file, check_writable_folder, is_inside, same_file

from recon_apps.checks import MAX_SAMPLE_POINTS, check_range
from recon_apps.inspect_cli import is_posed_images, load_checked_cloud
from recon_apps.inspect_cli import register as register_inspect

app = typer.Typer(
    name="recon",
    help="3D surface reconstruction from point clouds (and posed images) with pluggable backends.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(stderr=True)
stdout = Console()


class RichProgress:
    """A :class:`recon.progress.Progress` shown as a rich status line with a bar when fractions are known."""

    def __init__(self, enabled: bool = True) -> None:
        self.quiet = not enabled
        self.enabled = enabled and console.is_terminal
        self._progress = None
        self._task = None
        self._stage = None
        self._t0 = time.perf_counter()

    def __enter__(self) -> "RichProgress":
        if self.enabled:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                                      transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, stage: str, fraction: float | None = None, info: str | None = None) -> None:
        if self.quiet:
            return
        if self._progress is None:
            if stage != self._stage:
                console.print(f"[dim]{time.perf_counter() - self._t0:7.1f}s[/dim] {stage}"
                              + (f" ({info})" if info else ""), highlight=False, soft_wrap=True)
                self._stage = stage
            return
        if stage != self._stage or self._task is None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(stage, total=None if fraction is None else 1.0, info=info or "")
            self._stage = stage
        if fraction is not None:
            self._progress.update(self._task, total=1.0, completed=min(max(fraction, 0.0), 1.0), info=info or "")
        elif info is not None:
            self._progress.update(self._task, info=info)


def _check_output(path: Path, kind: str, inputs: list[Any]) -> None:
    """A mesh output: a known extension, not an input, in a writable folder (checked before any work)."""
    ext = path.suffix.lower()
    if kind == "mesh" and ext not in (".ply", ".obj", ".stl", ".off", ".glb"):
        raise ConfigError(f"cannot write a mesh as '{ext or '(no extension)'}'", str(path),
                          "name the output .ply, .obj, .stl, .off or .glb")
    check_output_file(path, inputs)


def _check_distinct(outputs: dict[str, Path | None]) -> None:
    """Two outputs of one command may not be the same file (the second would replace the first)."""
    given = [(opt, p) for opt, p in outputs.items() if p is not None]
    for i, (opt_a, a) in enumerate(given):
        for opt_b, b in given[i + 1:]:
            if same_file(a, b):
                raise ConfigError(f"{opt_a} and {opt_b} name the same file", str(b), f"give {opt_b} another name")


@app.command()
def reconstruct(
    input: Path = typer.Argument(..., help="point cloud or mesh file (ply, pcd, xyz/pts/txt/csv, npy/npz, las/laz, bin, obj/stl/off/glb), or a posed-image folder (COLMAP, transforms.json, cameras.npz, Middlebury)"),
    output: Path = typer.Option(..., "-o", "--output", help="mesh to write (.ply .obj .stl .off .glb)"),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="backend name (see `recon backends`); default from --config, else kernel (volsdf for posed images)"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML preset, e.g. configs/poisson.yaml"),
    set_: list[str] = typer.Option([], "--set", help="override an option: key=value (repeatable), e.g. --set depth=9 --set normals.k=30"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
    sample: Optional[int] = typer.Option(None, "--sample", help="for mesh inputs: use N surface samples with normals instead of the vertices"),
    ignore_normals: bool = typer.Option(False, "--ignore-normals", help="discard the input's normals and estimate new ones"),
    detail: Optional[float] = typer.Option(None, "--detail", help="kernel: detail level 0..1 (points per voxel 20..1)"),
    voxel_size: Optional[float] = typer.Option(None, "--voxel-size", help="kernel: finest voxel size in world units"),
    chunk_size: Optional[float] = typer.Option(None, "--chunk-size", help="kernel: solve in cubes of this size (world units)"),
    mise_iter: Optional[int] = typer.Option(None, "--mise-iter", help="kernel: MISE refinement iterations when meshing"),
    depth: Optional[int] = typer.Option(None, "--depth", help="poisson: octree depth"),
    model: Optional[str] = typer.Option(None, "--model", help="kernel: none (training-free, default) | learned (the committed neural kernel)"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    save_field: Optional[Path] = typer.Option(None, "--save-field", help="kernel: also write the solved field (.npz) for `recon view` (iso-level and trim sliders)"),
    view_live: bool = typer.Option(False, "--view", help="show the input, progress and the result in a window while it runs"),
    view_snapshot: Optional[Path] = typer.Option(None, "--view-snapshot", help="headless live view: refresh this PNG every few seconds"),
    steps: Optional[int] = typer.Option(None, "--steps", help="image backends: training steps"),
    time_budget: Optional[str] = typer.Option(None, "--time-budget", help="image backends: training time, e.g. 90s, 20m, 1h"),
    resume: bool = typer.Option(False, "--resume", help="image backends: continue from the checkpoint in --checkpoint-dir"),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir", help="image backends: checkpoint folder (default: OUTPUT without suffix + '.ckpt')"),
    mask_dir: Optional[Path] = typer.Option(None, "--mask-dir", help="posed images: folder of masks matched to the images by file name"),
    save_gaussians: Optional[Path] = typer.Option(None, "--save-gaussians", help="gvkf: also write the trained Gaussians (.npz, world units) for `recon view` and `recon render-gaussians`"),
) -> None:
    """Reconstruct a surface mesh from a point cloud (missing normals are estimated) or from posed images."""
    from recon.io import save_mesh
    from recon.pipeline import load_reconstruct_config, reconstruct as run

    posed = is_posed_images(input)
    check_range("--sample", sample, 1, MAX_SAMPLE_POINTS, "1000000")
    check_range("--steps", steps, 1, MAX_STEPS, "20000")
    check_range("--mise-iter", mise_iter, 0, MAX_MISE_ITER, "1")
    _check_output(output, "mesh", [input, config])
    for opt, extra in (("--save-field", save_field), ("--save-gaussians", save_gaussians),
                       ("--view-snapshot", view_snapshot)):
        if extra is not None:
            check_output_file(extra, [input, config], option=opt)
    _check_distinct({"-o": output, "--save-field": save_field, "--save-gaussians": save_gaussians,
                     "--view-snapshot": view_snapshot})
    overrides = list(set_)
    for key, value in (("detail", detail), ("voxel_size", voxel_size), ("chunk_size", chunk_size),
                       ("mise_iter", mise_iter), ("depth", depth), ("model", model), ("steps", steps),
                       ("time_budget", _parse_duration(time_budget))):
        if value is not None:
            overrides.append(f"{key}={value}")
    if steps is not None and time_budget is None:
        overrides.append("time_budget=null")  # --steps alone: train exactly that many steps
    cfg, backend_cfg, spec = load_reconstruct_config(str(config) if config else None, overrides, backend, device,
                                                     default_backend="volsdf" if posed else "kernel")
    if posed:
        if save_field is not None:
            raise ConfigError("--save-field is for kernel fields of point clouds", str(save_field), "drop --save-field")
        if save_gaussians is not None:
            _check_gaussians_output(save_gaussians, spec.name)
        _reconstruct_views(input, output, cfg, backend_cfg, spec, quiet=quiet, json_out=json_out, resume=resume,
                           checkpoint_dir=checkpoint_dir, mask_dir=mask_dir, live=_live_view(view_live, view_snapshot),
                           save_gaussians=save_gaussians)
        return
    if save_gaussians is not None:
        raise ConfigError("--save-gaussians is for posed-image folders with --backend gvkf", str(save_gaussians),
                          "drop --save-gaussians")
    if resume or checkpoint_dir is not None or mask_dir is not None:
        raise ConfigError("--resume, --checkpoint-dir and --mask-dir apply to posed-image inputs", str(input),
                          "pass a posed-image folder, or drop them")
    if save_field is not None:
        _check_field_output(save_field, spec.name)
    live = _live_view(view_live, view_snapshot)
    t0 = time.perf_counter()
    with RichProgress(enabled=not quiet) as progress:
        progress.update("loading", None, str(input))
        cloud, load_notes = load_checked_cloud(input, sample=sample, drop_normals=ignore_normals)

        def work(view: Any = None) -> Any:
            reporter = progress if view is None else _LiveProgress(progress, view)
            if view is not None:
                view.update(points=_preview_points(cloud), text=f"{input.name}: {len(cloud):,} points")
            out = run(cloud, config=cfg, backend_config=backend_cfg, ignore_normals=ignore_normals, progress=reporter)
            if view is not None:
                view.update(mesh=out.mesh, text=f"{input.name}: {out.mesh.n_faces:,} faces with '{spec.name}'")
            return out

        result = work() if live is None else live.run(work)
        result.notes[:0] = load_notes
        if save_field is not None:
            _write_field(result, save_field, spec.name)
        progress.update("writing", None, str(output))
        save_mesh(result.mesh, output)
    summary = {
        "input": str(input),
        "output": str(output),
        "backend": spec.name,
        "points": len(cloud),
        "vertices": result.mesh.n_vertices,
        "faces": result.mesh.n_faces,
        "seconds": round(time.perf_counter() - t0, 3),
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "notes": result.notes,
        "config": result.config,
    }
    solver = getattr(result.field, "solver_info", None)
    if solver is not None:
        summary["solver"] = solver if isinstance(solver, dict) else getattr(solver, "__dict__", str(solver))
    if json_out:
        stdout.print_json(json.dumps(summary, default=str))
        return
    if not quiet:
        for note in result.notes:
            console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        console.print(f"[green]wrote[/green] {output}: {result.mesh.n_vertices:,} vertices, {result.mesh.n_faces:,} faces "
                      f"from {len(cloud):,} points with '{spec.name}' in {summary['seconds']:.1f} s", highlight=False)
        if save_field is not None:
            console.print(f"[green]wrote[/green] {save_field}: the field (view it with `recon view {save_field}`)",
                          highlight=False)
    if live is not None:
        live.hold(lambda: console.print("close the window to exit", highlight=False))


#: the exit status of a run stopped with Ctrl-C (128 + SIGINT)
INTERRUPTED = 130
#: the most training steps an image backend may be asked for
MAX_STEPS = 10_000_000
#: MISE refinements multiply the meshed cells by 8 each
MAX_MISE_ITER = 3
# Seconds of training between two live-view previews of an image backend: GVKF sends its Gaussians'
# centres (cheap), VolSDF a mesh of its SDF at 64 cells (about 1 s on 2 cores: ~3 % of the run at 30 s).
PREVIEW_EVERY = {"gvkf": 5.0}
PREVIEW_EVERY_DEFAULT = 30.0


def _parse_duration(text: str | None) -> float | None:
    """``"90"``/``"90s"`` -> 90, ``"20m"`` -> 1200, ``"1.5h"`` -> 5400 seconds."""
    if text is None:
        return None
    t = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(t[-1:], None)
    try:
        value = float(t[:-1] if scale else t) * (scale or 1.0)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"--time-budget '{text}' is not a duration", None, "write e.g. 90s, 20m or 1h")
    return value


def _reconstruct_views(input: Path, output: Path, cfg: Any, backend_cfg: Any, spec: Any, *, quiet: bool,
                       json_out: bool, resume: bool, checkpoint_dir: Path | None, mask_dir: Path | None,
                       live: Any, save_gaussians: Path | None = None) -> None:
    """``recon reconstruct FOLDER``: posed images -> an image backend -> mesh (world units)."""
    from recon.io import save_mesh
    from recon.io.cameras import load_views
    from recon.pipeline import reconstruct_views

    ckpt = checkpoint_dir if checkpoint_dir is not None else output.with_suffix(".ckpt")
    if resume and not ckpt.is_dir():
        raise ConfigError("nothing to resume: the checkpoint folder does not exist", str(ckpt),
                          "run once without --resume (or pass --checkpoint-dir)")
    if is_inside(input, ckpt):
        raise ConfigError("the checkpoint folder holds the input images", str(ckpt),
                          "give --checkpoint-dir a folder of its own")
    check_writable_folder(ckpt, option="--checkpoint-dir")
    t0 = time.perf_counter()
    with RichProgress(enabled=not quiet) as progress:
        progress.update("loading", None, str(input))
        views = load_views(input, mask_dir=mask_dir)

        def work(view: Any = None) -> Any:
            reporter = progress if view is None else _LiveProgress(progress, view)
            train_kwargs = None
            if view is not None:  # the current mesh / Gaussians every PREVIEW_EVERY training seconds
                from recon_apps.viewer.live import training_preview

                train_kwargs = {"callback": training_preview(view),
                                "callback_every": PREVIEW_EVERY.get(spec.name, PREVIEW_EVERY_DEFAULT)}
            out = reconstruct_views(views, config=cfg, backend_config=backend_cfg, checkpoint_dir=str(ckpt),
                                    resume=resume, progress=reporter, train_kwargs=train_kwargs)
            if view is not None:
                view.update(mesh=out.mesh, text=f"{input.name}: {out.mesh.n_faces:,} faces with '{spec.name}'")
            return out

        result = work() if live is None else live.run(work)
        progress.update("writing", None, str(output))
        save_mesh(result.mesh, output)
        if save_gaussians is not None:
            result.field.world_gaussians().save(save_gaussians)
    summary = {"input": str(input), "output": str(output), "backend": spec.name, "views": len(views),
               "vertices": result.mesh.n_vertices, "faces": result.mesh.n_faces,
               "seconds": round(time.perf_counter() - t0, 3), "checkpoints": str(ckpt),
               "timings": {k: round(v, 3) for k, v in result.timings.items()}, "notes": result.notes,
               "config": result.config}
    if json_out:
        stdout.print_json(json.dumps(summary, default=str))
    elif not quiet:
        for note in result.notes:
            console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        console.print(f"[green]wrote[/green] {output}: {result.mesh.n_vertices:,} vertices, {result.mesh.n_faces:,} "
                      f"faces from {len(views)} views with '{spec.name}' in {summary['seconds']:.1f} s "
                      f"(checkpoints in {ckpt})", highlight=False)
        if save_gaussians is not None:
            console.print(f"[green]wrote[/green] {save_gaussians}: {len(result.field.gaussians):,} Gaussians "
                          f"(view them with `recon view {save_gaussians}`)", highlight=False)
    if live is not None:
        live.hold(lambda: console.print("close the window to exit", highlight=False))


class _LiveProgress:
    """Passes progress to the terminal reporter and, as a status line, to a live view."""

    def __init__(self, inner: Any, view: Any) -> None:
        self.inner, self.view = inner, view

    def update(self, stage: str, fraction: float | None = None, info: str | None = None) -> None:
        self.inner.update(stage, fraction, info)
        text = stage + (f"  {100 * fraction:.0f} %" if fraction is not None else "") + (f"  {info}" if info else "")
        self.view.update(text=text)


def _preview_points(cloud: Any, limit: int = 50_000) -> Any:
    """At most ``limit`` evenly strided points of ``cloud`` for the live view."""
    step = max(1, len(cloud) // limit)
    return cloud.subset(slice(None, None, step)) if step > 1 else cloud


def _live_view(view_live: bool, snapshot: Path | None) -> Any:
    """The LiveView for --view / --view-snapshot, or None (see recon_apps.viewer.live.make_live_view)."""
    if not view_live and snapshot is None:
        return None
    from recon_apps.viewer.live import make_live_view

    return make_live_view(view_live, snapshot)


def _check_gaussians_output(path: Path, backend: str) -> None:
    """--save-gaussians needs a .npz name in an existing folder and the gvkf backend."""
    if path.suffix.lower() != ".npz":
        raise ConfigError("saved Gaussians are an .npz file", str(path), "name it e.g. gaussians.npz")
    if not path.resolve().parent.is_dir():
        raise ConfigError("the folder for --save-gaussians does not exist", str(path), f"create {path.resolve().parent} first")
    if backend != "gvkf":
        raise ConfigError(f"backend '{backend}' has no Gaussians to save", str(path),
                          "use --backend gvkf, or drop --save-gaussians")


def _check_field_output(path: Path, backend: str) -> None:
    """--save-field needs a .npz name in an existing folder and a backend with a kernel field."""
    if path.suffix.lower() != ".npz":
        raise ConfigError("a saved field is an .npz file", str(path), "name it e.g. field.npz")
    if not path.resolve().parent.is_dir():
        raise ConfigError("the folder for --save-field does not exist", str(path), f"create {path.resolve().parent} first")
    if backend != "kernel":
        raise ConfigError(f"backend '{backend}' has no field to save", str(path),
                          "use --backend kernel, or drop --save-field")


def _write_field(result: Any, path: Path, backend: str) -> None:
    """Save the solved field in world units (the pipeline solved it in a recentred frame)."""
    field_obj = result.field
    if not hasattr(field_obj, "save"):
        raise ConfigError(f"the '{backend}' result ({type(field_obj).__name__}) cannot be saved as one field", str(path),
                          "drop --chunk-size (chunked scenes are fused from several fields) or drop --save-field")
    if result.frame.scale != 1.0:
        raise ConfigError("the field was solved in a scaled frame and cannot be saved in world units", str(path),
                          "drop --save-field")
    field_obj.offset = field_obj.offset + result.frame.offset
    field_obj.save(path)


register_inspect(app)  # normals, info, eval, backends


train_app = typer.Typer(help="Train the project's learned components (resumable, seeded).", no_args_is_help=True)
app.add_typer(train_app, name="train")

from recon_apps.viewer.cli import register as register_view  # noqa: E402  (imports only typer and recon.errors)

register_view(app)

from recon_apps.render_cli import register as register_render  # noqa: E402  (imports only typer)

register_render(app)

from recon_apps.batch_cli import register as register_batch  # noqa: E402  (imports only typer)

register_batch(app)

from recon_apps.train_kernel_cli import register as register_train_kernel  # noqa: E402  (imports only typer)

register_train_kernel(train_app)


@train_app.command("normals")
def train_normals(
    config: Path = typer.Option(Path("configs/normals-hdfe.yaml"), "--config", "-c", help="training config (YAML)"),
    fresh: bool = typer.Option(False, "--fresh", help="ignore an existing checkpoint and start over"),
) -> None:
    """Train the HDFE normal-estimation head; Ctrl-C checkpoints, re-running resumes."""
    from recon.normals.hdfe.train import train

    if not config.is_file():
        raise ConfigError("training config not found", str(config), "pass --config configs/normals-hdfe.yaml")
    out = train(str(config), resume=not fresh, log=lambda line: console.print(line, highlight=False, soft_wrap=True))
    console.print(f"[green]wrote[/green] {out}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit status 2."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # worker processes (Dask) inherit this
    if not sys.warnoptions:  # numeric RuntimeWarnings are not for users; `python -W` still shows them
        warnings.simplefilter("ignore")
    try:
        code = app(args=argv, standalone_mode=False)  # typer.Exit(n) comes back as n here
        if code == INTERRUPTED:  # typer turns Ctrl-C into Exit(130)
            console.print("[bold red]interrupted[/bold red]: no output was written", highlight=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except ReconError as e:
        console.print(f"[bold red]error:[/bold red] {escape(e.one_line())}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/bold red]: no output was written", highlight=False)
        sys.exit(INTERRUPTED)
    except Exception as e:  # click's own exceptions (typer vendors click, so match by name)
        names = {c.__name__ for c in type(e).__mro__}
        if "Abort" in names:
            console.print("[bold red]interrupted[/bold red]: no output was written", highlight=False)
            sys.exit(INTERRUPTED)
        if "Exit" in names and hasattr(e, "exit_code"):
            sys.exit(e.exit_code)
        if "ClickException" in names:
            msg = e.format_message()
            if not msg.strip():  # `recon` alone: help was printed
                sys.exit(2)
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            console.print(f"[bold red]error:[/bold red] {escape(msg + hint)}", highlight=False, soft_wrap=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
