"""``recon reconstruct FILE``: a point cloud (or mesh) -> a point backend -> a mesh in world units."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from recon.errors import ConfigError
from recon.io.meshes import save_mesh

from recon_apps.input_files import load_checked_cloud
from recon_apps.live_run import LiveProgress, preview_points
from recon_apps.summary import RunSummary, Written, solver_info
from recon_apps.terminal import RichProgress


def reconstruct_points(input: Path, output: Path, cfg: Any, backend_cfg: Any, spec: Any, *, quiet: bool,
                       sample: int | None, ignore_normals: bool, save_field: Path | None, live: Any) -> RunSummary:
    """Load, check and reconstruct ``input``; write the mesh (and the field with ``save_field``).

    Args:
        input: a point cloud or mesh file.
        output: the mesh to write (checked by the caller).
        cfg, backend_cfg, spec: from :func:`recon.pipeline.load_reconstruct_config`.
        quiet: no progress output.
        sample: ``--sample`` (see :func:`recon_apps.input_files.load_checked_cloud`).
        ignore_normals: discard the input's normals and estimate new ones.
        save_field: ``--save-field`` .npz path, or None.
        live: an open live view, or None.

    Returns:
        The run's summary (printed by the caller).
    """
    # recon.pipeline (scipy, normal estimators) costs +0.7 s of start-up that `recon --help` should not pay
    from recon.pipeline import reconstruct as run

    t0 = time.perf_counter()
    with RichProgress(enabled=not quiet) as progress:
        progress.update("loading", None, str(input))
        cloud, load_notes = load_checked_cloud(input, sample=sample, drop_normals=ignore_normals)

        def work(view: Any = None) -> Any:
            reporter = progress if view is None else LiveProgress(progress, view)
            if view is not None:
                view.update(points=preview_points(cloud), text=f"{input.name}: {len(cloud):,} points")
            out = run(cloud, config=cfg, backend_config=backend_cfg, ignore_normals=ignore_normals, progress=reporter)
            if view is not None:
                view.update(mesh=out.mesh, text=f"{input.name}: {out.mesh.n_faces:,} faces with '{spec.name}'")
            return out

        result = work() if live is None else live.run(work)
        result.notes[:0] = load_notes
        if save_field is not None:
            write_field(result, save_field, spec.name)
        progress.update("writing", None, str(output))
        save_mesh(result.mesh, output)
    summary = RunSummary(input, output, spec.name, {"points": len(cloud)}, result, time.perf_counter() - t0)
    solver = solver_info(result)
    if solver is not None:
        summary.extra["solver"] = solver
    if save_field is not None:
        summary.written.append(Written(save_field, f"the field (view it with `recon view {save_field}`)"))
    return summary


def write_field(result: Any, path: Path, backend: str) -> None:
    """Save the solved field in world units (the pipeline solved it in a recentred frame)."""
    field_obj = result.field
    if not hasattr(field_obj, "save"):
        raise ConfigError(f"the '{backend}' result ({type(field_obj).__name__}) cannot be saved as one field",
                          str(path),
                          "drop --chunk-size (chunked scenes are fused from several fields) or drop --save-field")
    if result.frame.scale != 1.0:
        raise ConfigError("the field was solved in a scaled frame and cannot be saved in world units", str(path),
                          "drop --save-field")
    field_obj.offset = field_obj.offset + result.frame.offset
    field_obj.save(path)


__all__ = ["reconstruct_points", "write_field"]
