"""The job folder of a batch run: checked before any work, created once the input is known good,
file locations inside it, and file-system failures reported as one line.

Layout (every location is derived from the folder and a tile id, never read back from the
manifest, so a job folder that was moved or copied resumes from its own files)::

    manifest.sqlite            the SQLite manifest (recon.tiling.manifest)
    shards/<tile>/p*.bin       pass-2 parts
    fields/<tile>.npz          tile fields (phase 1)
    tiles/<tile>.ply           tile meshes (phase 2), tiles/<tile>.preview.ply
    scene.ply, scene.json, preview.ply
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from recon.errors import ConfigError, ReconError
from recon.io.outputs import check_output_folder, is_inside

MANIFEST = "manifest.sqlite"
#: The manifest and SQLite's companion files: all a job folder holds before pass 2 starts.
MANIFEST_FILES = (MANIFEST, f"{MANIFEST}-wal", f"{MANIFEST}-shm", f"{MANIFEST}-journal")
#: errno values that mean the file system refused a write (as opposed to a network or program error).
_FS_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.EIO, errno.ENOENT,
              errno.ENOTDIR, errno.EISDIR, errno.EFBIG, errno.ENAMETOOLONG}


def check_job_folder(out: Path, inputs: Iterable[str | os.PathLike], resume: bool) -> None:
    """Refuse a job folder that cannot be used, before anything is read or created.

    The folder may not exist yet (its nearest existing parent must be writable); it may not be or
    hold an input, nor the current folder; an existing non-empty folder must hold a previous job and
    ``resume`` must be set.

    Raises:
        ConfigError: one line naming the folder and what to do.
    """
    check_output_folder(out, inputs, option="-o")
    if not out.is_dir():
        return
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError as e:
        raise ConfigError(f"cannot list the output folder ({e.strerror or type(e).__name__})", out,
                          "give -o a folder you can read and write") from None
    if not entries:
        return
    has_job = MANIFEST in entries
    if not resume:
        if has_job:
            raise ConfigError("the output folder holds a previous batch job", out,
                              "pass --resume to continue it, or choose a new folder")
        raise ConfigError("the output folder is not empty", out, "choose a new or empty folder")
    if not has_job:
        raise ConfigError("--resume: the folder holds no batch job (no manifest.sqlite)", out, "check the folder")


class JobFolder:
    """Creates the job folder and, after a failed start, removes what this run created.

    Attributes:
        out: the job folder.
        created: folders this run created (the job folder and missing parents), deepest first.
    """

    def __init__(self, out: Path):
        self.out = out
        self.created: list[Path] = []

    def create(self) -> None:
        """Make the folder (and its missing parents); remember which ones were new."""
        missing, p = [], self.out
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        self.out.mkdir(parents=True, exist_ok=True)
        self.created = missing

    def discard_if_unused(self) -> bool:
        """Remove the folders this run created when they hold nothing but the manifest.

        A folder that already existed, or that holds shards, fields or tiles, is left as it is
        (those are resumable work). Returns True when the job folder was removed.
        """
        if not self.created:
            return False
        try:
            names = {p.name for p in self.out.iterdir()}
        except OSError:
            return False
        if not names <= set(MANIFEST_FILES):
            return False
        for name in names:
            with contextlib.suppress(OSError):
                (self.out / name).unlink()
        for d in self.created:
            try:
                d.rmdir()
            except OSError:
                break
        return not self.out.exists()


@contextlib.contextmanager
def reported_write_errors(out: Path) -> Iterator[None]:
    """Turn a file-system failure (full disk, permissions, a vanished file) or a manifest write
    failure into one :class:`ReconError` line naming the file, instead of a traceback."""
    try:
        yield
    except sqlite3.Error as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ReconError(f"cannot use the job manifest ({text})", out / MANIFEST,
                         "free some space or choose a job folder you can write to (a damaged manifest needs a "
                         "new job folder)") from None
    except OSError as e:
        if e.filename is None and e.errno not in _FS_ERRNOS:
            raise  # a network or program error, not the file system's
        where = Path(e.filename) if e.filename is not None else out
        reason = e.strerror or type(e).__name__
        if is_inside(where, out):
            raise ReconError(f"cannot write in the job folder ({reason})", where,
                             "free some space or choose a job folder you can write to") from None
        raise ReconError(f"cannot access the file ({reason})", where,
                         "check that the file is still there and that you can read and write its folder") from None


def relative_name(out: Path, path: str | os.PathLike) -> str:
    """``path`` relative to the job folder, as stored in the manifest (``tiles/0_0_0.ply``)."""
    p = Path(path)
    try:
        return p.relative_to(out).as_posix()
    except ValueError:
        return p.as_posix()


__all__ = ["JobFolder", "MANIFEST", "MANIFEST_FILES", "check_job_folder", "relative_name", "reported_write_errors"]
