"""A numpy-only PLY reader and a binary PLY writer.

Reads ``ascii``, ``binary_little_endian`` and ``binary_big_endian`` files with any
elements, scalar properties and list properties. Binary elements whose rows all have
the same size are read with one structured :func:`numpy.frombuffer`; elements whose list
lengths vary (mixed polygons) are located with pointer doubling over byte positions, so
no Python loop runs over rows. ASCII bodies are tokenised once and consumed the same way.

Cloud semantics (see :func:`ply_to_cloud`): vertex ``x y z`` (float or double), optional
``nx ny nz`` (or ``normal_x`` ...), optional ``red green blue`` (uchar -> /255, ushort ->
/65535, float as is); every other vertex scalar is kept in ``attrs``. A file with a
``face`` or ``tristrips`` element is a mesh (see :func:`ply_to_mesh`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io._common import colors_to_unit, read_bytes
from recon.types import Mesh, PointCloud

PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_NAME_OF = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}
FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")
_FIX_CORRUPT = "re-export the file from its source program"
_MAX_HEADER = 1 << 20


@dataclass
class PlyProperty:
    """One property: ``dtype`` is a numpy code ("f4"); ``count_dtype`` is set for list properties."""

    name: str
    dtype: str
    count_dtype: str | None = None


@dataclass
class PlyElement:
    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)

    @property
    def has_lists(self) -> bool:
        return any(p.count_dtype is not None for p in self.properties)


@dataclass
class PlyHeader:
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
    return InputError(problem, path, _FIX_CORRUPT)


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
            elements.append(PlyElement(parts[1], int(parts[2])))
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


# --------------------------------------------------------------------------- binary


def _gather(buf: np.ndarray, pos: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Values of dtype ``dt`` starting at byte positions ``pos`` ((K,) int64) of ``buf`` (uint8)."""
    size = dt.itemsize
    idx = pos[:, None] + np.arange(size, dtype=np.int64)
    return np.ascontiguousarray(buf[idx]).view(dt).reshape(-1)


def _binary_fixed(
    buf: np.ndarray, off: int, el: PlyElement, endian: str
) -> tuple[dict[str, Any], int] | None:
    """Read ``el`` assuming every row has the list lengths of its first row; None if they vary."""
    n = buf.shape[0]
    fields: list[tuple[Any, ...]] = []
    cur = off
    for i, p in enumerate(el.properties):
        if p.count_dtype is None:
            fields.append((f"p{i}", endian + p.dtype))
            cur += np.dtype(p.dtype).itemsize
        else:
            cdt = np.dtype(endian + p.count_dtype)
            if el.count == 0:
                k = 0
            else:
                if cur + cdt.itemsize > n:
                    raise InputError("truncated binary PLY body", None)
                k = int(np.frombuffer(buf, cdt, 1, cur)[0])
                if k < 0:
                    return None
            fields.append((f"c{i}", cdt))
            fields.append((f"p{i}", endian + p.dtype, (k,)))
            cur += cdt.itemsize + k * np.dtype(p.dtype).itemsize
    dt = np.dtype(fields)
    if off + el.count * dt.itemsize > n:
        if el.has_lists:
            return None  # rows may be shorter than the first one: take the general path
        raise InputError("truncated binary PLY body", None)
    rows = np.frombuffer(buf, dt, el.count, off)
    out: dict[str, Any] = {}
    for i, p in enumerate(el.properties):
        if p.count_dtype is None:
            out[p.name] = rows[f"p{i}"].astype(p.dtype)
        else:
            counts = rows[f"c{i}"].astype(np.int64)
            k = rows.dtype[f"p{i}"].shape[0] if rows.dtype[f"p{i}"].shape else 0
            if counts.size and np.any(counts != k):
                return None
            out[p.name] = PlyList(counts, rows[f"p{i}"].astype(p.dtype).reshape(-1))
    return out, off + el.count * dt.itemsize


def _row_starts(jump_of: Any, m: int, rows: int) -> np.ndarray:
    """Start of each of ``rows`` rows and the end ((rows+1,) int64) by pointer doubling.

    ``jump_of(p)`` gives, for relative positions ``p`` ((m,) int64), where the next row
    would start if one started at ``p``; values > m mean "overruns the data".
    """
    jump = np.empty(m + 2, dtype=np.int64)
    jump[:m] = np.clip(jump_of(np.arange(m, dtype=np.int64)), 0, m + 1)
    jump[m] = m  # a row starting at the very end is zero-length only if allowed; treat as stop
    jump[m + 1] = m + 1
    t = np.arange(rows + 1, dtype=np.int64)
    pos = np.zeros(rows + 1, dtype=np.int64)
    bit = 0
    while (1 << bit) <= rows:
        sel = ((t >> bit) & 1).astype(bool)
        pos[sel] = jump[pos[sel]]
        jump = jump[jump]
        bit += 1
    return pos


