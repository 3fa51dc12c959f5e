"""PLY header: the type table, the header data classes and :func:`parse_header`.

The parser only reads the header; it accepts element counts up to :data:`MAX_COUNT` (an int64)
and leaves checking them against the file to the body readers (:mod:`recon.io.ply_body`),
because streaming readers parse headers of files they never load whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recon.errors import InputError

PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
NAME_OF = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}
FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")
FIX_CORRUPT = "re-export the file from its source program"
_MAX_HEADER = 1 << 20
#: Largest element count accepted by the header parser (counts must also fit in the file: see ply_body).
MAX_COUNT = (1 << 63) - 1


@dataclass
class PlyProperty:
    """One property: ``dtype`` is a numpy code ("f4"); ``count_dtype`` is set for list properties."""

    name: str
    dtype: str
    count_dtype: str | None = None


@dataclass
class PlyElement:
    """One element (``vertex``, ``face`` ...): its declared row count and properties."""

    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)

    @property
    def has_lists(self) -> bool:
        return any(p.count_dtype is not None for p in self.properties)

    def min_row_units(self, unit: Callable[[str], int]) -> int:
        """Smallest size of one row (every list empty), in units of ``unit(dtype_code)``."""
        return sum(unit(p.dtype if p.count_dtype is None else p.count_dtype) for p in self.properties)


@dataclass
class PlyHeader:
    """A parsed header: ``body_offset`` is the byte where the body starts."""

    format: str
    elements: list[PlyElement]
    comments: list[str]
    body_offset: int

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


@dataclass
class PlyList:
    """A list property: row ``i`` is ``values[offsets[i]:offsets[i+1]]``.

    Attributes:
        counts: (R,) int64 list lengths.
        values: (sum(counts),) flat values.
    """

    counts: np.ndarray
    values: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)


def _corrupt(path: str | os.PathLike, problem: str) -> InputError:
    return InputError(problem, path, FIX_CORRUPT)


def parse_header(data: bytes, path: str | os.PathLike) -> PlyHeader:
    """Parse the header of a PLY file held in ``data``.

    Raises:
        InputError: missing magic, missing ``end_header``, unknown format or type,
            malformed ``element``/``property`` lines.
    """
    if not data.startswith(b"ply"):
        raise _corrupt(path, "not a PLY file (missing 'ply' magic)")
    end = data.find(b"end_header", 0, _MAX_HEADER)
    if end < 0:
        raise _corrupt(path, "corrupt or truncated PLY header (no end_header)")
    body = end + len(b"end_header")
    while data[body : body + 1] in (b" ", b"\t"):
        body += 1
    if data[body : body + 2] == b"\r\n":
        body += 2
    elif data[body : body + 1] in (b"\n", b"\r", b""):
        body += 1 if body < len(data) else 0
    else:
        raise _corrupt(path, "corrupt PLY header (end_header not followed by a newline)")
    lines = data[:end].decode("latin-1").replace("\r", "\n").split("\n")
    fmt: str | None = None
    elements: list[PlyElement] = []
    comments: list[str] = []
    for raw in lines[1:]:
        parts = raw.split()
        if not parts:
            continue
        key = parts[0]
        if key in ("comment", "obj_info"):
            comments.append(raw.strip()[len(key) :].strip())
        elif key == "format":
            if len(parts) < 2 or parts[1] not in FORMATS:
                raise _corrupt(path, f"unknown PLY format {' '.join(parts[1:2]) or '(none)'!r}")
            fmt = parts[1]
        elif key == "element":
            if len(parts) != 3 or not parts[2].isascii() or not parts[2].isdigit():
                raise _corrupt(path, f"malformed PLY header line {raw.strip()[:60]!r}")
            count = int(parts[2]) if len(parts[2]) <= 20 else MAX_COUNT + 1
            if count > MAX_COUNT:
                raise _corrupt(path, f"PLY element {parts[1][:30]!r} declares {parts[2][:30]} rows, more than any file holds")
            elements.append(PlyElement(parts[1], count))
        elif key == "property":
            if not elements:
                raise _corrupt(path, "PLY property before any element")
            if len(parts) == 5 and parts[1] == "list":
                if parts[2] not in PLY_TYPES or parts[3] not in PLY_TYPES:
                    raise _corrupt(path, f"unknown PLY type in {raw.strip()[:60]!r}")
                cdt = PLY_TYPES[parts[2]]
                if cdt[0] == "f":
                    raise _corrupt(path, "PLY list count must be an integer type")
                elements[-1].properties.append(PlyProperty(parts[4], PLY_TYPES[parts[3]], cdt))
            elif len(parts) == 3 and parts[1] in PLY_TYPES:
                elements[-1].properties.append(PlyProperty(parts[2], PLY_TYPES[parts[1]]))
            else:
                raise _corrupt(path, f"malformed PLY property line {raw.strip()[:60]!r}")
        else:
            raise _corrupt(path, f"unknown PLY header keyword {key[:30]!r}")
    if fmt is None:
        raise _corrupt(path, "PLY header has no format line")
    return PlyHeader(fmt, elements, comments, body)

