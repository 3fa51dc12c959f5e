"""``recon eval``: score a reconstructed mesh against a ground-truth mesh or point cloud."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from recon.errors import InputError
from recon.io.meshes import MESH_READ_EXTENSIONS, read_mesh_any
from recon.types import Mesh

from recon_apps.checks import MAX_EVAL_SAMPLES, check_range
from recon_apps.input_files import load_mesh_or_cloud
from recon_apps.terminal import console, stdout


def load_prediction(path: Path) -> Mesh:
    """The mesh to score; a file without faces is refused with what to do instead.

    Raises:
        InputError: unreadable, or a point cloud / a mesh without faces.
    """
    fix = "pass a mesh as PRED (make one with `recon reconstruct`); a point cloud can be the GT"
    if path.suffix.lower() not in MESH_READ_EXTENSIONS:
        raise InputError(f"PRED has no faces ('{path.suffix}' is a point cloud format): eval scores a mesh", path, fix)
    mesh, _ = read_mesh_any(path)
    if mesh.n_faces == 0:
        raise InputError(f"PRED has no faces ({mesh.n_vertices:,} points): eval scores a mesh", path, fix)
    return mesh


def evaluate(pred: Path, gt: Path, *, samples: int, tau: list[float], absolute: bool, seed: int) -> dict[str, Any]:
    """The metrics dict of ``pred`` against ``gt`` (a mesh, or a point cloud: then Chamfer and F-score
    from its points, normal consistency only when it has normals, ``gt_kind`` and ``gt_points`` added)."""
    # recon.eval imports scipy's k-d tree: +0.4 s of start-up that `recon --help` should not pay
    from recon.eval import evaluate_mesh_against_points, evaluate_meshes

    prediction = load_prediction(pred)
    truth = load_mesh_or_cloud(gt)
    t = tau if len(tau) > 1 else tau[0]
    if isinstance(truth, Mesh):
        m = evaluate_meshes(prediction, truth, n_samples=samples, tau=t, relative=not absolute, seed=seed)
    else:
        m = evaluate_mesh_against_points(prediction, truth.points, truth.normals, n_samples=samples, tau=t,
                                         relative=not absolute, seed=seed)
    return m.to_dict()


def applies_note(d: dict[str, Any]) -> str | None:
    """One line on which metrics a point-cloud ground truth gives, or None for a mesh."""
    if "gt_points" not in d:
        return None
    nc = "normal consistency from its normals" if d.get("normal_consistency") is not None else \
        "no normal consistency (the cloud has no normals)"
    return (f"ground truth is a point cloud ({d['gt_points']:,} of its points used): Chamfer-L1, accuracy, "
            f"completeness and F-score against those points; {nc}")


def eval_(
    pred: Path = typer.Argument(..., help="reconstructed mesh"),
    gt: Path = typer.Argument(..., help="ground truth: a mesh, or a point cloud (a scan; normal consistency only when it has normals)"),
    tau: list[float] = typer.Option([0.01], "--tau", help="F-score threshold(s), relative to the GT's longest side unless --absolute"),
    absolute: bool = typer.Option(False, "--absolute", help="tau in world units"),
    samples: int = typer.Option(100_000, "--samples", help="surface samples per mesh; also the most points used of a GT cloud"),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """Compare a mesh with a ground truth: Chamfer-L1, F-score at tau, normal consistency."""
    check_range("--samples", samples, 100, MAX_EVAL_SAMPLES, "100000")
    check_range("--seed", seed, 0, 2**32 - 1, "0")
    for t in tau:
        check_range("--tau", t, 1e-9, 1e12 if absolute else 1.0, "0.01")
    d = evaluate(pred, gt, samples=samples, tau=tau, absolute=absolute, seed=seed)
    if json_out:
        stdout.print_json(json.dumps(d, default=str))
        return
    table = Table(title=escape(f"{pred} vs {gt}"), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in d.items():
        if k == "normal_consistency" and v is None:
            table.add_row(k, "n/a (GT has no normals)")
        elif k not in ("gt_kind", "gt_points"):
            table.add_row(escape(k), f"{v:.6g}" if isinstance(v, float) else escape(str(v)))
    stdout.print(table)
    note = applies_note(d)
    if note:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``eval`` to ``app`` (a second call does nothing)."""
    if not any(getattr(c, "name", None) == "eval" for c in app.registered_commands):
        app.command("eval")(eval_)


__all__ = ["applies_note", "eval_", "evaluate", "load_prediction", "register"]