def _variable_rows(
    n: int,
    rows: int,
    props: list[PlyProperty],
    unit: Any,
    read: Any,
    path: str | os.PathLike,
) -> tuple[dict[str, Any], int]:
    """Read rows with variable-length lists from a source of ``n`` units starting at 0.

    Args:
        n: number of units (bytes or tokens) available.
        rows: element count.
        props: the element's properties.
        unit: ``unit(dtype_code) -> int`` size of one value in units.
        read: ``read(pos, dtype_code) -> values`` gathering one value per position (pos < n).
    """

    def walk(start: np.ndarray, collect: bool) -> tuple[np.ndarray, dict[str, Any]]:
        cur = start.copy()
        bad = np.zeros(start.shape, dtype=bool)
        out: dict[str, Any] = {}
        for p in props:
            if p.count_dtype is None:
                size = unit(p.dtype)
                ok = cur + size <= n
                bad |= ~ok
                if collect:
                    out[p.name] = read(np.where(ok, cur, 0), p.dtype)
                cur = cur + size
            else:
                csize = unit(p.count_dtype)
                ok = (cur + csize <= n) & ~bad
                cnt = np.where(ok, read(np.where(ok, cur, 0), p.count_dtype), 0).astype(np.int64)
                bad |= ~ok | (cnt < 0)
                cnt = np.where(bad, 0, cnt)
                isize = unit(p.dtype)
                first = cur + csize
                if collect:
                    if np.any(bad):
                        raise InputError("truncated or corrupt PLY body (bad list)", path, _FIX_CORRUPT)
                    starts = np.repeat(first - np.cumsum(cnt) * isize + cnt * isize, cnt)
                    within = np.arange(int(cnt.sum()), dtype=np.int64) * isize
                    flat_pos = starts + within
                    if flat_pos.size and int(flat_pos.max()) + isize > n:
                        raise InputError("truncated PLY body (list runs past the end)", path, _FIX_CORRUPT)
                    out[p.name] = PlyList(cnt, read(flat_pos, p.dtype) if flat_pos.size else np.zeros(0, p.dtype))
                cur = first + cnt * isize
        return np.where(bad, n + 1, cur), out

    min_row = sum(unit(p.dtype if p.count_dtype is None else p.count_dtype) for p in props)
    if rows * min_row > n:
        raise InputError(f"truncated PLY body: {rows} rows need at least {rows * min_row} units, {n} left", path, _FIX_CORRUPT)
    starts = _row_starts(lambda p: walk(p, False)[0], n, rows)
    end = int(starts[-1])
    if end > n or (rows > 0 and props and bool((starts[:-1] >= n).any())):
        raise InputError("truncated PLY body", path, _FIX_CORRUPT)
    _, out = walk(starts[:-1], True)
    return out, end


def _read_binary(data: bytes, header: PlyHeader, path: str | os.PathLike, wanted: set[str] | None) -> dict[str, dict[str, Any]]:
    endian = "<" if header.format == "binary_little_endian" else ">"
    buf = np.frombuffer(data, dtype=np.uint8)
    off = header.body_offset
    result: dict[str, dict[str, Any]] = {}
    for el in header.elements:
        try:
            got = _binary_fixed(buf, off, el, endian)
        except InputError as exc:
            raise InputError(f"{exc.problem} in element {el.name!r}", path, "the file was cut short; re-export or re-download it") from None
        if got is None:
            sub = buf[off:]

            def unit(code: str) -> int:
                return np.dtype(code).itemsize

            def read(pos: np.ndarray, code: str, sub: np.ndarray = sub) -> np.ndarray:
                return _gather(sub, pos, np.dtype(endian + code)).astype(code)

            values, used = _variable_rows(sub.shape[0], el.count, el.properties, unit, read, path)
            got = (values, off + used)
        values, off = got
        if wanted is None or el.name in wanted:
            result[el.name] = values
    return result


# --------------------------------------------------------------------------- ascii


