"""Atomic file writing: write to a temporary sibling, flush it to disk, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from recon.errors import ConfigError, InputError, ReconError

_TMP = re.compile(r"^\.(?P<stem>.*)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>.*)$")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; fsync it and rename it onto ``path`` on success.

    The temporary file lives in the same directory (so :func:`os.replace` is an
    atomic rename on the same filesystem) and keeps the target's suffix, so
    writers that infer a format from the extension still work. If the body
    raises anything (including ``KeyboardInterrupt``), the temporary file is
    deleted and the target is left untouched. The file and its folder are
    flushed to disk before and after the rename, so a power cut leaves either the
    old file or the whole new one. Temporary siblings left by a killed process
    (``kill -9``) are removed the next time the same target is written.

    Raises:
        InputError: the target's directory does not exist, or the target is a directory.
        ReconError: the file system refused the write (full disk, permissions): one line
            naming the file and the reason, instead of a traceback.

    Example:
        >>> with atomic_write("mesh.ply") as tmp:   # doctest: +SKIP
        ...     tmp.write_bytes(data)
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("output directory does not exist", target, f"create {parent} first")
    if target.is_dir():
        raise InputError("output path is a directory", target, "give a file name")
    remove_stale_temporaries(target)
    tmp = parent / f".{target.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise InputError("the writer produced no file", target, "report this as a bug")
        _fsync_file(tmp)
        os.replace(tmp, target)
        _fsync_dir(parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ReconError(f"cannot write the file ({e.strerror or type(e).__name__})", target,
                         "free some space or choose a location you can write to") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike, replace: bool = False, create_parent: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; when the block succeeds it becomes ``target``.

    On any error (or Ctrl-C) the temporary folder is removed and ``target`` is untouched. An existing
    ``target`` is replaced only when ``replace`` is True (moved aside first, then deleted).

    Args:
        create_parent: create a missing parent folder (else a missing parent is an error).

    Raises:
        ConfigError: ``target`` is a file, or a non-empty folder and ``replace`` is False.
        InputError: the parent folder does not exist (without ``create_parent``).
    """
    dst = Path(target)
    parent = dst.absolute().parent
    if not create_parent and not parent.is_dir():
        raise InputError("output folder's parent does not exist", dst, f"create {parent} first")
    if dst.exists() and not dst.is_dir():
        raise ConfigError("output exists and is a file", dst, "choose a folder name")
    if dst.is_dir() and any(dst.iterdir()) and not replace:
        raise ConfigError("output folder exists and is not empty", dst, "choose another folder or pass --force")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{dst.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if dst.exists():
            old = parent / f".{dst.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.replace(dst, old)
        os.replace(tmp, dst)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete hidden temporary siblings of ``target`` whose writing process no longer runs.

    Returns:
        The files removed.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    removed = []
    try:
        candidates = list(parent.glob(f".{glob_escape(target.stem)}.tmp-*"))
    except OSError:
        return removed
    for cand in candidates:
        m = _TMP.match(cand.name)
        if m is None or m["stem"] != target.stem or m["suffix"] != target.suffix:
            continue
        if _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            cand.unlink()
            removed.append(cand)
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob metacharacters bracketed so it matches literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a name we cannot judge: leave it
    return True


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Flush the rename itself (best effort: some file systems cannot fsync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
