"""PCD reader (ascii, binary, binary_compressed) and the LZF decoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recon.errors import InputError
from recon.io import load_point_cloud
from recon.io.lzf import LZFError, decompress
from recon.io.pcd import read_pcd


def lzf_literal(data: bytes) -> bytes:
    """Valid LZF made only of literal runs (at most 32 bytes each)."""
    out = bytearray()
    for i in range(0, len(data), 32):
        chunk = data[i : i + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def test_lzf_literals_round_trip(rng: np.random.Generator) -> None:
    data = rng.integers(0, 256, size=1000, dtype=np.uint8).tobytes()
    assert decompress(lzf_literal(data), len(data)) == data
    assert decompress(b"", 0) == b""


def test_lzf_back_references() -> None:
    # literal "abc", then an overlapping back-reference (offset 3, length 10) -> "abcabcabcabca"
    # ctrl: length field (10 - 2) = 8 >= 7 -> 7 in the top bits, extra byte 1; offset-1 = 2
    stream = bytes([2]) + b"abc" + bytes([(7 << 5) | 0, 1, 2])
    assert decompress(stream, 13) == b"abcabcabcabca"
    # short back-reference: length 3 (field 1), offset 1 -> repeats the last byte
    stream = bytes([0]) + b"z" + bytes([(1 << 5) | 0, 0]) + bytes([1]) + b"!?"
    assert decompress(stream, 6) == b"zzzz!?"


@pytest.mark.parametrize(
    ("stream", "size"),
    [
        (bytes([5]) + b"ab", 6),  # literal runs past the end
        (bytes([0]) + b"a" + bytes([(1 << 5) | 0, 5]), 4),  # reference before the start
        (bytes([2]) + b"abc", 4),  # wrong size
        (bytes([0]) + b"a" + bytes([7 << 5]), 10),  # truncated long reference
    ],
)
def test_lzf_errors(stream: bytes, size: int) -> None:
    with pytest.raises(LZFError):
        decompress(stream, size)


HEADER = """# .PCD v0.7 - Point Cloud Data file format
VERSION 0.7
FIELDS {fields}
SIZE {size}
TYPE {type}
COUNT {count}
WIDTH {width}
HEIGHT {height}
VIEWPOINT 1 2 3 1 0 0 0
POINTS {points}
DATA {data}
"""


def _rgb_float(rgb8: np.ndarray) -> np.ndarray:
    packed = (rgb8[:, 0].astype(np.uint32) << 16) | (rgb8[:, 1].astype(np.uint32) << 8) | rgb8[:, 2].astype(np.uint32)
    return packed.view(np.float32)


def _table(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = width * height
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    nrm = rng.normal(size=(n, 3)).astype(np.float32)
    rgb8 = rng.integers(0, 256, size=(n, 3)).astype(np.uint8)
    label = rng.integers(0, 1000, size=n).astype(np.uint16)
    return xyz, nrm, rgb8, label


def _write(path: Path, mode: str, xyz: np.ndarray, nrm: np.ndarray, rgb8: np.ndarray, label: np.ndarray, width: int, height: int) -> None:
    n = xyz.shape[0]
    header = HEADER.format(
        fields="x y z normal_x normal_y normal_z rgb label",
        size="4 4 4 4 4 4 4 2",
        type="F F F F F F F U",
        count="1 1 1 1 1 1 1 1",
        width=width,
        height=height,
        points=n,
        data=mode,
    ).encode()
    cols = [xyz[:, 0], xyz[:, 1], xyz[:, 2], nrm[:, 0], nrm[:, 1], nrm[:, 2], _rgb_float(rgb8), label]
    if mode == "ascii":
        body = "\n".join(
            " ".join(repr(float(v)) if k < 7 else str(int(v)) for k, v in enumerate(row))
            for row in zip(*[c.tolist() for c in cols])
        )
        path.write_bytes(header + body.encode() + b"\n")
        return
    if mode == "binary":
        dt = np.dtype([(f"c{i}", "<f4") for i in range(7)] + [("c7", "<u2")])
        rec = np.empty(n, dtype=dt)
        for i, c in enumerate(cols):
            rec[f"c{i}"] = c
        path.write_bytes(header + rec.tobytes())
        return
    raw = b"".join(c.astype("<u2" if i == 7 else "<f4").tobytes() for i, c in enumerate(cols))
    comp = lzf_literal(raw)
    path.write_bytes(header + np.array([len(comp), len(raw)], "<u4").tobytes() + comp)


@pytest.mark.parametrize("mode", ["ascii", "binary", "binary_compressed"])
def test_pcd_modes_exact(tmp_path: Path, rng: np.random.Generator, mode: str) -> None:
    xyz, nrm, rgb8, label = _table(rng, 20, 1)
    path = tmp_path / f"{mode}.pcd"
    _write(path, mode, xyz, nrm, rgb8, label, 20, 1)
    cloud, info = read_pcd(path)
    np.testing.assert_array_equal(cloud.points, xyz.astype(np.float64))
    np.testing.assert_array_equal(cloud.normals, nrm)
    np.testing.assert_array_equal(np.round(cloud.colors * 255).astype(np.uint8), rgb8)
    np.testing.assert_array_equal(cloud.attrs["label"], label)
    assert cloud.sensors is None  # unorganised: viewpoint not used
    assert info["format"] == f"PCD v0.7 {mode}"


def test_pcd_organised_nans_dropped(tmp_path: Path, rng: np.random.Generator) -> None:
    xyz, nrm, rgb8, label = _table(rng, 8, 5)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    missing = np.zeros(40, dtype=bool)
    missing[[0, 3, 17, 39]] = True
    xyz[missing] = np.nan
    path = tmp_path / "org.pcd"
    _write(path, "binary_compressed", xyz, nrm, rgb8, label, 8, 5)
    raw, info = read_pcd(path)
    assert len(raw) == 40 and info["organised"] and info["height"] == 5
    np.testing.assert_array_equal(raw.sensors[0], [1, 2, 3])
    cloud = load_point_cloud(path)
    assert len(cloud) == 36
    np.testing.assert_array_equal(cloud.points, xyz[~missing].astype(np.float64))
    np.testing.assert_array_equal(cloud.attrs["label"], label[~missing])


def test_pcd_rgba_uint(tmp_path: Path) -> None:
    header = HEADER.format(fields="x y z rgba", size="4 4 4 4", type="F F F U", count="1 1 1 1", width=2, height=1, points=2, data="ascii")
    body = f"0 0 0 {(255 << 24) | (10 << 16) | (20 << 8) | 30}\n1 1 1 {(7 << 24) | (255 << 16)}\n"
    path = tmp_path / "rgba.pcd"
    path.write_text(header + body)
    cloud, _ = read_pcd(path)
    np.testing.assert_allclose(cloud.colors * 255, [[10, 20, 30], [255, 0, 0]], atol=1e-4)


def _good_header(**kw: object) -> str:
    base = dict(fields="x y z", size="4 4 4", type="F F F", count="1 1 1", width=2, height=1, points=2, data="ascii")
    base.update(kw)
    return HEADER.format(**base)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "no DATA"),
        (_good_header().replace("DATA ascii\n", "").encode(), "no DATA"),
        (_good_header(size="4 4").encode() + b"0 0 0\n1 1 1\n", "differ in length"),
        (_good_header(type="F F Q").encode(), "unsupported TYPE"),
        (_good_header(points=5).encode(), "POINTS 5"),
        (_good_header(width="x").encode(), "integers"),
        (_good_header(height="").encode(), "HEIGHT has no value"),
        (_good_header(data="lzma").encode(), "unsupported PCD DATA"),
        (_good_header().replace("FIELDS", "FOO").encode(), "unknown keyword"),
        (_good_header().encode() + b"0 0 0\n1 1\n", "truncated"),
        (_good_header().encode() + b"0 0 0\n1 1 x\n", "unparsable"),
        (_good_header().encode() + b"0 0 0\n1 1 1\n2 2 2\n", "expected 2 x 3"),
        (_good_header(data="binary").encode() + b"\0" * 23, "truncated binary"),
        (_good_header(data="binary_compressed").encode() + b"\0\0", "no size words"),
        (_good_header(data="binary_compressed").encode() + np.array([50, 24], "<u4").tobytes() + b"\0" * 10, "truncated binary_compressed"),
        (_good_header(data="binary_compressed").encode() + np.array([5, 99], "<u4").tobytes() + b"\0" * 5, "uncompressed size 99"),
        (_good_header(data="binary_compressed").encode() + np.array([3, 24], "<u4").tobytes() + bytes([5, 1, 2]), "corrupt binary_compressed"),
        (_good_header(fields="a b c").encode() + b"0 0 0\n1 1 1\n", "lacks x, y, z"),
    ],
)
def test_pcd_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.pcd"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_point_cloud(path, validate=False)
