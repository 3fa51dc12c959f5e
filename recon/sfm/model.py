"""The sparse model folder: written atomically, with a manifest that decides when it can be reused.

A model folder written by recon holds a COLMAP text model, the working copies of the photos in
``images/`` (so it loads with :func:`recon.io.cameras.load_views` and ``recon view``, and its image
names never leave the folder) and :data:`MANIFEST`, a small JSON file::

    {"format": "recon-sfm", "version": 1, "photos": "/abs/photo/folder",
     "images": [{"name": "IMG_0001.JPG", "width": 4032, "height": 3024, "bytes": 2419871}, ...],
     "options": {"max_size": 1600, ...}, "registered": 38, "points": 5120, ...}

The manifest is only compared, never followed: no path in it is opened. A model is reused when
its photos have the same names, oriented sizes and file sizes and it was computed with the same
options (:meth:`recon.sfm.run.SfmOptions.fingerprint`); otherwise it is computed again and replaces
the old one. A non-empty folder without a valid manifest is not recon's and is never replaced
without being asked (``force``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from recon.io.atomic import atomic_folder
from recon.io.cameras.colmap import model_dir
from recon.progress import NULL_PROGRESS, Progress
from recon.sfm.images import inspect_photo, list_photos
from recon.sfm.run import SfmOptions, SfmReport, run_sfm

#: The manifest's file name inside a model folder, and its format tag and version.
MANIFEST, FORMAT, VERSION = "sfm.json", "recon-sfm", 1
#: The largest manifest read (bytes): a larger file is not a manifest recon wrote.
_MAX_MANIFEST = 16 * 1024 * 1024


def photo_fingerprint(photo_folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Name, oriented width and height (pixels) and file size (bytes) of every photo, in name order.

    Raises:
        InputError: the folder is missing, holds no photos, or a photo is unreadable.
    """
    out = []
    for p in list_photos(photo_folder):  # a loop over files: headers only
        ph = inspect_photo(p)
        out.append({"name": ph.name, "width": ph.width, "height": ph.height, "bytes": ph.nbytes})
    return out


def read_manifest(model_folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a model folder recon wrote, or None (missing, too large, malformed, another format)."""
    path = Path(model_folder) / MANIFEST
    try:
        if not path.is_file() or path.stat().st_size > _MAX_MANIFEST:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        return None
    return data


def model_state(model_folder: str | os.PathLike, photos: list[dict[str, Any]], options: SfmOptions) -> str:
    """What to do with ``model_folder`` for these photos and options.

    Returns:
        "missing" (no folder, or an empty one), "reuse" (recon's model of the same photos and options),
        "stale" (recon's model of other photos or options: to be replaced) or "foreign" (a non-empty
        folder recon did not write: to be left alone).
    """
    folder = Path(model_folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return "missing"
    manifest = read_manifest(folder)
    if manifest is None:
        return "foreign"
    same = manifest.get("images") == photos and manifest.get("options") == options.fingerprint()
    return "reuse" if same and model_dir(folder) == folder else "stale"


def write_manifest(folder: Path, photo_folder: Path, photos: list[dict[str, Any]], options: SfmOptions,
                   report: SfmReport) -> None:
    """Write :data:`MANIFEST` into ``folder`` (the model's temporary folder)."""
    data = {
        "format": FORMAT, "version": VERSION, "photos": str(photo_folder.absolute()), "images": photos,
        "options": options.fingerprint(), "registered": len(report.registered), "points": report.points,
        "reprojection_px": report.reprojection_px, "source_size": list(report.source_size),
        "working_size": list(report.working_size), "downscale": report.downscale, "matcher": report.matcher,
        "cameras": report.cameras, "exif_focal": report.exif_focal, "stage_seconds": report.stage_seconds,
    }
    (folder / MANIFEST).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def solve_model(photo_folder: str | os.PathLike, model_folder: str | os.PathLike, options: SfmOptions | None = None,
                progress: Progress = NULL_PROGRESS, *, replace: bool = False,
                photos: list[dict[str, Any]] | None = None) -> SfmReport:
    """Run structure-from-motion on ``photo_folder`` and write the model folder atomically.

    Args:
        photo_folder: the photos (never written).
        model_folder: the folder to create (or replace when ``replace``).
        options: see :class:`~recon.sfm.run.SfmOptions` (None: the defaults).
        progress: stage reports.
        replace: replace an existing non-empty ``model_folder``.
        photos: :func:`photo_fingerprint` of the photos when the caller has it already.

    Raises:
        ConfigError: the model folder exists and is not empty (without ``replace``).
        InputError: the photos cannot be read or too few registered; nothing is written then.
    """
    src = Path(photo_folder)
    options = options or SfmOptions()
    prints = photos if photos is not None else photo_fingerprint(src)
    with atomic_folder(model_folder, replace, create_parent=True) as tmp:
        report = run_sfm(src, tmp, options, progress)
        write_manifest(tmp, src, prints, options, report)
    return report


__all__ = ["FORMAT", "MANIFEST", "VERSION", "model_state", "photo_fingerprint", "read_manifest",
           "solve_model", "write_manifest"]
