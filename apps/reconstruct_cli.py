"""``recon reconstruct``: the options, the checks made before any work, and the dispatch to the
point-cloud or posed-image path."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recon.io.outputs import check_output_file

from recon_apps.checks import MAX_SAMPLE_POINTS, check_range
from recon_apps.input_files import is_posed_images
from recon_apps.live_run import open_live_view
from recon_apps.output_checks import check_distinct, check_field_output, check_gaussians_output, check_mesh_output
from recon_apps.reconstruct_options import (
    check_input_kind,
    check_shortcuts,
    given,
    parse_duration,
    shortcut_values,
)
from recon_apps.reconstruct_points import reconstruct_points
from recon_apps.reconstruct_views import checkpoint_folder, reconstruct_views
from recon_apps.summary import print_summary
from recon_apps.terminal import console

#: the most training steps an image backend may be asked for
MAX_STEPS = 10_000_000
#: MISE refinements multiply the meshed cells by 8 each
MAX_MISE_ITER = 3


def reconstruct(
    input: Path = typer.Argument(..., help="point cloud or mesh file (ply, pcd, xyz/pts/txt/csv, npy/npz, las/laz, bin, obj/stl/off/glb), or a posed-image folder (COLMAP, transforms.json, cameras.npz, Middlebury)"),
    output: Path = typer.Option(..., "-o", "--output", help="mesh to write (.ply .obj .stl .off .glb)"),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="backend name (see `recon backends`); default from --config, else kernel (gvkf for posed images)"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML preset, e.g. configs/poisson.yaml"),
    set_: list[str] = typer.Option([], "--set", help="override an option: key=value (repeatable), e.g. --set depth=9 --set normals.k=30"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
    sample: Optional[int] = typer.Option(None, "--sample", help="point clouds and meshes: a mesh gives N area-weighted surface samples with face normals instead of its vertices; a point cloud keeps a seeded random subset of N points (all of them when it has N or fewer)"),
    ignore_normals: bool = typer.Option(False, "--ignore-normals", help="point clouds and meshes: discard the input's normals and estimate new ones"),
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
    time_budget: Optional[str] = typer.Option(None, "--time-budget", help="image backends: time for the whole run (reading, training, meshing), e.g. 90s, 20m, 1h"),
    resume: bool = typer.Option(False, "--resume", help="image backends: continue from the checkpoint in --checkpoint-dir"),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir", help="image backends: checkpoint folder (default: OUTPUT without suffix + '.ckpt')"),
    mask_dir: Optional[Path] = typer.Option(None, "--mask-dir", help="posed images: folder of masks matched to the images by file name"),
    save_gaussians: Optional[Path] = typer.Option(None, "--save-gaussians", help="gvkf: also write the trained Gaussians (.npz, world units) for `recon view` and `recon render-gaussians`"),
) -> None:
    """Reconstruct a surface mesh from a point cloud (missing normals are estimated) or from posed images."""
    # recon.pipeline (scipy, normal estimators) costs +0.7 s of start-up that `recon --help` should not pay
    from recon.pipeline import load_reconstruct_config

    posed = is_posed_images(input)
    check_range("--sample", sample, 1, MAX_SAMPLE_POINTS, "1000000")
    check_range("--steps", steps, 1, MAX_STEPS, "20000")
    check_range("--mise-iter", mise_iter, 0, MAX_MISE_ITER, "1")
    check_mesh_output(output, [input, config])
    for opt, extra in (("--save-field", save_field), ("--save-gaussians", save_gaussians),
                       ("--view-snapshot", view_snapshot)):
        if extra is not None:
            check_output_file(extra, [input, config], option=opt)
    check_distinct({"-o": output, "--save-field": save_field, "--save-gaussians": save_gaussians,
                    "--view-snapshot": view_snapshot})
    options = given({"--sample": sample, "--ignore-normals": ignore_normals, "--save-field": save_field,
                     "--detail": detail, "--voxel-size": voxel_size, "--chunk-size": chunk_size,
                     "--mise-iter": mise_iter, "--depth": depth, "--model": model, "--steps": steps,
                     "--time-budget": parse_duration(time_budget), "--resume": resume,
                     "--checkpoint-dir": checkpoint_dir, "--mask-dir": mask_dir, "--save-gaussians": save_gaussians})
    check_input_kind(options, posed)
    default_backend = "gvkf" if posed else "kernel"
    cfg, backend_cfg, spec = load_reconstruct_config(str(config) if config else None, list(set_), backend, device,
                                                     default_backend=default_backend)
    shortcuts = shortcut_values(options)
    if shortcuts:  # checked against the backend chosen by -b, --config or --set, then applied as typed values
        check_shortcuts(options, spec)
        cfg, backend_cfg, spec = load_reconstruct_config(str(config) if config else None, list(set_), backend, device,
                                                         default_backend=default_backend, values=shortcuts)
    if save_field is not None:
        check_field_output(save_field, spec.name)
    if save_gaussians is not None:
        check_gaussians_output(save_gaussians, spec.name)
    ckpt = checkpoint_folder(input, output, checkpoint_dir, resume) if posed else None
    live = open_live_view(view_live, view_snapshot)
    if ckpt is not None:
        summary = reconstruct_views(input, output, cfg, backend_cfg, spec, quiet=quiet, resume=resume,
                                    checkpoints=ckpt, mask_dir=mask_dir, live=live, save_gaussians=save_gaussians)
    else:
        summary = reconstruct_points(input, output, cfg, backend_cfg, spec, quiet=quiet, sample=sample,
                                     ignore_normals=ignore_normals, save_field=save_field, live=live)
    print_summary(summary, json_out=json_out, quiet=quiet)
    if live is not None:
        live.hold(lambda: console.print("close the window to exit", highlight=False))


def register(app: typer.Typer) -> None:
    """Add ``reconstruct`` to ``app`` (a second call does nothing)."""
    if not any(getattr(c, "name", None) == "reconstruct" for c in app.registered_commands):
        app.command("reconstruct")(reconstruct)


__all__ = ["MAX_MISE_ITER", "MAX_STEPS", "reconstruct", "register"]
