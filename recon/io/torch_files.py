"""Read files written by ``torch.save`` without running code in them.

Weights and checkpoints are untrusted input: they are loaded with ``torch.load(..., weights_only=True)``,
which rebuilds tensors, numbers, strings, lists, tuples and dicts only and refuses any other Python
object (a pickled object could run arbitrary code while it is read). Before that, the zip archive
``torch.save`` writes is checked so that reading it cannot cost more memory than the file's own size:
``torch.save`` never compresses, so a compressed entry (which could inflate a small file into
gigabytes) is refused, as is the older non-zip format (whose storages declare their own sizes).
Every failure is one :class:`~recon.errors.InputError` naming the file and a fix.
"""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.errors import InputError

#: values ``torch.load(..., weights_only=True)`` rebuilds as they are
_PLAIN = (str, bytes, int, float, bool)


def _check_archive(p: Path, what: str, fix: str) -> None:
    """Refuse anything but an uncompressed zip archive whose entries fit in the file.

    Raises:
        InputError: not a zip archive, a compressed entry, or entries larger than the file.
    """
    size = p.stat().st_size
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InputError(f"not a {what} (not a torch.save zip archive)", p, fix) from None
    if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
        raise InputError(f"not a {what} (compressed archive entries; torch.save writes none)", p, fix)
    if sum(i.file_size for i in infos) > size:
        raise InputError(f"corrupt {what} (archive entries larger than the file)", p, fix)


def describe_error(e: BaseException, limit: int = 100) -> str:
    """``Type: first line of the message`` (at most ``limit`` characters of it), for one-line errors."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:limit]}" if lines else type(e).__name__


def _reason(e: Exception) -> str:
    """A few words on why ``torch.load`` refused a file."""
    if type(e).__name__ == "UnpicklingError":  # torch's restricted unpickler refused a Python object
        return "it holds Python objects, not only tensors and plain values; refused without running them"
    return describe_error(e)


def load_tensors(path: str | os.PathLike, *, what: str, fix: str,
                 map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a ``torch.save`` file that holds a dict of tensors and plain values, running no code.

    Args:
        path: the file.
        what: what the file should be, for messages ("VolSDF checkpoint", "HDFE weights").
        fix: what the user should do when the file is refused.
        map_location: device the tensors are loaded onto.

    Returns:
        The saved dict (tensors, numbers, strings, None, bools, lists, tuples, dicts).

    Raises:
        InputError: the file is missing, not a torch zip archive, holds Python objects, is damaged,
            or does not hold a dict.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} not found", p, fix)
    _check_archive(p, what, fix)
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types (unpickling, zip, runtime) for bad files
        raise InputError(f"cannot read {what} ({_reason(e)})", p, fix) from None
    if not isinstance(state, dict):
        raise InputError(f"not a {what} (holds a {type(state).__name__}, not a dict)", p, fix)
    return state


def to_plain(obj: Any) -> Any:
    """``obj`` made of values :func:`load_tensors` rebuilds, for ``torch.save``.

    numpy arrays become tensors (same dtype and values), numpy scalars Python numbers, subclasses of
    str / int / float (such as ``torch.__version__``) the base type; dicts (OrderedDict kept), lists
    and tuples are converted item by item; tensors and Python scalars are kept.

    Raises:
        TypeError: ``obj`` holds anything else (it would be refused when loaded).
    """
    if isinstance(obj, torch.Tensor) or obj is None or type(obj) in _PLAIN:
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj).copy())
    if isinstance(obj, np.generic):
        return obj.item()
    for base in (str, bytes, float, int):  # int after bool's exact match above
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, dict):
        items = ((to_plain(k), to_plain(v)) for k, v in obj.items())
        if not isinstance(obj, OrderedDict):
            return dict(items)
        out = OrderedDict(items)
        if hasattr(obj, "_metadata"):  # module versions kept by nn.Module.state_dict (plain dicts)
            out._metadata = to_plain(obj._metadata)  # type: ignore[attr-defined]
        return out
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v) for v in obj]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(f"cannot save a {type(obj).__module__}.{type(obj).__qualname__} with the tensors: "
                    "it would not load with weights_only=True")


__all__ = ["describe_error", "load_tensors", "to_plain"]
