"""Size limits of the point readers (issue 20): declared sizes are checked before allocating.

Each hostile case must raise :class:`InputError` with a useful message, and the ones that used to
allocate gigabytes are measured with ``tracemalloc`` (numpy's allocations are traced).
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import laspy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from recon.errors import InputError
from recon.io import load_mesh, load_point_cloud, lzf
from recon.io._common import DECODE_FLOOR_BYTES, MAX_DECODE_RATIO, check_decoded_size
from recon.io.cameras.assemble import image_size
from recon.io.image_files import open_image
from recon.io.numpy_files import read_npz_bytes

MIB = 1 << 20


def peak_bytes(fn: Callable[[], object]) -> tuple[int, BaseException | None]:
    """(tracemalloc peak in bytes, the exception raised or None) of ``fn()``."""
    tracemalloc.start()
    try:
        fn()
        err = None
    except Exception as exc:  # noqa: BLE001 - returned to the test
        err = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, err


# --------------------------------------------------------------------------- LZF


def reference_lzf(stream: bytes) -> bytes:
    """liblzf's decoder, byte by byte (the specification the vectorised one must match)."""
    out = bytearray()
    i = 0
    while i < len(stream):
        c = stream[i]
        i += 1
        if c < 32:
            out += stream[i : i + c + 1]
            i += c + 1
            continue
        length = c >> 5
        if length == 7:
            length += stream[i]
            i += 1
        back = ((c & 31) << 8) + stream[i] + 1
        i += 1
        for _ in range(length + 2):
            out.append(out[-back])
    return bytes(out)


@st.composite
def lzf_streams(draw: st.DrawFn) -> bytes:
    """Valid LZF: literal runs and (overlapping) back-references of every length and distance."""
    out, size = bytearray(), 0
    for _ in range(draw(st.integers(1, 60))):
        if size == 0 or draw(st.booleans()):
            lit = draw(st.binary(min_size=1, max_size=32))
            out += bytes([len(lit) - 1]) + lit
            size += len(lit)
        else:
            back = draw(st.integers(1, min(size, 8192)))
            length = draw(st.sampled_from([3, 4, 8, 9, 100, 264])) if draw(st.booleans()) else draw(st.integers(3, 264))
            field = length - 2
            hi, lo = (back - 1) >> 8, (back - 1) & 255
            out += bytes([(7 << 5) | hi, field - 7, lo]) if field >= 7 else bytes([(field << 5) | hi, lo])
            size += length
    return bytes(out)


@settings(max_examples=150, deadline=None)
@given(stream=lzf_streams(), block=st.sampled_from([1, 7, 64, 1 << 20]))
def test_lzf_matches_the_reference_decoder(stream: bytes, block: int) -> None:
    """Block boundaries anywhere (even every byte) give the same bytes as the sequential decoder."""
    expected = reference_lzf(stream)
    old = lzf.BLOCK
    lzf.BLOCK = block
    try:
        assert lzf.decompress(stream, len(expected)) == expected
    finally:
        lzf.BLOCK = old


def test_lzf_refuses_impossible_sizes_before_allocating() -> None:
    stream = bytes([0, 0]) + bytes([0xE0, 255, 0]) * 10  # decodes to 1 + 10 * 264 bytes
    assert lzf.decompress(stream, 2641) == b"\0" * 2641
    for size in (2642, 88 * len(stream) + 1, 2**32 - 1):
        peak, err = peak_bytes(lambda s=size: lzf.decompress_array(stream, s))
        assert isinstance(err, lzf.LZFError)
        assert peak < MIB
    with pytest.raises(lzf.LZFError, match="88x"):
        lzf.decompress(stream, 2**32 - 1)


def test_lzf_memory_is_linear_in_the_output() -> None:
    """16 MB out of a 180 KB stream: the old decoder held ~6 int64 per output byte (~800 MB)."""
    n_ref = 16 * MIB // 264
    stream = bytes([0, 7]) + bytes([0xE0, 255, 0]) * n_ref
    size = 1 + 264 * n_ref
    peak, err = peak_bytes(lambda: lzf.decompress_array(stream, size))
    assert err is None
    assert peak < size + 96 * MIB, peak / MIB


