"""LAS/LAZ (laspy) and raw float32 .bin (KITTI, nuScenes, ScanNet) readers."""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pytest

from recon.errors import InputError
from recon.io import load_point_cloud


def _write_las(path: Path, xyz: np.ndarray, rgb16: np.ndarray, compressed: bool) -> None:
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets = np.array([636000.0, 5000000.0, 100.0])
    header.scales = np.array([0.001, 0.001, 0.001])
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.red, las.green, las.blue = rgb16[:, 0], rgb16[:, 1], rgb16[:, 2]
    las.intensity = np.arange(len(xyz), dtype=np.uint16) * 3
    las.classification = (np.arange(len(xyz)) % 7).astype(np.uint8)
    las.write(str(path), laz_backend=laspy.LazBackend.Lazrs if compressed else None)


@pytest.mark.parametrize("ext", [".las", ".LAZ"])
def test_las_laz_georeferenced_mm(tmp_path: Path, rng: np.random.Generator, ext: str) -> None:
    n = 200
    mm = rng.integers(0, 500_000, size=(n, 3))
    xyz = np.array([636000.0, 5000000.0, 100.0]) + mm * 0.001  # exact to the mm grid
    rgb16 = rng.integers(0, 65536, size=(n, 3)).astype(np.uint16)
    rgb16[0] = 65535  # make sure values above 255 exist: 16-bit scaling
    path = tmp_path / f"tile{ext}"
    _write_las(path, xyz, rgb16, compressed=ext.lower() == ".laz")
    c = load_point_cloud(path, validate=False)
    assert c.points.dtype == np.float64
    assert np.max(np.abs(c.points - xyz)) < 1e-6  # far below a millimetre
    assert abs(c.points[:, 0].mean() - 636000) < 1000
    np.testing.assert_allclose(c.colors, rgb16 / 65535.0, atol=1e-7)
    np.testing.assert_array_equal(c.attrs["intensity"], np.arange(n) * 3)
    np.testing.assert_array_equal(c.attrs["classification"], np.arange(n) % 7)


def test_las_errors(tmp_path: Path) -> None:
    (tmp_path / "a.las").write_bytes(b"not a las file at all")
    with pytest.raises(InputError, match="LASF"):
        load_point_cloud(tmp_path / "a.las")
    (tmp_path / "b.laz").write_bytes(b"LASF" + b"\0" * 300)
    with pytest.raises(InputError, match="corrupt LAS header"):
        load_point_cloud(tmp_path / "b.laz")
    (tmp_path / "c.las").write_bytes(b"LASF" + b"\0" * 100)
    with pytest.raises(InputError, match="truncated LAS header"):
        load_point_cloud(tmp_path / "c.las")


def test_las_truncated(tmp_path: Path, rng: np.random.Generator) -> None:
    xyz = np.array([636000.0, 5e6, 100.0]) + rng.uniform(0, 10, size=(50, 3))
    _write_las(tmp_path / "t.laz", xyz, np.zeros((50, 3), np.uint16), compressed=True)
    data = (tmp_path / "t.laz").read_bytes()
    (tmp_path / "cut.laz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        load_point_cloud(tmp_path / "cut.laz")
    # a corrupt VLR count would make laspy read past the end for a very long time
    bad = bytearray(data)
    bad[100:104] = (4_000_000_000).to_bytes(4, "little")
    (tmp_path / "vlr.laz").write_bytes(bytes(bad))
    with pytest.raises(InputError, match="VLRs"):
        load_point_cloud(tmp_path / "vlr.laz")


def test_kitti_bin(tmp_path: Path, rng: np.random.Generator) -> None:
    arr = np.hstack([rng.uniform(-50, 50, size=(60, 3)), rng.uniform(0, 1, size=(60, 1))]).astype(np.float32)
    path = tmp_path / "000001.bin"
    arr.tofile(path)
    c = load_point_cloud(path, validate=False)
    assert len(c) == 60
    np.testing.assert_array_equal(c.points, arr[:, :3].astype(np.float64))
    np.testing.assert_array_equal(c.attrs["intensity"], arr[:, 3])
    np.testing.assert_array_equal(c.sensors, np.zeros((60, 3)))


def test_nuscenes_bin(tmp_path: Path, rng: np.random.Generator) -> None:
    # 80 rows x 5 = 400 floats = 1600 bytes, also divisible by 16: the layout is guessed
    arr = np.hstack(
        [rng.uniform(-50, 50, size=(80, 3)), rng.integers(0, 256, size=(80, 1)), rng.integers(0, 32, size=(80, 1))]
    ).astype(np.float32)
    path = tmp_path / "sweep.pcd.bin"
    arr.tofile(path)
    c = load_point_cloud(path, validate=False)
    assert len(c) == 80
    np.testing.assert_array_equal(c.attrs["ring"], arr[:, 4])


def test_rgb_bin_and_override(tmp_path: Path, rng: np.random.Generator) -> None:
    arr = np.hstack([rng.uniform(0, 5, size=(42, 3)), rng.integers(0, 256, size=(42, 3))]).astype(np.float32)
    path = tmp_path / "scene.bin"
    arr.tofile(path)
    c = load_point_cloud(path, validate=False)
    assert len(c) == 42
    np.testing.assert_allclose(c.colors, arr[:, 3:] / 255.0, atol=1e-7)
    forced = load_point_cloud(path, validate=False, bin_columns=4)
    assert len(forced) == 63
    with pytest.raises(InputError, match="multiple of 20"):
        load_point_cloud(path, bin_columns=5)
    with pytest.raises(InputError, match="must be 4, 5 or 6"):
        load_point_cloud(path, bin_columns=3)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"\0" * 18, "not a multiple"),
        (np.full(24, 1e30, np.float32).tobytes(), "no plausible"),
    ],
)
def test_bin_errors(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    with pytest.raises(InputError, match=match):
        load_point_cloud(path)
