"""Posed-image input: camera formats detected from a folder, all loaded into :class:`~recon.types.Views`.

Formats (one module each): COLMAP sparse models (text and binary), NeRF-synthetic and instant-ngp
``transforms*.json``, DTU/IDR ``cameras.npz`` and Middlebury ``*_par.txt``. Every loader returns
cameras in the library's OpenCV convention (x right, y down, z forward, camera-to-world 4x4,
pixel centres at +0.5) in the file's world units; :func:`normalize_views` maps them into the
unit sphere and returns the matrix back to world units.

Example:
    >>> views = load_views("scan_folder")                     # doctest: +SKIP
    >>> rgb, masks, cams = read_view_images(views, max_size=256)   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io.cameras.colmap import load_colmap, model_dir
from recon.io.cameras.dtu import NPZ_NAMES, find_npz, load_dtu
from recon.io.cameras.middlebury import find_par, load_middlebury
from recon.io.cameras.nerf import load_transforms, transforms_files
from recon.io.cameras.normalize import normalize_views, scene_sphere
from recon.types import Views

#: What :func:`detect_format` recognises, for messages and docs.
RECOGNISED = (
    "transforms.json / transforms_{train,val,test}.json (NeRF-synthetic, instant-ngp)",
    "sparse/0/cameras.{txt,bin} + images.{txt,bin} (COLMAP)",
    f"{' / '.join(NPZ_NAMES)} (DTU, IDR, NeuS)",
    "*_par.txt (Middlebury)",
)
FORMATS = ("nerf", "colmap", "dtu", "middlebury")


def detect_format(path: str | os.PathLike, split: str | None = None) -> tuple[str, Path]:
    """Which camera format ``path`` (a folder, or a file inside it) holds.

    Folders are checked in the order transforms JSON, COLMAP, cameras npz, Middlebury (a folder
    written by ``recon render`` holds the first three; pass a file to pick one).

    Returns:
        the format name (one of :data:`FORMATS`) and the path to hand to its loader.

    Raises:
        InputError: the path is missing or holds no recognised format (lists what is recognised).
    """
    p = Path(path)
    if not p.exists():
        raise InputError("not found", p, "check the path to the posed-image folder")
    listing = "; ".join(RECOGNISED)
    if p.is_file():
        name = p.name.lower()
        if name.startswith("transforms") and name.endswith(".json"):
            return "nerf", p
        if p.stem in ("cameras", "images", "points3D") and p.suffix in (".txt", ".bin") and model_dir(p) is not None:
            return "colmap", p
        if p.suffix.lower() == ".npz":
            return "dtu", p
        if name.endswith("_par.txt"):
            return "middlebury", p
        raise InputError("not a recognised camera file", p, f"use one of: {listing}")
    if transforms_files(p, split):
        return "nerf", p
    if model_dir(p) is not None:
        return "colmap", p
    if find_npz(p) is not None:
        return "dtu", p
    if find_par(p) is not None:
        return "middlebury", p
    raise InputError("no recognised camera format in this folder", p, f"provide one of: {listing}")


def load_views(path: str | os.PathLike, mask_dir: str | os.PathLike | None = None, split: str | None = None,
               *, fmt: str | None = None, notes: list[str] | None = None) -> Views:
    """Load posed images from a folder (format detected) or from a camera file.

    Args:
        path: the folder, or a camera file inside it (``transforms_train.json``,
            ``sparse/0/cameras.bin``, ``cameras.npz``, ``temple_par.txt``...).
        mask_dir: a folder of masks matched to the images by file stem. Without it, images
            with an alpha channel are their own masks (and an IDR ``mask/`` folder is used).
        split: for NeRF-synthetic folders: ``train`` (default when there is no transforms.json),
            ``val``, ``test`` or ``all``.
        fmt: force a format (one of :data:`FORMATS`) instead of detecting it.
        notes: if given, sentences about what was skipped are appended (Middlebury subsets).

    Returns:
        Views in world units, OpenCV convention; distortion, if any, in ``cameras.distortion``.

    Raises:
        InputError: one line naming the file: unrecognised folder, pose/image count mismatch,
            missing images, images of different sizes, unsupported camera model, cameras that
            look away from the scene, malformed files.
    """
    if fmt is None:
        fmt, target = detect_format(path, split)
    else:
        if fmt not in FORMATS:
            raise InputError(f"unknown camera format {fmt!r}", path, f"use one of {', '.join(FORMATS)}")
        target = Path(path)
    if fmt == "nerf":
        return load_transforms(target, mask_dir=mask_dir, split=split)
    if fmt == "colmap":
        return load_colmap(target, mask_dir=mask_dir)
    if fmt == "dtu":
        return load_dtu(target, mask_dir=mask_dir)
    return load_middlebury(target, mask_dir=mask_dir, notes=notes)


def camera_model(views: Views) -> str:
    """A short description of the camera model: ``pinhole`` or the distortion terms in use."""
    d = views.cameras.distortion
    if d is None or not np.any(d != 0):
        return "pinhole"
    names = ("k1", "k2", "p1", "p2", "k3")
    used = [n for n, col in zip(names, np.asarray(d).T) if np.any(col != 0)]
    return f"pinhole + distortion ({' '.join(used)}), undistorted on read"


def describe_views(views: Views) -> dict[str, Any]:
    """What ``recon info`` shows for a posed-image folder.

    Returns:
        a dict of plain values: views, resolution, camera model, focal length (px, median),
        masks, scene centre and radius (world units; :func:`scene_sphere` without masks) and
        the camera distance range from that centre.
    """
    cams = views.cameras
    centre, radius = scene_sphere(cams)
    dist = np.linalg.norm(cams.cam_to_world[:, :3, 3] - centre, axis=1)
    if views.mask_paths is None:
        masks = "none"
    elif all(m == i for m, i in zip(views.mask_paths, views.image_paths)):
        masks = "alpha channel"
    else:
        masks = f"files ({Path(views.mask_paths[0]).parent})"
    return {
        "views": len(views),
        "resolution": f"{cams.width}x{cams.height}",
        "camera model": camera_model(views),
        "focal length (px)": float(np.median(cams.K[:, 0, 0])),
        "masks": masks,
        "scene centre": [float(v) for v in centre],
        "scene radius": float(radius),
        "camera distance": [float(dist.min()), float(dist.max())],
    }


def describe_folder(path: str | os.PathLike, mask_dir: str | os.PathLike | None = None,
                    split: str | None = None) -> dict[str, Any]:
    """:func:`describe_views` of a posed-image folder, headed by its format and any loader notes."""
    fmt, _ = detect_format(path, split)
    notes: list[str] = []
    views = load_views(path, mask_dir=mask_dir, split=split, notes=notes)
    out: dict[str, Any] = {"format": {"nerf": "transforms.json (NeRF / instant-ngp)", "colmap": "COLMAP sparse model",
                                      "dtu": "DTU / IDR cameras.npz", "middlebury": "Middlebury *_par.txt"}[fmt]}
    out.update(describe_views(views))
    if notes:
        out["notes"] = "; ".join(notes)
    return out


__all__ = [
    "FORMATS", "RECOGNISED", "camera_model", "describe_folder", "describe_views", "detect_format", "load_views", "normalize_views",
    "scene_sphere",
]