# --------------------------------------------------------------------------- shared rule


def test_decoded_size_rule() -> None:
    check_decoded_size("f", DECODE_FLOOR_BYTES, 1, "block", "fix")  # the floor is always allowed
    check_decoded_size("f", MAX_DECODE_RATIO * 10**8, 10**8, "block", "fix")
    with pytest.raises(InputError, match="decompression bomb"):
        check_decoded_size("f", DECODE_FLOOR_BYTES + 1, 1000, "block", "fix")
    with pytest.raises(InputError, match="decompression bomb"):
        check_decoded_size("f", MAX_DECODE_RATIO * 10**8 + 1, 10**8, "block", "fix")
    with pytest.raises(InputError, match="negative"):
        check_decoded_size("f", -1, 10, "block", "fix")


# --------------------------------------------------------------------------- PLY

PLY_HEAD = b"ply\nformat {fmt} 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"


def _ply(tmp_path: Path, fmt: str, rest: bytes, body: bytes) -> Path:
    path = tmp_path / "m.ply"
    path.write_bytes(PLY_HEAD.replace(b"{fmt}", fmt.encode()) + rest + b"end_header\n" + body)
    return path


@pytest.mark.parametrize("count", [2**32 - 1, 2**31 - 1, -5])
def test_binary_ply_list_lengths_beyond_the_file(tmp_path: Path, count: int) -> None:
    ctype, code = ("uint", "<u4") if count > 2**31 else ("int", "<i4")
    body = np.zeros((3, 3), "<f4").tobytes() + np.array([count, 0, 1, 2], code).tobytes()
    path = _ply(tmp_path, "binary_little_endian", f"element face 1\nproperty list {ctype} int vertex_indices\n".encode(), body)
    with pytest.raises(InputError, match="list length"):
        load_mesh(path)


