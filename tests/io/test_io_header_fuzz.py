"""Fuzzing the header parsers with huge and negative counts (issue 20).

Generated PLY, PCD, LAS/LAZ and NPZ files declare counts and sizes anywhere from -2**63 to 10**30
(list lengths, element counts, COUNT/WIDTH/HEIGHT/POINTS, LZF sizes, LAS point counts and
offsets, npy shapes, zip member sizes). Each must either load or raise :class:`InputError`,
never another exception, and the read may not allocate more than :data:`PEAK_LIMIT` bytes
(``tracemalloc`` sees numpy's and Python's allocations): the files are a few KB, so anything
larger means a declared size was trusted.
"""

from __future__ import annotations

import io
import struct
import tempfile
import tracemalloc
import warnings
import zlib
from pathlib import Path

import laspy
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon.errors import InputError
from recon.io import load_mesh, load_point_cloud

PEAK_LIMIT = 48 << 20
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EDGES = [2**15, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]
SMALL = st.integers(0, 12)
COUNTS = st.one_of(SMALL, SMALL, st.sampled_from(EDGES), st.integers(0, 2**63))
NEGATIVE = st.one_of(st.integers(-(2**63), -1), st.sampled_from([-1, -(2**31), -(2**63)]))
SIGNED = st.one_of(COUNTS, COUNTS, COUNTS, NEGATIVE)


