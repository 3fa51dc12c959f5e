"""Middlebury multi-view stereo ``*_par.txt`` camera files.

Format: a first line with the number of views, then one line per view::

    imgname.png k11 k12 k13 k21 k22 k23 k31 k32 k33 r11 r12 r13 r21 r22 r23 r31 r32 r33 t1 t2 t3

with the projection ``K [R | t]`` (world-to-camera ``R``, ``t``; OpenCV axes). The dataset README
puts the image origin at the top-left corner, which is the library's convention (pixel centres
at +0.5), so K is used as is.

The Middlebury sets ship one parameter file for the full capture while a subset of the images
may be present (e.g. 39 of the temple's 312): only views whose image exists are loaded, and a
note says how many were skipped. No image at all is an error. Image names must stay inside the
parameter file's folder (:mod:`recon.io.cameras.paths`), and every number must be finite with
``k33`` not zero.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io._common import read_bytes
from recon.io.cameras.assemble import IMAGE_EXTENSIONS, image_size, make_views
from recon.io.cameras.geometry import c2w_to_world_to_cam, nearest_rotation, world_to_cam_to_c2w
from recon.io.cameras.paths import confined, join_name
from recon.io.atomic import atomic_write
from recon.types import Cameras, Views

log = logging.getLogger(__name__)


def find_par(folder: Path) -> Path | None:
    """The (first, by name) ``*_par.txt`` in ``folder``, or None."""
    found = sorted(folder.glob("*_par.txt")) if folder.is_dir() else []
    return found[0] if found else None


def read_par(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Parse a ``*_par.txt``.

    Returns:
        names (C,), K (C, 3, 3), R (C, 3, 3) world-to-camera, t (C, 3).

    Raises:
        InputError: malformed lines, or a count line that does not match the number of views.
    """
    p = Path(path)
    lines = [ln.split() for ln in read_bytes(p).decode("utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise InputError("empty camera file", p, "a *_par.txt starts with the number of views")
    count = None
    if len(lines[0]) == 1:
        try:
            count = int(lines[0][0])
        except ValueError as exc:
            raise InputError("the first line is not the number of views", p, "start the file with the view count") from exc
        lines = lines[1:]
    bad = [i for i, tok in enumerate(lines) if len(tok) != 22]
    if bad:
        raise InputError(f"line {bad[0] + 2} has {len(lines[bad[0]])} fields, expected 22 (name + K + R + t)", p,
                         "each line is: imgname k11..k33 r11..r33 t1 t2 t3")
    if count is not None and count != len(lines):
        raise InputError(f"the header says {count} views but {len(lines)} follow", p, "fix the count or the truncated file")
    try:
        nums = np.array([tok[1:] for tok in lines], np.float64)
    except ValueError as exc:
        raise InputError("non-numeric camera parameters", p, "check the file is a Middlebury *_par.txt") from exc
    bad = ~np.all(np.isfinite(nums), axis=1) | (nums[:, 8] == 0)
    if bad.any():
        raise InputError(f"line {int(np.argmax(bad)) + 1 + (count is not None)} has non-finite parameters or k33 = 0", p,
                         "fix the camera parameters on that line")
    return [tok[0] for tok in lines], nums[:, :9].reshape(-1, 3, 3), nums[:, 9:18].reshape(-1, 3, 3), nums[:, 18:21]


def load_middlebury(path: str | os.PathLike, mask_dir: str | os.PathLike | None = None,
                    notes: list[str] | None = None) -> Views:
    """Load the views of a ``*_par.txt`` whose image exists (next to it or in ``images/``).

    Args:
        path: the parameter file or its folder.
        mask_dir: optional masks matched by file stem.
        notes: if given, a sentence about skipped views is appended.

    Raises:
        InputError: malformed file, no image present, images of different sizes, diverging cameras.
    """
    p = Path(path)
    par = p if p.is_file() else find_par(p)
    if par is None:
        raise InputError("no *_par.txt", p, "pass the Middlebury camera file")
    names, K, R, t = read_par(par)
    base = par.parent
    found: list[Path | None] = []
    for n in names:  # loop over files
        tries = [n] + ([n + e for e in IMAGE_EXTENSIONS] if not Path(n).suffix else [])
        cands = [join_name(d, t, base, par) for d in (base, base / "images") for t in tries]
        hit = next((c for c in cands if c.is_file()), None)
        found.append(None if hit is None else confined(hit, base, par))
    keep = np.array([f is not None for f in found])
    if not keep.any():
        raise InputError(f"missing images: none of the {len(names)} images listed is present", par,
                         f"put the images (e.g. {names[0]}) next to the file or in images/")
    if not keep.all():
        msg = f"{int(keep.sum())} of {len(names)} views have an image; the other {int((~keep).sum())} are skipped"
        log.info("%s: %s", par, msg)
        if notes is not None:
            notes.append(msg)
    paths = [f for f in found if f is not None]
    w, h = image_size(paths[0])
    cameras = Cameras(K=K[keep] / K[keep][:, 2:3, 2:3], cam_to_world=world_to_cam_to_c2w(nearest_rotation(R[keep]), t[keep]),
                      width=w, height=h)
    return make_views(cameras, paths, par, camera_ids=[par.name] * len(paths), mask_dir=mask_dir)


def write_par(path: str | os.PathLike, cameras: Cameras, names: list[str]) -> None:
    """Write a ``*_par.txt`` for pinhole cameras (names relative to the file's folder)."""
    R, t = c2w_to_world_to_cam(cameras.cam_to_world)
    rows = np.concatenate([cameras.K.reshape(-1, 9), R.reshape(-1, 9), t], axis=1)
    lines = [str(len(cameras))] + [n + " " + " ".join(repr(float(v)) for v in row) for n, row in zip(names, rows)]
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


__all__ = ["find_par", "load_middlebury", "read_par", "write_par"]
