"""Streaming point readers: LAS/LAZ (laspy chunk iterator), binary PLY and NPY (numpy memmap),
and folders of such files.

A file is described once by :func:`probe` (header only: count, bounds when the header has
them, whether normals are stored) and cut into :class:`Piece` ranges of points; a piece is
read in chunks by :func:`iter_chunks`, so no step holds a whole file. Coordinates are float64
world units (LAS: ``X * scale + offset``); rows with a non-finite coordinate are dropped.

Normals are read when the file has them: PLY ``nx ny nz`` (or ``normal_x`` ...), NPY columns
3..5 of a 6- or 9-column array, LAS extra-bytes dimensions ``nx ny nz`` (as written by
:mod:`recon.tiling.synth_scene`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from recon.errors import DependencyError, InputError
from recon.io._common import looks_like_rgb255
from recon.io.ply import parse_header

STREAM_SUFFIXES = (".las", ".laz", ".ply", ".npy")
_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))
_FIX_LAS = "re-export the file from the LiDAR software; for .laz make sure lazrs is installed (pip install lazrs)"


@dataclass(frozen=True)
class Source:
    """One input file.

    Attributes:
        path: the file.
        kind: "las", "ply" or "npy".
        count: number of points (rows) in the file.
        has_normals: whether the file stores normals.
        bounds: (2, 3) header bounds as nested lists (LAS only), else None.
        fingerprint: "size:mtime_ns" (changes when the file is rewritten).
    """

    path: str
    kind: str
    count: int
    has_normals: bool
    bounds: tuple | None
    fingerprint: str


@dataclass(frozen=True)
class Piece:
    """Points ``[start, stop)`` of ``sources[source]``: the unit of one pass-1 / pass-2 task."""

    index: int
    source: Source
    start: int
    stop: int

    @property
    def count(self) -> int:
        return self.stop - self.start


@dataclass
class Chunk:
    """A block of points: xyz (K, 3) float64 world units, normals (K, 3) float32 or None; ``dropped``
    counts rows removed for a non-finite coordinate."""

    xyz: np.ndarray
    normals: np.ndarray | None
    dropped: int = 0


# --------------------------------------------------------------------------- discovery


def list_inputs(paths: list[str | os.PathLike]) -> list[Path]:
    """Files to read: each path itself, or the supported files directly inside a folder (sorted).

    Raises:
        InputError: a path does not exist, a folder holds no supported file, a file has an
            unsupported extension, or nothing is given.
    """
    if not paths:
        raise InputError("no input given", None, "pass point cloud files or a folder of them")
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in STREAM_SUFFIXES)
            if not found:
                raise InputError("folder holds no .las, .laz, .ply or .npy file", p,
                                 "pass a folder of point cloud files")
            out.extend(found)
        elif not p.exists():
            raise InputError("file not found", p, "check the path and the current directory")
        elif p.suffix.lower() not in STREAM_SUFFIXES:
            raise InputError(f"'{p.suffix or '(no extension)'}' cannot be streamed", p,
                             "convert it to .las/.laz, binary .ply or .npy (or use `recon reconstruct` if small)")
        else:
            out.append(p)
    return out


def _fingerprint(p: Path) -> str:
    st = p.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def probe(path: str | os.PathLike) -> Source:
    """Read a file's header: kind, point count, normals, bounds (LAS).

    Raises:
        InputError: unreadable, corrupt, unsupported layout or no points.
    """
    p = Path(path)
    if not os.access(p, os.R_OK):
        raise InputError("file is not readable", p, "check its permissions")
    ext = p.suffix.lower()
    if ext in (".las", ".laz"):
        src = _probe_las(p)
    elif ext == ".ply":
        src = _probe_ply(p)[0]
    else:
        src = _probe_npy(p)[0]
    if src.count == 0:
        raise InputError("the file holds no points", p, "check the export; an empty cloud cannot be reconstructed")
    return src


def _laspy():
    try:
        import laspy
    except ImportError as exc:  # pragma: no cover - laspy is a hard dependency
        raise DependencyError("reading LAS/LAZ needs laspy", None, "pip install 'laspy[lazrs]'") from exc
    return laspy


def _check_las_header(p: Path) -> None:
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(375)
    if not head.startswith(b"LASF"):
        raise InputError("not a LAS/LAZ file (missing 'LASF' signature)", p, _FIX_LAS)
    if size < 227 or len(head) < 227:
        raise InputError(f"truncated LAS header ({size} bytes)", p, _FIX_LAS)
    point_offset = int.from_bytes(head[96:100], "little")
    fmt = head[104]
    record_len = int.from_bytes(head[105:107], "little")
    n = int.from_bytes(head[107:111], "little")
    if head[25] >= 4 and len(head) >= 255 and n == 0:
        n = int.from_bytes(head[247:255], "little")
    if point_offset > size:
        raise InputError(f"corrupt LAS header (points start at byte {point_offset} of {size})", p, _FIX_LAS)
    if not fmt & 0xC0 and n * record_len > size - point_offset:
        raise InputError(f"truncated LAS point data ({n} points of {record_len} bytes do not fit)", p, _FIX_LAS)


def _probe_las(p: Path) -> Source:
    laspy = _laspy()
    _check_las_header(p)
    try:
        with laspy.open(p) as reader:
            h = reader.header
            dims = set(h.point_format.dimension_names)
            count = int(h.point_count)
            bounds = (tuple(float(v) for v in h.mins), tuple(float(v) for v in h.maxs))
    except Exception as exc:  # noqa: BLE001 - laspy / lazrs raise anything on corrupt files
        raise InputError(f"cannot read LAS/LAZ header ({_first_line(exc)})", p, _FIX_LAS) from None
    has_n = any(set(names) <= dims for names in _NORMAL_NAMES)
    return Source(str(p), "las", count, has_n, bounds, _fingerprint(p))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def _probe_ply(p: Path) -> tuple[Source, np.dtype, int, tuple[str, ...] | None]:
    """Source, vertex record dtype, byte offset of the vertex element, normal field names."""
    with open(p, "rb") as fh:
        head = fh.read(1 << 20)
    header = parse_header(head, p)
    if header.format == "ascii":
        raise InputError("ASCII PLY cannot be streamed", p,
                         "save it as binary PLY (or use `recon reconstruct` for small files)")
    endian = "<" if header.format == "binary_little_endian" else ">"
    offset = header.body_offset
    for el in header.elements:
        if el.has_lists:
            if el.name == "vertex":
                raise InputError("PLY vertex element has list properties", p,
                                 "export vertices with scalar properties only")
            raise InputError(f"PLY element '{el.name}' precedes the vertices", p,
                             "export a point cloud PLY (vertices first)")
        dt = np.dtype([(pr.name, endian + pr.dtype) for pr in el.properties])
        if el.name == "vertex":
            names = set(dt.names or ())
            if not {"x", "y", "z"} <= names:
                raise InputError("PLY vertices have no x, y, z", p, "export positions as x y z")
            normals = next((n for n in _NORMAL_NAMES if set(n) <= names), None)
            need = offset + el.count * dt.itemsize
            if need > p.stat().st_size:
                raise InputError(f"truncated PLY ({el.count} vertices need {need} bytes)", p, "re-export the file")
            return Source(str(p), "ply", int(el.count), normals is not None, None, _fingerprint(p)), dt, offset, normals
        offset += el.count * dt.itemsize
    raise InputError("PLY file has no vertex element", p, "export a point cloud PLY")


def _open_npy(p: Path) -> np.ndarray:
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, EOFError, OSError ...
        raise InputError(f"not a valid .npy file ({type(exc).__name__})", p, "save the array with numpy.save") from None
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.dtype.kind not in "fiu":
        raise InputError(f"the .npy array must be numeric (N, 3+), got {arr.dtype} {arr.shape}", p,
                         "save x y z [nx ny nz] columns as a float array")
    return arr


def _probe_npy(p: Path) -> tuple[Source, bool]:
    arr = _open_npy(p)
    has_n = arr.shape[1] in (6, 9)
    if has_n and arr.shape[1] == 6 and len(arr):
        has_n = not looks_like_rgb255(np.asarray(arr[: min(len(arr), 10000), 3:6], dtype=np.float64))
    return Source(str(p), "npy", int(arr.shape[0]), has_n, None, _fingerprint(p)), has_n


# --------------------------------------------------------------------------- pieces and chunks


def make_pieces(sources: list[Source], piece_points: int) -> list[Piece]:
    """Cut every source into consecutive ranges of at most ``piece_points`` points (in order)."""
    pieces: list[Piece] = []
    step = max(1, int(piece_points))
    for src in sources:
        for start in range(0, src.count, step):
            pieces.append(Piece(len(pieces), src, start, min(src.count, start + step)))
    return pieces


def iter_chunks(piece: Piece, chunk_points: int = 1_000_000) -> Iterator[Chunk]:
    """Read a piece in chunks of at most ``chunk_points`` points (finite rows only).

    Raises:
        InputError: the file cannot be decoded (one line, naming the file).
    """
    reader = {"las": _las_chunks, "ply": _ply_chunks, "npy": _npy_chunks}[piece.source.kind]
    p = Path(piece.source.path)
    try:
        for xyz, nrm in reader(piece, max(1, int(chunk_points))):
            yield _finite(xyz, nrm)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoder errors of laspy / lazrs / numpy
        fix = _FIX_LAS if piece.source.kind == "las" else "re-export the file"
        raise InputError(f"cannot decode points {piece.start}..{piece.stop} ({_first_line(exc)})", p, fix) from None


def _finite(xyz: np.ndarray, nrm: np.ndarray | None) -> Chunk:
    xyz = np.ascontiguousarray(xyz, dtype=np.float64)
    ok = np.isfinite(xyz).all(axis=1)
    if nrm is not None:
        nrm = np.ascontiguousarray(nrm, dtype=np.float32)
    if ok.all():
        return Chunk(xyz, nrm, 0)
    return Chunk(xyz[ok], None if nrm is None else nrm[ok], int((~ok).sum()))


def _las_chunks(piece: Piece, chunk: int):
    laspy = _laspy()
    names = None
    with laspy.open(piece.source.path) as reader:
        dims = set(reader.header.point_format.dimension_names)
        names = next((n for n in _NORMAL_NAMES if set(n) <= dims), None)
        reader.seek(piece.start)
        left = piece.count
        while left > 0:
            pts = reader.read_points(min(chunk, left))
            if len(pts) == 0:
                raise InputError(f"file ends after {piece.start + piece.count - left} of {piece.source.count} points",
                                 piece.source.path, _FIX_LAS)
            left -= len(pts)
            xyz = np.stack([np.asarray(pts.x, dtype=np.float64), np.asarray(pts.y, dtype=np.float64),
                            np.asarray(pts.z, dtype=np.float64)], 1)
            nrm = None if names is None else np.stack([np.asarray(pts[n], dtype=np.float32) for n in names], 1)
            yield xyz, nrm


def _ply_chunks(piece: Piece, chunk: int):
    src, dt, offset, names = _probe_ply(Path(piece.source.path))
    mm = np.memmap(piece.source.path, dtype=dt, mode="r", offset=offset, shape=(src.count,))
    for a in range(piece.start, piece.stop, chunk):
        rec = mm[a:min(piece.stop, a + chunk)]
        xyz = np.stack([rec["x"], rec["y"], rec["z"]], 1).astype(np.float64)
        nrm = None if names is None else np.stack([rec[n] for n in names], 1).astype(np.float32)
        yield xyz, nrm
    del mm


def _npy_chunks(piece: Piece, chunk: int):
    p = Path(piece.source.path)
    arr = _open_npy(p)
    for a in range(piece.start, piece.stop, chunk):
        block = np.asarray(arr[a:min(piece.stop, a + chunk)], dtype=np.float64)
        yield block[:, :3], (block[:, 3:6].astype(np.float32) if piece.source.has_normals else None)