@pytest.mark.parametrize("token", [b"1099511627776", b"1e300", b"-3", b"2.5", b"nan"])
def test_ascii_ply_list_lengths_out_of_range(tmp_path: Path, token: bytes) -> None:
    path = _ply(tmp_path, "ascii", b"element face 1\nproperty list uint int vertex_indices\n",
                b"0 0 0\n1 0 0\n0 1 0\n" + token + b" 0 1 2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from casting 1e300 to an integer
        with pytest.raises(InputError, match="list length"):
            load_mesh(path)


def test_ascii_ply_integer_out_of_its_type(tmp_path: Path) -> None:
    path = _ply(tmp_path, "ascii", b"property uchar red\n", b"0 0 0 10\n1 0 0 300\n0 1 0 5\n")
    with pytest.raises(InputError, match="out of range"):
        load_point_cloud(path, validate=False)


@pytest.mark.parametrize("count", ["1000000000000", str(2**63 - 1), "1" + "0" * 30, "9" * 5000])
def test_ply_element_counts_beyond_the_file(tmp_path: Path, count: str) -> None:
    for fmt in ("ascii", "binary_little_endian"):
        path = _ply(tmp_path, fmt, f"element face {count}\nproperty list uchar int vertex_indices\n".encode(),
                    np.zeros((3, 3), "<f4").tobytes() if fmt != "ascii" else b"0 0 0\n1 0 0\n0 1 0\n")
        peak, err = peak_bytes(lambda p=path: load_mesh(p))
        assert isinstance(err, InputError) and "face" in str(err), err
        assert peak < 4 * MIB


def test_ply_empty_face_element_is_a_mesh_without_faces(tmp_path: Path) -> None:
    path = _ply(tmp_path, "ascii", b"element face 0\nproperty list uchar int vertex_indices\n", b"0 0 0\n1 0 0\n0 1 0\n")
    assert len(load_point_cloud(path, validate=False)) == 3
    with pytest.raises(InputError, match="empty mesh"):
        load_mesh(path)


# --------------------------------------------------------------------------- PCD

PCD = ("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT {count}\nWIDTH {n}\nHEIGHT 1\n"
       "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n")


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_pcd_huge_count_is_refused(tmp_path: Path, data: str) -> None:
    path = tmp_path / "c.pcd"
    path.write_bytes(PCD.format(count="1 1 1000000000", n=10, data=data).encode() + bytes(120))
    with pytest.raises(InputError, match="COUNT 1 1 1000000000"):
        load_point_cloud(path)


def test_pcd_lzf_declared_beyond_the_ratio_is_refused_before_decoding(tmp_path: Path) -> None:
    n = 300_000_000  # 3.6 GB from 60 KB
    stream = bytes([0, 0]) + bytes([0xE0, 255, 0]) * 20_000
    path = tmp_path / "bomb.pcd"
    path.write_bytes(PCD.format(count="1 1 1", n=n, data="binary_compressed").encode()
                     + struct.pack("<II", len(stream), n * 12) + stream)
    peak, err = peak_bytes(lambda: load_point_cloud(path))
    assert isinstance(err, InputError) and "decompression bomb" in str(err)
    assert peak < 4 * MIB


def test_pcd_lzf_with_back_references_round_trips(tmp_path: Path) -> None:
    """A compressible organised cloud (repeated rows) decodes through back-references."""
    rows = np.tile(np.arange(12, dtype="<f4").reshape(4, 3), (50, 1))  # (200, 3)
    raw = np.ascontiguousarray(rows.T).tobytes()  # PCL's column-major layout
    out = bytearray()
    for field in range(3):  # per field: 16 literal bytes (one row of 4 floats), then copies of them
        chunk = raw[field * 800 : (field + 1) * 800]
        out += bytes([15]) + chunk[:16]
        left = 800 - 16
        while left:
            take = min(left, 16 * 16)
            take -= take % 16
            out += bytes([(7 << 5) | 0, take - 9, 15])  # copy `take` bytes from 16 back
            left -= take
    path = tmp_path / "rep.pcd"
    path.write_bytes(PCD.format(count="1 1 1", n=200, data="binary_compressed").encode()
                     + struct.pack("<II", len(out), len(raw)) + bytes(out))
    cloud = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(cloud.points, rows.astype(np.float64))


# --------------------------------------------------------------------------- LAS / LAZ


def _las(version: str, point_format: int, compress: bool, n: int = 2000) -> bytes:
    rng = np.random.default_rng(1)
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = np.array([0.001, 0.001, 0.001])
    las = laspy.LasData(header)
    pts = rng.normal(size=(n, 3)) * 10
    las.x, las.y, las.z = pts[:, 0], pts[:, 1], pts[:, 2]
    buf = io.BytesIO()
    las.write(buf, do_compress=compress)
    return buf.getvalue()


@pytest.mark.parametrize("compress", [False, True])
def test_las14_loads_and_its_64bit_count_is_checked(tmp_path: Path, compress: bool) -> None:
    data = bytearray(_las("1.4", 6, compress))
    path = tmp_path / ("p.laz" if compress else "p.las")
    path.write_bytes(bytes(data))
    assert len(load_point_cloud(path, validate=False)) == 2000
    data[247:255] = (10**9).to_bytes(8, "little")  # laspy reads this one, whatever the legacy count says
    path.write_bytes(bytes(data))
    peak, err = peak_bytes(lambda: load_point_cloud(path))
    assert isinstance(err, InputError) and "1,000,000,000" in str(err), err
    assert peak < 16 * MIB


def test_laz_count_inflated_within_the_floor_costs_only_the_real_points(tmp_path: Path) -> None:
    """2,000 real points claiming 5 million (100 MB of records, under the 128 MiB floor)."""
    data = bytearray(_las("1.2", 0, True))
    data[107:111] = (5_000_000).to_bytes(4, "little")
    path = tmp_path / "p.laz"
    path.write_bytes(bytes(data))
    peak, err = peak_bytes(lambda: load_point_cloud(path))
    assert isinstance(err, InputError)
    assert peak < 40 * MIB, peak / MIB


# --------------------------------------------------------------------------- NPY / NPZ


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_npz_arrays_match_numpy(rng: np.random.Generator) -> None:
    arrays = {"points": rng.normal(size=(50, 3)), "f": np.asfortranarray(rng.normal(size=(4, 5))),
              "big": rng.normal(size=(7, 3)).astype(">f8"), "label": np.zeros(1000, np.uint8), "none": np.zeros((0, 3))}
    got = read_npz_bytes(_npz(**arrays), "a.npz")
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].flags.writeable
        np.testing.assert_array_equal(got[k], v)


