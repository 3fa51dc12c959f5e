"""``recon reconstruct FOLDER``: posed images -> an image backend -> a mesh in world units."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from recon.errors import ConfigError
from recon.io.meshes import save_mesh
from recon.io.outputs import check_writable_folder, is_inside

from recon_apps.live_run import LiveProgress, training_callback
from recon_apps.summary import RunSummary, Written
from recon_apps.terminal import RichProgress


def checkpoint_folder(input: Path, output: Path, checkpoint_dir: Path | None, resume: bool) -> Path:
    """The checkpoint folder: ``--checkpoint-dir``, else OUTPUT without suffix + ``.ckpt``; checked writable,
    outside the input, and existing when ``resume``.

    Raises:
        ConfigError: nothing to resume, the folder holds the input, or it cannot be written.
    """
    ckpt = checkpoint_dir if checkpoint_dir is not None else output.with_suffix(".ckpt")
    if resume and not ckpt.is_dir():
        raise ConfigError("nothing to resume: the checkpoint folder does not exist", str(ckpt),
                          "run once without --resume (or pass --checkpoint-dir)")
    if is_inside(input, ckpt):
        raise ConfigError("the checkpoint folder holds the input images", str(ckpt),
                          "give --checkpoint-dir a folder of its own")
    check_writable_folder(ckpt, option="--checkpoint-dir")
    return ckpt


def reconstruct_views(input: Path, output: Path, cfg: Any, backend_cfg: Any, spec: Any, *, quiet: bool,
                      resume: bool, checkpoints: Path, mask_dir: Path | None, live: Any,
                      save_gaussians: Path | None = None) -> RunSummary:
    """Load the posed images, train the image backend, write the mesh (and the Gaussians with ``save_gaussians``).

    Args:
        input: a posed-image folder or camera file.
        output: the mesh to write (checked by the caller).
        cfg, backend_cfg, spec: from :func:`recon.pipeline.load_reconstruct_config`.
        quiet: no progress output.
        resume: continue from the checkpoint folder.
        checkpoints: the checkpoint folder, checked by :func:`checkpoint_folder`.
        mask_dir: folder of masks matched to the images by file name, or None.
        live: an open live view, or None.
        save_gaussians: ``--save-gaussians`` .npz path (gvkf), or None.

    Returns:
        The run's summary (printed by the caller).
    """
    # the camera readers (PIL) and recon.pipeline (scipy, normal estimators) cost +0.3 s and +0.7 s of start-up
    # that `recon --help` and the other commands should not pay
    from recon.pipeline import reconstruct_views as run
    from recon.sfm import load_or_solve_views  # photos without cameras: structure-from-motion (pycolmap, +0.3 s)

    t0 = time.perf_counter()
    started = time.monotonic()  # --time-budget counts from here: loading, training, meshing
    with RichProgress(enabled=not quiet) as progress:
        progress.update("loading", None, str(input))
        views = load_or_solve_views(input, output.with_suffix(".sfm"), progress, mask_dir=mask_dir)

        def work(view: Any = None) -> Any:
            reporter = progress if view is None else LiveProgress(progress, view)
            train_kwargs = None if view is None else training_callback(view, spec.name)
            out = run(views, config=cfg, backend_config=backend_cfg, checkpoint_dir=str(checkpoints), resume=resume,
                      progress=reporter, train_kwargs=train_kwargs, started=started)
            if view is not None:
                view.update(mesh=out.mesh, text=f"{input.name}: {out.mesh.n_faces:,} faces with '{spec.name}'")
            return out

        result = work() if live is None else live.run(work)
        progress.update("writing", None, str(output))
        save_mesh(result.mesh, output)
        if save_gaussians is not None:
            result.field.world_gaussians().save(save_gaussians)
    summary = RunSummary(input, output, spec.name, {"views": len(views)}, result, time.perf_counter() - t0,
                         extra={"checkpoints": str(checkpoints)}, after_output=f"(checkpoints in {checkpoints})")
    if save_gaussians is not None:
        summary.written.append(Written(save_gaussians, f"{len(result.field.gaussians):,} Gaussians "
                                                       f"(view them with `recon view {save_gaussians}`)"))
    return summary


__all__ = ["checkpoint_folder", "reconstruct_views"]
