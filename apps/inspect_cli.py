"""``recon normals``, ``recon info``, ``recon eval`` and ``recon backends``: the commands that read a file
and estimate, describe or score it.

:func:`register` adds them to a typer app; heavy imports happen when a command runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from recon.errors import ConfigError
from recon.io.outputs import check_output_file

from recon_apps.checks import MAX_EVAL_SAMPLES, check_range, parse_xyz

console = Console(stderr=True)
stdout = Console()
#: camera files that name a posed-image set on their own
POSED_IMAGE_FILES = ("cameras.npz", "cameras.txt", "cameras.bin")


def load_checked_cloud(path: Path, sample: int | None = None, drop_normals: bool = False):
    """Read and validate a cloud; returns (cloud, notes about dropped rows etc.).

    With ``drop_normals`` the file's normals are discarded before validation, so broken
    normals cannot stop a command that estimates new ones.
    """
    from recon.io import load_point_cloud, validate_point_cloud

    cloud = load_point_cloud(path, sample=sample, validate=False)
    if drop_normals and cloud.normals is not None:
        cloud = cloud.with_normals(None)
    return validate_point_cloud(cloud, path)


def is_posed_images(path: Path) -> bool:
    """A folder, or a camera file that names a posed-image set (transforms*.json, *_par.txt, cameras.*)."""
    name = path.name.lower()
    return path.is_dir() or (name.startswith("transforms") and name.endswith(".json")) \
        or name.endswith("_par.txt") or name in POSED_IMAGE_FILES


def register(app: typer.Typer) -> None:
    """Add ``normals``, ``info``, ``eval`` and ``backends`` to ``app`` (a second call does nothing)."""
    if any(getattr(c, "name", None) == "normals" for c in app.registered_commands):
        return

    @app.command()
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
        import numpy as np

        from recon.io import save_point_cloud
        from recon.normals import MAX_K, MIN_K, check_normal_method, estimate_normals
        from recon.ops.transforms import centred_frame

        if orient not in ("auto", "mst", "sensor", "none"):
            raise ConfigError(f"unknown orientation '{orient}'", None, "use --orient auto, mst, sensor or none")
        check_normal_method(method)
        check_range("--k", k, MIN_K, MAX_K, "20")
        if output.suffix.lower() not in (".ply", ".npz", ".xyz"):
            raise ConfigError(f"cannot write a point cloud as '{output.suffix or '(no extension)'}'", str(output),
                              "name the output .ply, .npz or .xyz")
        check_output_file(output, [input])
        sensor_pos = parse_xyz(sensor, "--sensor")
        t0 = time.perf_counter()
        cloud, load_notes = load_checked_cloud(input, drop_normals=True)
        for note in load_notes:
            if not quiet:
                console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        frame = centred_frame(cloud.points)
        local = frame.to_local(cloud.points)
        sensors = None
        if sensor_pos is not None:
            sensors = frame.to_local(sensor_pos[None, :])[0]
        elif cloud.sensors is not None:
            sensors = frame.to_local(cloud.sensors)
        mode = orient
        if mode == "auto":
            mode = "sensor" if sensors is not None else "mst"
        if mode == "sensor" and sensors is None:
            raise ConfigError("--orient sensor needs a sensor position", str(input), "pass --sensor X,Y,Z")
        n = estimate_normals(local, method=method, k=k, orient=mode, sensor=sensors)
        save_point_cloud(cloud.with_normals(np.asarray(n, dtype=np.float32)), output)
        if not quiet:
            console.print(f"[green]wrote[/green] {output}: {len(cloud):,} points with {method} normals "
                          f"(orient={mode}) in {time.perf_counter() - t0:.1f} s", highlight=False)


    @app.command()
    def info(
        input: Path = typer.Argument(..., help="point cloud, mesh or posed-image folder"),
        json_out: bool = typer.Option(False, "--json", help="print as JSON"),
    ) -> None:
        """Describe a file (counts, bounds, attributes, a guess of its units) or a posed-image folder."""
        from recon.io import describe

        if is_posed_images(input):
            from recon.io.cameras import describe_folder

            d = describe_folder(input)
        else:
            d = describe(input)
        if json_out:
            stdout.print_json(json.dumps(d, default=str))
            return
        table = Table(title=str(input), show_header=False, title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value")
        for k, v in d.items():
            if isinstance(v, float):
                v = f"{v:.6g}"
            elif isinstance(v, (list, tuple)):
                v = ", ".join(f"{x:.6g}" if isinstance(x, float) else str(x) for x in v) if v and not isinstance(v[0], (list, tuple)) \
                    else "  ".join("(" + ", ".join(f"{x:.6g}" if isinstance(x, float) else str(x) for x in row) + ")" for row in v)
            table.add_row(str(k), str(v))
        stdout.print(table)


    @app.command("eval")
    def eval_(
        pred: Path = typer.Argument(..., help="reconstructed mesh"),
        gt: Path = typer.Argument(..., help="ground-truth mesh"),
        tau: list[float] = typer.Option([0.01], "--tau", help="F-score threshold(s), relative to the GT's longest side unless --absolute"),
        absolute: bool = typer.Option(False, "--absolute", help="tau in world units"),
        samples: int = typer.Option(100_000, "--samples", help="surface samples per mesh"),
        seed: int = typer.Option(0, "--seed"),
        json_out: bool = typer.Option(False, "--json", help="print as JSON"),
    ) -> None:
        """Compare a mesh with a ground truth: Chamfer-L1, F-score at tau, normal consistency."""
        from recon.eval import evaluate_meshes
        from recon.io import load_mesh

        check_range("--samples", samples, 100, MAX_EVAL_SAMPLES, "100000")
        check_range("--seed", seed, 0, 2**32 - 1, "0")
        for t in tau:
            check_range("--tau", t, 1e-9, 1e12 if absolute else 1.0, "0.01")
        m = evaluate_meshes(load_mesh(pred), load_mesh(gt), n_samples=samples, tau=tau if len(tau) > 1 else tau[0],
                            relative=not absolute, seed=seed)
        d = m.to_dict()
        if json_out:
            stdout.print_json(json.dumps(d, default=str))
            return
        table = Table(title=f"{pred} vs {gt}", title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in d.items():
            if isinstance(v, dict):
                for kk, vv in v.items():
                    table.add_row(f"{k}[{kk}]", f"{vv:.6g}" if isinstance(vv, float) else str(vv))
            else:
                table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
        stdout.print(table)


    @app.command()
    def backends(json_out: bool = typer.Option(False, "--json", help="print as JSON")) -> None:
        """List the reconstruction backends, what each needs and whether it can run here."""
        from recon.registry import backends as all_backends

        rows = []
        for name, spec in all_backends().items():
            ok, why = spec.available()
            rows.append({"name": name, "needs": sorted(spec.requires), "available": ok, "reason": why,
                         "description": spec.description})
        if json_out:
            stdout.print_json(json.dumps(rows))
            return
        table = Table(title="backends", title_justify="left")
        for col in ("name", "needs", "runs here", "description"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], ", ".join(r["needs"]), "yes" if r["available"] else f"no: {r['reason']}", r["description"])
        stdout.print(table)
