"""Posed views for a folder: its camera file when it has one, structure-from-motion when it holds only photos.

``recon reconstruct PHOTOS/ -o mesh.ply`` calls :func:`load_or_solve_views` with the model folder
``mesh.sfm/`` beside the output: the first run computes the sparse model there, later runs of the
same photos reuse it (see :mod:`recon.sfm.model`).
"""

from __future__ import annotations

import os
from pathlib import Path

from recon.errors import ConfigError, InputError
from recon.io.cameras import detect_format, load_views
from recon.io.outputs import check_writable_folder
from recon.progress import NULL_PROGRESS, Progress
from recon.sfm.images import list_photos
from recon.sfm.model import model_state, photo_fingerprint, solve_model
from recon.sfm.run import SfmOptions
from recon.types import Views


def has_camera_format(path: str | os.PathLike) -> bool:
    """True when ``path`` is a camera file or a folder holding a recognised camera format."""
    try:
        detect_format(path)
    except InputError:
        return False
    return True


def has_photos(folder: Path) -> bool:
    """True when ``folder`` holds at least one photo (:func:`recon.sfm.images.list_photos`)."""
    try:
        return bool(list_photos(folder))
    except InputError:
        return False


def views_for_folder(folder: str | os.PathLike, model_folder: str | os.PathLike, progress: Progress = NULL_PROGRESS,
                     mask_dir: str | os.PathLike | None = None, options: SfmOptions | None = None) -> Views:
    """Views of a folder of photos without camera files, by structure-from-motion (or its reused model).

    Args:
        folder: the photos.
        model_folder: where the sparse model is kept (created, reused, or replaced when the photos changed).
        progress: stage reports ("sfm: ...").
        mask_dir: masks matched to the photos by file stem.
        options: see :class:`~recon.sfm.run.SfmOptions` (None: the defaults).

    Returns:
        The registered views: the model's working copies (oriented, one size) with their cameras.

    Raises:
        ConfigError: the model location cannot be written, or holds files recon did not write.
        InputError: too few photos, unreadable photos, or too few registered.
    """
    model = Path(model_folder)
    options = options or SfmOptions()
    check_writable_folder(model, option="the model folder")
    progress.update("sfm: checking the model", None, str(model))
    prints = photo_fingerprint(folder)
    state = model_state(model, prints, options)
    if state == "foreign":
        raise ConfigError("the structure-from-motion model folder exists and holds files recon did not write", model,
                          "move that folder away or write the mesh elsewhere")
    if state != "reuse":
        solve_model(folder, model, options, progress, replace=state == "stale", photos=prints)
    else:
        progress.update("sfm: reusing the model", None, str(model))
    return load_views(model, mask_dir=mask_dir)


def load_or_solve_views(path: str | os.PathLike, model_folder: str | os.PathLike, progress: Progress = NULL_PROGRESS,
                        mask_dir: str | os.PathLike | None = None) -> Views:
    """:func:`recon.io.cameras.load_views` when ``path`` has cameras, else :func:`views_for_folder`.

    Raises:
        InputError, ConfigError: as those two functions.
    """
    p = Path(path)
    if p.is_dir() and not has_camera_format(p) and has_photos(p):
        return views_for_folder(p, model_folder, progress, mask_dir=mask_dir)
    return load_views(p, mask_dir=mask_dir)


__all__ = ["has_camera_format", "has_photos", "load_or_solve_views", "views_for_folder"]
