"""Output locations checked before any work: never an input, always writable.

Every command calls :func:`check_output_file` (or :func:`check_output_folder` for commands that
write a folder) on each location it will write *before* it reads or computes anything heavy, so
a mistake costs a second, not the whole run, and no input is ever replaced by a result.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from recon.errors import ConfigError

PathLike = str | os.PathLike


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file: same path, a symlink to it or a hard link."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return _canonical(pa) == _canonical(pb)


def is_inside(path: PathLike, folder: PathLike) -> bool:
    """True when ``path`` (resolved) is ``folder`` or lies under it."""
    p, f = _canonical(Path(path)), _canonical(Path(folder))
    return p == f or f in p.parents


def _canonical(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as written
        return p.absolute()


def probe_writable(folder: PathLike) -> str | None:
    """Create and delete a hidden file in ``folder``; None when that works, else the OS's reason.

    ``os.access`` is not enough: it says yes to root on a read-only file system and cannot see
    quotas or full disks, so the folder is tried for real.
    """
    probe = Path(folder) / f".recon-write-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        return e.strerror or errno.errorcode.get(e.errno or 0, "not writable")
    os.close(fd)
    try:
        probe.unlink()
    except OSError:
        pass
    return None


def check_output_file(path: PathLike, inputs: Iterable[PathLike | None] = (), *, option: str = "-o") -> Path:
    """Refuse an output file that would replace an input or cannot be written.

    Args:
        path: the file the command will write.
        inputs: every file the command reads (None entries are skipped). The output may not be
            one of them: same path, symlink or hard link.
        option: the command-line option that named ``path`` (for the fix).

    Returns:
        ``path`` as a Path.

    Raises:
        ConfigError: the output is an input, a folder, or its folder is missing or not writable.
    """
    out = Path(path)
    for src in inputs:
        if src is None:
            continue
        if same_file(out, src):
            raise ConfigError("the output is the same file as the input and would destroy it", out,
                              f"give {option} a new file name")
    if out.is_dir():
        raise ConfigError("the output is a folder", out, f"give {option} a file name inside it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError("the output folder does not exist", out, f"create {_canonical(parent)} first")
    if out.exists() and not os.access(out, os.W_OK) and os.geteuid() != 0:
        raise ConfigError("the output file exists and is read-only", out, f"give {option} another name")
    reason = probe_writable(parent)
    if reason is not None:
        raise ConfigError(f"cannot write in the output folder ({reason})", out,
                          f"give {option} a location you can write to")
    return out


def check_output_folder(path: PathLike, inputs: Iterable[PathLike | None] = (), *, option: str = "-o") -> Path:
    """Refuse an output folder that holds or is an input, or whose location cannot be written.

    The folder itself may not exist yet; its nearest existing ancestor must be writable. A
    folder that would be replaced (``--force``) must not be the current folder, an ancestor of
    it, or contain any input.

    Raises:
        ConfigError: as above.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError("the output is a file, not a folder", out, f"give {option} a folder name")
    cwd = Path.cwd()
    if is_inside(cwd, out):
        raise ConfigError("the output folder is the current folder or holds it", out,
                          f"give {option} a new folder name, e.g. {option} renders")
    for src in inputs:
        if src is None:
            continue
        if is_inside(src, out) or same_file(out, src):
            raise ConfigError("the output folder holds an input and would replace it", out,
                              f"give {option} a folder that holds none of the inputs")
    return check_writable_folder(out, option=option)


def check_writable_folder(path: PathLike, *, option: str) -> Path:
    """Refuse a folder (existing or to be created) in which nothing can be written.

    The folder itself, or else its nearest existing ancestor, is tried with a real file.

    Raises:
        ConfigError: the location is a file, or it (or the ancestor) is not writable.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError("the location is a file, not a folder", out, f"give {option} a folder name")
    probe = out if out.is_dir() else out.parent if str(out.parent) else Path(".")
    while not probe.is_dir() and probe != probe.parent:
        probe = probe.parent
    reason = probe_writable(probe)
    if reason is not None:
        raise ConfigError(f"cannot write in {probe} ({reason})", out, f"give {option} a location you can write to")
    return out


__all__ = ["check_output_file", "check_output_folder", "check_writable_folder", "is_inside", "probe_writable", "same_file"]