def _read(ext: str, data: bytes, mesh: bool = False) -> int:
    """Load ``data`` as a ``ext`` file; returns the tracemalloc peak. Only InputError may escape."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f{ext}"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a RuntimeWarning (overflow in a cast) is a bug too
                for action in ([load_point_cloud, load_mesh] if mesh else [load_point_cloud]):
                    try:
                        action(path, **({"validate": False} if action is load_point_cloud else {}))
                    except InputError as exc:
                        assert "\n" not in str(exc) and str(exc).startswith(str(path))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def _as_type(value: int, code: str, endian: str) -> bytes:
    """``value`` wrapped into the integer type ``code`` (what a file can actually hold)."""
    dt = np.dtype(endian + code)
    bits = 8 * dt.itemsize
    return np.array([value % (1 << bits)], dtype=np.dtype(endian + "u" + str(dt.itemsize))).view(dt).tobytes()


# --------------------------------------------------------------------------- PLY

PLY_COUNT_TYPES = {"uchar": "u1", "char": "i1", "ushort": "u2", "short": "i2", "uint": "u4", "int": "i4"}


@st.composite
def ply_files(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from(["ascii", "binary_little_endian", "binary_big_endian"]))
    endian = ">" if fmt == "binary_big_endian" else "<"
    rows = draw(st.integers(0, 12))
    lengths = draw(st.lists(st.one_of(st.just(3), SIGNED), max_size=3))
    # counts: mostly what the body holds, else anything
    n_vertex = draw(st.one_of(st.just(rows), st.just(rows), SIGNED))
    n_face = draw(st.one_of(st.just(len(lengths)), st.just(len(lengths)), SIGNED))
    ctype = draw(st.sampled_from(sorted(PLY_COUNT_TYPES)))
    head = (f"ply\nformat {fmt} 1.0\nelement vertex {n_vertex}\nproperty float x\nproperty float y\nproperty float z\n"
            f"property uchar red\nelement face {n_face}\nproperty list {ctype} int vertex_indices\nend_header\n")
    if fmt == "ascii":
        body = "".join(f"{i} {i % 2} {i % 3} {draw(st.one_of(st.just(7), SIGNED))}\n" for i in range(rows))
        body += "".join(f"{n} 0 1 2\n" for n in lengths)
        raw = body.encode()
    else:
        raw = b"".join(np.array([i, i % 2, i % 3], endian + "f4").tobytes() + bytes([i]) for i in range(rows))
        raw += b"".join(_as_type(n, PLY_COUNT_TYPES[ctype], endian) + np.array([0, 1, 2], endian + "i4").tobytes() for n in lengths)
    return head.encode() + raw + draw(st.one_of(st.just(b""), st.binary(max_size=16)))


@SETTINGS
@given(data=ply_files())
def test_ply_headers_with_huge_counts(data: bytes) -> None:
    assert _read(".ply", data, mesh=True) < PEAK_LIMIT


# --------------------------------------------------------------------------- PCD


@st.composite
def pcd_files(draw: st.DrawFn) -> bytes:
    def sometimes(strategy: st.SearchStrategy, usual: object) -> object:  # the usual value 3 times in 4
        return draw(strategy) if draw(st.sampled_from([False, False, False, True])) else usual

    counts = [sometimes(SIGNED, 1) for _ in range(3)]
    width, height = sometimes(SIGNED, draw(SMALL)), sometimes(SIGNED, 1)
    points = sometimes(SIGNED, width * height)
    record = 4 * sum(counts)
    mode = draw(st.sampled_from(["ascii", "binary", "binary_compressed"]))
    head = (f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT {' '.join(map(str, counts))}\n"
            f"WIDTH {width}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA {mode}\n").encode()
    if mode == "ascii":
        body = b"".join(b"1 2 3\n" for _ in range(draw(st.integers(0, 5))))
    elif mode == "binary":
        exact = 0 <= points * record <= 4096 and draw(st.booleans())
        body = np.arange(points * record // 4, dtype="<f4").tobytes() if exact else draw(st.binary(max_size=120))
    else:
        literal = draw(st.binary(min_size=1, max_size=32))
        stream = bytes([len(literal) - 1]) + literal + bytes([0xE0, 255, 0]) * draw(st.integers(0, 8))
        csize = draw(st.one_of(st.just(len(stream)), st.integers(0, 2**32 - 1)))
        usize = draw(st.one_of(st.integers(0, 3000), st.integers(0, 2**32 - 1)))
        body = struct.pack("<II", csize, usize) + stream
    return head + body


@SETTINGS
@given(data=pcd_files())
def test_pcd_headers_with_huge_counts(data: bytes) -> None:
    assert _read(".pcd", data) < PEAK_LIMIT


# --------------------------------------------------------------------------- LAS / LAZ


def _las_bytes(version: str, point_format: int, compress: bool) -> bytes:
    rng = np.random.default_rng(3)
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = np.array([0.01, 0.01, 0.01])
    las = laspy.LasData(header)
    pts = rng.normal(size=(50, 3))
    las.x, las.y, las.z = pts[:, 0], pts[:, 1], pts[:, 2]
    buf = io.BytesIO()
    las.write(buf, do_compress=compress)
    return buf.getvalue()


LAS_SEEDS = {"las12": _las_bytes("1.2", 3, False), "laz12": _las_bytes("1.2", 1, True),
             "las14": _las_bytes("1.4", 6, False), "laz14": _las_bytes("1.4", 7, True)}
# (offset, size) of the header fields the reader must not trust: header size, point offset, VLR
# count, point format, record length, legacy count, EVLR start, EVLR count, 64-bit count
LAS_FIELDS = [(94, 2), (96, 4), (100, 4), (104, 1), (105, 2), (107, 4), (235, 8), (243, 4), (247, 8)]
LAS_COUNTS = [(107, 4), (247, 8)]  # drawn as often as all the others together


@st.composite
def las_files(draw: st.DrawFn) -> tuple[str, bytes]:
    seed = draw(st.sampled_from(sorted(LAS_SEEDS)))
    data = bytearray(LAS_SEEDS[seed])
    for _ in range(draw(st.integers(1, 3))):
        at, size = draw(st.sampled_from(LAS_FIELDS) | st.sampled_from(LAS_COUNTS))
        value = draw(st.one_of(COUNTS, st.integers(0, 255)))
        data[at : at + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))):]
    return (".laz" if "laz" in seed else ".las"), bytes(data)


def test_las_seeds_load() -> None:
    for seed, data in LAS_SEEDS.items():
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"s.{seed[:3]}"
            path.write_bytes(data)
            assert len(load_point_cloud(path, validate=False)) == 50


@SETTINGS
@given(case=las_files())
def test_las_headers_with_huge_counts(case: tuple[str, bytes]) -> None:
    assert _read(*case) < PEAK_LIMIT


# --------------------------------------------------------------------------- NPZ


def _npy_header(descr: str, shape: tuple[int, ...], fortran: bool, version: int) -> bytes:
    text = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}".encode("latin-1")
    size_len = 2 if version == 1 else 4
    pad = (-(8 + size_len + len(text) + 1)) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + len(text).to_bytes(size_len, "little") + text


def _zip(members: list[tuple[str, bytes, bool, int | None]]) -> bytes:
    """A zip archive of (name, content, deflate, declared size or None for the true one)."""
    out, central = b"", b""
    for name, content, deflate, declared in members:
        crc = zlib.crc32(content)
        if deflate:
            comp = zlib.compressobj(6, zlib.DEFLATED, -15)
            stored = comp.compress(content) + comp.flush()
        else:
            stored = content
        size = len(content) if declared is None else declared % (1 << 32)
        fname = name.encode()
        method = 8 if deflate else 0
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(stored), size, len(fname), 0)
        out += fname + stored
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(stored), size,
                               len(fname), 0, 0, 0, 0, 0, offset) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return out + central + end


DESCRS = ["'<f4'", "'<f8'", "'>f8'", "'|u1'", "'<i8'", "'|O'", "'<U3'", "[('a', '<f4'), ('b', '|O')]", "'|V0'", "'zz'", "7"]


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    members = []
    for name in draw(st.lists(st.sampled_from(["points", "normals", "colors", "extra"]), min_size=1, max_size=3, unique=True)):
        rows = draw(st.integers(10, 20))
        honest = draw(st.booleans())  # half the members are valid arrays, so archives also load
        shape = (rows, 3) if honest else tuple(draw(st.lists(st.one_of(st.integers(0, 6), COUNTS, st.integers(-9, -1)), max_size=3)))
        descr = "'<f4'" if honest else draw(st.sampled_from(DESCRS))
        header = _npy_header(descr, shape, draw(st.booleans()), draw(st.sampled_from([1, 2, 3])))
        if honest or draw(st.booleans()):  # a real small array under a possibly lying header
            content = header + np.random.default_rng(rows).normal(size=(rows, 3)).astype("<f4").tobytes()
        else:
            content = header + draw(st.binary(max_size=96))
        declared = None if honest else draw(st.one_of(st.none(), COUNTS))
        members.append((name + ".npy", content, draw(st.booleans()), declared))
    return _zip(members)


def test_npz_builder_makes_loadable_archives() -> None:
    data = _zip([("points.npy", _npy_header("'<f4'", (12, 3), False, 1) +
                  np.random.default_rng(0).normal(size=(12, 3)).astype("<f4").tobytes(), True, None)])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ok.npz"
        path.write_bytes(data)
        assert load_point_cloud(path, validate=False).points.shape == (12, 3)


@SETTINGS
@given(data=npz_files())
def test_npz_headers_with_huge_counts(data: bytes) -> None:
    assert _read(".npz", data) < PEAK_LIMIT
