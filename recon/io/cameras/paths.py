"""Files named by a dataset stay inside the dataset folder.

Pose files name their images (NeRF ``file_path``, COLMAP image names, Middlebury ``*_par.txt``
names) and folders list them (DTU ``image/``, ``mask/``). Those names are untrusted input, so:

* a name must be relative: absolute paths (``/etc/hostname``, ``C:\\x``) and NUL bytes are refused;
* joined to its folder and normalised, it must not climb out of the dataset folder with ``..``;
* the file it finally names, symbolic links followed, must lie inside the dataset folder too
  (the dataset folder itself is resolved first, so a dataset reached through a link still works).

Every refusal is an :class:`~recon.errors.InputError` naming the pose file.
"""

from __future__ import annotations

import os
from pathlib import Path, PureWindowsPath

from recon.errors import InputError

_FIX = "name files relative to the dataset folder, inside it (copy the images in rather than linking out)"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def join_name(base: Path, name: str, root: Path, source: str | os.PathLike, what: str = "image") -> Path:
    """``base / name`` after checking that the name stays inside ``root`` (lexically).

    Args:
        base: the folder the name is relative to (inside ``root``).
        name: the untrusted name from the dataset file.
        root: the dataset folder.
        source: the file that holds the name (for messages).
        what: what the name is, for messages ("image", "depth map").

    Raises:
        InputError: an absolute name, a NUL byte, or a name that climbs out of ``root``.
    """
    if "\0" in name or os.path.isabs(name) or PureWindowsPath(name).anchor:
        raise InputError(f"{what} path {name[:80]!r} is absolute; dataset files may only name files inside "
                         f"the dataset folder {root}", source, _FIX)
    joined = os.path.normpath(os.path.join(os.path.abspath(base), name))
    if not _inside(joined, os.path.normpath(os.path.abspath(root))):
        raise InputError(f"{what} path {name[:80]!r} points outside the dataset folder {root}", source, _FIX)
    return Path(base) / name


def confined(path: Path, root: Path, source: str | os.PathLike, what: str = "image") -> Path:
    """``path`` itself when, symbolic links followed, it lies inside ``root``.

    Raises:
        InputError: the path (or a link on the way) leads outside ``root``.
    """
    real = os.path.realpath(path)
    if not _inside(real, os.path.realpath(root)):
        raise InputError(f"{what} {path} leads outside the dataset folder {root} (through a symbolic link)", source, _FIX)
    return path


__all__ = ["confined", "join_name"]
