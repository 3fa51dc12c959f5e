"""``recon normals``: estimate and orient normals of a point cloud and write it with them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.markup import escape

from recon.errors import ConfigError
from recon.io.meshes import POINT_WRITE_EXTENSIONS, save_point_cloud
from recon.io.outputs import check_output_file
from recon.ops.transforms import centred_frame

from recon_apps.checks import check_range, parse_xyz
from recon_apps.input_files import load_checked_cloud
from recon_apps.terminal import console

#: the --orient choices
ORIENT_MODES = ("auto", "mst", "sensor", "none")


def normals(
    input: Path = typer.Argument(..., help="point cloud file"),
    output: Path = typer.Option(..., "-o", "--output", help="point cloud with normals to write (.ply, .npz, .xyz)"),
    method: str = typer.Option("pca", "--method", "-m", help="normal estimator: pca (kNN PCA) or hdfe (learned patch encoder)"),
    k: Optional[int] = typer.Option(None, "--k", help="neighbours per point (method default when omitted)"),
    orient: str = typer.Option("auto", "--orient", help="auto | mst | sensor | none"),
    sensor: Optional[str] = typer.Option(None, "--sensor", help="one sensor position X,Y,Z for orientation"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Estimate (and orient) normals and write the cloud with them."""
    # recon.normals imports scipy and the estimators: +0.4 s of start-up that `recon --help` should not pay
    from recon.normals import MAX_K, MIN_K, check_normal_method, choose_orientation, estimate_normals

    if orient not in ORIENT_MODES:
        raise ConfigError(f"unknown orientation '{orient}'", None, "use --orient auto, mst, sensor or none")
    check_normal_method(method)
    check_range("--k", k, MIN_K, MAX_K, "20")
    if output.suffix.lower() not in POINT_WRITE_EXTENSIONS:
        raise ConfigError(f"cannot write a point cloud as '{output.suffix or '(no extension)'}'", str(output),
                          "name the output .ply, .npz or .xyz")
    check_output_file(output, [input])
    sensor_pos = parse_xyz(sensor, "--sensor")
    t0 = time.perf_counter()
    cloud, load_notes = load_checked_cloud(input, drop_normals=True)
    if not quiet:
        for note in load_notes:
            console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    frame = centred_frame(cloud.points)
    local = frame.to_local(cloud.points)
    sensors = None
    if sensor_pos is not None:
        sensors = frame.to_local(sensor_pos[None, :])[0]
    elif cloud.sensors is not None:
        sensors = frame.to_local(cloud.sensors)
    mode = choose_orientation(orient, sensors is not None, str(input))
    n = estimate_normals(local, method=method, k=k, orient=mode, sensor=sensors)
    save_point_cloud(cloud.with_normals(np.asarray(n, dtype=np.float32)), output)
    if not quiet:
        console.print(f"[green]wrote[/green] {escape(str(output))}: {len(cloud):,} points with {escape(method)} normals "
                      f"(orient={mode}) in {time.perf_counter() - t0:.1f} s", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``normals`` to ``app`` (a second call does nothing)."""
    if not any(getattr(c, "name", None) == "normals" for c in app.registered_commands):
        app.command("normals")(normals)


__all__ = ["ORIENT_MODES", "normals", "register"]