def test_npz_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, points=np.zeros((12, 3)), evil=np.array([{"a": 1}], dtype=object))
    path = tmp_path / "o.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="Python objects"):
        load_point_cloud(path)


def test_npz_zip_bomb_is_refused_before_decompressing(tmp_path: Path) -> None:
    """300 MB of zeros in a ~300 KB archive (deflate ~1000x)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("points.npy", "w") as fp:
            hdr = io.BytesIO()
            np.lib.format.write_array_header_1_0(hdr, {"descr": "<f4", "fortran_order": False, "shape": (25 * MIB, 3)})
            fp.write(hdr.getvalue())
            zeros = bytes(4 * MIB)
            for _ in range(75):  # 300 MiB of data
                fp.write(zeros)
    path = tmp_path / "bomb.npz"
    path.write_bytes(buf.getvalue())
    assert path.stat().st_size < MIB
    peak, err = peak_bytes(lambda: load_point_cloud(path))
    assert isinstance(err, InputError) and "decompression bomb" in str(err), err
    assert peak < 4 * MIB + path.stat().st_size * 2


def test_npz_member_whose_declared_size_lies(tmp_path: Path) -> None:
    data = bytearray(_npz(points=np.zeros((20, 3), np.float32)))
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.infolist()[0]
    # the central directory's uncompressed size: 10 GB would need more deflate data than there is
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = struct.pack("<I", 2**32 - 1)
    path.write_bytes(bytes(data))
    peak, err = peak_bytes(lambda: load_point_cloud(path))
    assert isinstance(err, InputError) and f"{info.compress_size:,} compressed bytes" in str(err), err
    assert peak < 4 * MIB


def test_npz_header_that_disagrees_with_its_member(tmp_path: Path) -> None:
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 3)})
    content = hdr.getvalue() + np.zeros((20, 3)).tobytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("points.npy", content)
    path = tmp_path / "hdr.npz"
    path.write_bytes(buf.getvalue())
    peak, err = peak_bytes(lambda: load_point_cloud(path))
    assert isinstance(err, InputError) and "1000000000x3" in str(err), err
    assert peak < 4 * MIB


def test_npy_huge_shape_is_refused_before_allocating(tmp_path: Path) -> None:
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)})
    path = tmp_path / "h.npy"
    path.write_bytes(hdr.getvalue() + bytes(96))
    peak, err = peak_bytes(lambda: load_point_cloud(path))
    assert isinstance(err, InputError) and "not a valid .npy file" in str(err)
    assert peak < MIB


# --------------------------------------------------------------------------- images


def _png_claiming(tmp_path: Path, width: int, height: int, mode: str = "RGB") -> Path:
    """A tiny PNG whose IHDR (CRC fixed) claims ``width`` x ``height`` pixels."""
    buf = io.BytesIO()
    Image.new(mode, (4, 4)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.find(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("side", "mode", "fragment"), [
    (9_000, "RGBA", "decompression bomb"),  # 324 MB of RGBA from ~100 bytes: under Pillow's limit, over ours
    (12_000, "RGB", "too large to decode safely"),  # Pillow's warning level, turned into an error
    (40_000, "RGB", "too large to decode safely"),  # Pillow's error level
])
def test_image_bombs_are_refused_from_the_header(tmp_path: Path, side: int, mode: str, fragment: str) -> None:
    path = _png_claiming(tmp_path, side, side, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not leak
        for read in (image_size, open_image):
            peak, err = peak_bytes(lambda r=read: r(path))
            assert isinstance(err, InputError) and str(path) in str(err) and fragment in str(err), err
            assert peak < 4 * MIB


def test_ordinary_images_open(tmp_path: Path) -> None:
    for mode in ("RGB", "RGBA", "L", "I;16"):
        Image.new(mode, (64, 48)).save(tmp_path / f"{mode.replace(';', '')}.png")
        assert image_size(tmp_path / f"{mode.replace(';', '')}.png") == (64, 48)
        assert open_image(tmp_path / f"{mode.replace(';', '')}.png").size == (64, 48)