def _read_ascii(data: bytes, header: PlyHeader, path: str | os.PathLike, wanted: set[str] | None) -> dict[str, dict[str, Any]]:
    text = data[header.body_offset :].decode("latin-1")
    tokens = text.split()
    try:
        vals = np.array(tokens, dtype=np.float64) if tokens else np.zeros(0)
    except ValueError:
        bad = next((t for t in tokens[:100000] if not _is_number(t)), "?")
        raise InputError(f"unparsable number {bad[:30]!r} in ASCII PLY body", path, _FIX_CORRUPT) from None
    n = vals.shape[0]
    off = 0
    result: dict[str, dict[str, Any]] = {}
    for el in header.elements:
        if not el.has_lists:
            k = len(el.properties)
            if off + el.count * k > n:
                raise InputError(f"truncated ASCII PLY body in element {el.name!r}", path, _FIX_CORRUPT)
            block = vals[off : off + el.count * k].reshape(el.count, k)
            values: dict[str, Any] = {p.name: _cast(block[:, i], p.dtype, path) for i, p in enumerate(el.properties)}
            off += el.count * k
        else:
            sub = vals[off:]

            def read(pos: np.ndarray, code: str, sub: np.ndarray = sub) -> np.ndarray:
                return sub[pos]

            raw, used = _variable_rows(sub.shape[0], el.count, el.properties, lambda code: 1, read, path)
            values = {}
            for p in el.properties:
                v = raw[p.name]
                if isinstance(v, PlyList):
                    values[p.name] = PlyList(v.counts, _cast(v.values, p.dtype, path))
                else:
                    values[p.name] = _cast(v, p.dtype, path)
            off += used
        if wanted is None or el.name in wanted:
            result[el.name] = values
    return result


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _cast(v: np.ndarray, code: str, path: str | os.PathLike) -> np.ndarray:
    if code[0] == "f":
        return v.astype(code)
    if v.size and (not np.all(np.isfinite(v)) or np.any(v != np.round(v))):
        raise InputError("non-integer value for an integer PLY property", path, _FIX_CORRUPT)
    return v.astype(code)


# --------------------------------------------------------------------------- public


def read_ply(path: str | os.PathLike, wanted: set[str] | None = None) -> tuple[PlyHeader, dict[str, dict[str, Any]]]:
    """Read a PLY file into ``{element: {property: array or PlyList}}``.

    Args:
        path: the file.
        wanted: element names to keep (all are still walked); None keeps all.

    Raises:
        InputError: any problem with the file.
    """
    data = read_bytes(path)
    header = parse_header(data, path)
    if header.format == "ascii":
        return header, _read_ascii(data, header, path, wanted)
    return header, _read_binary(data, header, path, wanted)


_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))
_COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
MESH_ELEMENTS = ("face", "tristrips")


def _vertex_arrays(
    vertex: dict[str, Any], path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, dict[str, np.ndarray]]:
    """points (N,3) f8, normals (N,3) or None, colours (N,3) f4 in [0,1] or None, sensors (N,3) or None, attrs."""
    if not all(k in vertex for k in ("x", "y", "z")):
        raise InputError("PLY vertex element lacks x, y, z properties", path, "export the vertex positions as x y z")
    pts = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in ("x", "y", "z")], axis=1)
    used = {"x", "y", "z"}
    normals = colors = None
    for names in _NORMAL_NAMES:
        if all(k in vertex and not isinstance(vertex[k], PlyList) for k in names):
            normals = np.stack([np.asarray(vertex[k], dtype=np.float32) for k in names], axis=1)
            used.update(names)
            break
    for names in _COLOR_NAMES:
        if all(k in vertex and not isinstance(vertex[k], PlyList) for k in names):
            raw = np.stack([vertex[k] for k in names], axis=1)
            colors = colors_to_unit(raw)
            used.update(names)
            break
    sensors = None
    names = ("sensor_x", "sensor_y", "sensor_z")
    if all(k in vertex and not isinstance(vertex[k], PlyList) for k in names):
        sensors = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in names], axis=1)
        used.update(names)
    attrs = {k: np.asarray(v) for k, v in vertex.items() if k not in used and not isinstance(v, PlyList)}
    return pts, normals, colors, sensors, attrs


def header_info(header: PlyHeader) -> dict[str, Any]:
    return {
        "format": f"PLY {header.format}",
        "elements": {e.name: e.count for e in header.elements},
        "vertex_properties": [p.name for p in (header.element("vertex") or PlyElement("vertex", 0)).properties],
        "comments": header.comments[:10],
    }


def ply_is_mesh(header: PlyHeader) -> bool:
    """True when the header declares a non-empty ``face`` or ``tristrips`` element."""
    return any(e.name in MESH_ELEMENTS and e.count > 0 for e in header.elements)


def ply_to_cloud(path: str | os.PathLike, header: PlyHeader, elements: dict[str, dict[str, Any]]) -> PointCloud:
    """Build a :class:`PointCloud` from the vertex element of a parsed PLY."""
    vertex = elements.get("vertex")
    if vertex is None:
        raise InputError("PLY file has no vertex element", path, "export the points as a 'vertex' element")
    pts, normals, colors, sensors, attrs = _vertex_arrays(vertex, path)
    return PointCloud(pts, normals, colors, sensors, attrs=attrs, source=os.fspath(path))


