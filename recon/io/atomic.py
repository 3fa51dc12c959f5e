"""Atomic file writing: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from recon.errors import InputError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same directory (so :func:`os.replace` is an
    atomic rename on the same filesystem) and keeps the target's suffix, so
    writers that infer a format from the extension still work. If the body
    raises anything (including ``KeyboardInterrupt``), the temporary file is
    deleted and the target is left untouched.

    Raises:
        InputError: the target's directory does not exist, or the target is a directory.

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
    tmp = parent / f".{target.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise InputError("the writer produced no file", target, "report this as a bug")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