def decode_tristrips(strips: np.ndarray) -> np.ndarray:
    """Triangles from concatenated triangle strips separated by -1.

    Strip ``(a, b, c, d, e)`` gives ``(a,b,c), (c,b,d), (c,d,e)``: every other triangle is
    flipped to keep a consistent winding. Triangles with a repeated vertex (used to join
    strips) are dropped.

    Args:
        strips: (K,) integer vertex indices with -1 between strips.

    Returns:
        (F, 3) int64 faces.
    """
    s = np.asarray(strips, dtype=np.int64).reshape(-1)
    if s.shape[0] < 3:
        return np.zeros((0, 3), dtype=np.int64)
    j = np.arange(s.shape[0], dtype=np.int64)
    is_sep = s < 0
    # index of the first element of the strip that contains position j
    strip_start = np.maximum.accumulate(np.where(is_sep, j + 1, 0))
    a, b, c = s[:-2], s[1:-1], s[2:]
    valid = (a >= 0) & (b >= 0) & (c >= 0)
    odd = ((j[:-2] - strip_start[:-2]) % 2).astype(bool)
    tri = np.stack([np.where(odd, b, a), np.where(odd, a, b), c], axis=1)[valid]
    degenerate = (tri[:, 0] == tri[:, 1]) | (tri[:, 1] == tri[:, 2]) | (tri[:, 0] == tri[:, 2])
    return tri[~degenerate]


def polygons_to_triangles(lst: PlyList) -> np.ndarray:
    """Fan-triangulate polygons ((R,) lists of >= 3 indices) into (F, 3) int64 faces.

    Polygons with fewer than 3 vertices are dropped.
    """
    counts = lst.counts.astype(np.int64)
    values = lst.values.astype(np.int64)
    if counts.size and np.all(counts == 3):
        return values.reshape(-1, 3)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    ntri = np.maximum(counts - 2, 0)
    first = np.repeat(starts, ntri)
    k = np.arange(int(ntri.sum()), dtype=np.int64) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    return np.stack([values[first], values[first + k + 1], values[first + k + 2]], axis=1)


def ply_to_mesh(path: str | os.PathLike, header: PlyHeader, elements: dict[str, dict[str, Any]]) -> Mesh:
    """Build a :class:`Mesh` from a parsed PLY with ``face`` and/or ``tristrips`` elements."""
    vertex = elements.get("vertex")
    if vertex is None:
        raise InputError("PLY file has no vertex element", path, "export the mesh vertices as a 'vertex' element")
    pts, normals, colors, _, _ = _vertex_arrays(vertex, path)
    faces = [np.zeros((0, 3), dtype=np.int64)]
    for name in MESH_ELEMENTS:
        el = elements.get(name)
        if not el:
            continue
        lists = [v for k, v in el.items() if isinstance(v, PlyList) and k in ("vertex_indices", "vertex_index")]
        if not lists:
            lists = [v for v in el.values() if isinstance(v, PlyList)]
        if not lists:
            raise InputError(f"PLY {name} element has no index list", path, "export faces as 'property list uchar int vertex_indices'")
        if name == "face":
            faces.append(polygons_to_triangles(lists[0]))
        else:
            faces.append(decode_tristrips(lists[0].values))
    f = np.concatenate(faces)
    if f.size and (f.min() < 0 or f.max() >= pts.shape[0]):
        raise InputError("PLY face refers to a vertex that does not exist", path, _FIX_CORRUPT)
    if normals is not None and not np.all(np.isfinite(normals)):
        normals = None
    return Mesh(pts, f, vertex_normals=normals, vertex_colors=colors)


def write_ply(
    path: str | os.PathLike,
    vertex_fields: list[tuple[str, np.ndarray]],
    faces: np.ndarray | None = None,
    comments: tuple[str, ...] = (),
) -> None:
    """Write a binary little-endian PLY (directly; callers wrap it in :func:`atomic_write`).

    Args:
        path: the output file.
        vertex_fields: ``(name, (N,) array)`` in order; each array's dtype is the PLY type.
        faces: optional (F, 3) vertex indices, written as ``list uchar int vertex_indices``.
        comments: header comment lines.
    """
    n = vertex_fields[0][1].shape[0] if vertex_fields else 0
    vdt = np.dtype([(name, "<" + np.asarray(a).dtype.str[1:]) for name, a in vertex_fields])
    vert = np.empty(n, dtype=vdt)
    for name, a in vertex_fields:
        vert[name] = a
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {n}")
    lines += [f"property {_NAME_OF[np.dtype(vdt[name]).str[1:]]} {name}" for name, _ in vertex_fields]
    fdata = b""
    if faces is not None:
        f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        fdt = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
        rec = np.empty(f.shape[0], dtype=fdt)
        rec["n"] = 3
        rec["i"] = f
        lines += [f"element face {f.shape[0]}", "property list uchar int vertex_indices"]
        fdata = rec.tobytes()
    lines.append("end_header")
    with open(path, "wb") as fh:
        fh.write(("\n".join(lines) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(fdata)
