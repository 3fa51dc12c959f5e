"""Column text (.xyz .pts .txt .csv) and numpy (.npy .npz) readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recon.errors import InputError
from recon.io import load_point_cloud, save_point_cloud
from recon.types import PointCloud

PTS = np.array([[0.5, -1.0, 2.25], [1.0, 2.0, 3.0], [-4.5, 0.125, 8.0]])
NRM = np.array([[0.0, 0.0, 1.0], [0.6, 0.8, 0.0], [1.0, 0.0, 0.0]])
RGB = np.array([[255, 0, 10], [0, 128, 255], [1, 2, 3]])


def _rows(a: np.ndarray, sep: str) -> str:
    return "\n".join(sep.join(repr(float(v)) if float(v) != int(v) else str(int(v)) for v in row) for row in a)


@pytest.mark.parametrize(("ext", "sep"), [(".xyz", " "), (".txt", "\t"), (".csv", ","), (".csv", ";"), (".xyz", ", ")])
def test_text_xyz_separators(tmp_path: Path, ext: str, sep: str) -> None:
    path = tmp_path / f"p{ext}"
    path.write_text("X,Y,Z\n" + _rows(PTS, sep) + "\n")
    c = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(c.points, PTS)
    assert c.normals is None and c.colors is None


def test_text_normals_vs_colours_rule(tmp_path: Path) -> None:
    (tmp_path / "n.xyz").write_text(_rows(np.hstack([PTS, NRM]), " "))
    c = load_point_cloud(tmp_path / "n.xyz", validate=False)
    np.testing.assert_array_equal(c.normals, NRM.astype(np.float32))
    assert c.colors is None
    (tmp_path / "c.xyz").write_text("# x y z r g b\n" + _rows(np.hstack([PTS, RGB]), " "))
    c = load_point_cloud(tmp_path / "c.xyz", validate=False)
    np.testing.assert_allclose(c.colors, RGB / 255.0, atol=1e-7)
    assert c.normals is None


def test_text_nine_columns_and_pts_count_line(tmp_path: Path) -> None:
    path = tmp_path / "scan.pts"
    path.write_text("3\n" + _rows(np.hstack([PTS, NRM, RGB]), " ") + "\n")
    c = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(c.points, PTS)
    np.testing.assert_array_equal(c.normals, NRM.astype(np.float32))
    np.testing.assert_allclose(c.colors, RGB / 255.0, atol=1e-7)


def test_text_leica_pts_seven_columns(tmp_path: Path) -> None:
    path = tmp_path / "leica.pts"
    path.write_text("3\n" + _rows(np.hstack([PTS, [[-100], [0], [2047]], RGB]), " "))
    c = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(c.attrs["intensity"], [-100, 0, 2047])
    np.testing.assert_allclose(c.colors, RGB / 255.0, atol=1e-7)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("", "no numeric rows"),
        ("x y z\nfoo bar baz\n", "no numeric rows"),
        ("1 2 3\n4 5\n", "ragged"),
        ("1 2 3\n4 5 six\n", "unparsable"),
        ("1 2 3 4 5\n6 7 8 9 10\n", "wrong column count"),
        ("1 2\n3 4\n", "no numeric rows"),
    ],
)
def test_text_errors(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "bad.xyz"
    path.write_text(body)
    with pytest.raises(InputError, match=match):
        load_point_cloud(path, validate=False)


def test_text_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\x00\x01\x02 1 2 3")
    with pytest.raises(InputError, match="binary data"):
        load_point_cloud(path, validate=False)


@pytest.mark.parametrize("cols", [3, 6, 9])
def test_npy_columns(tmp_path: Path, cols: int) -> None:
    arr = np.hstack([PTS, NRM, RGB])[:, :cols].astype(np.float32)
    np.save(tmp_path / "a.npy", arr)
    c = load_point_cloud(tmp_path / "a.npy", validate=False)
    np.testing.assert_array_equal(c.points, arr[:, :3].astype(np.float64))
    assert (c.normals is not None) == (cols >= 6)
    if cols == 9:
        np.testing.assert_allclose(c.colors, RGB / 255.0, atol=1e-7)


def test_npy_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((4, 5)))
    with pytest.raises(InputError, match="wrong column count"):
        load_point_cloud(tmp_path / "bad.npy")
    np.save(tmp_path / "str.npy", np.array(["a", "b"]))
    with pytest.raises(InputError, match="not numeric"):
        load_point_cloud(tmp_path / "str.npy")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match="not a valid .npy"):
        load_point_cloud(tmp_path / "junk.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError):
        load_point_cloud(tmp_path / "obj.npy")


def test_npz_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", xyz=PTS, normals=NRM, colours=RGB.astype(np.uint8), intensity=np.array([1, 2, 3]))
    c = load_point_cloud(tmp_path / "a.npz", validate=False)
    np.testing.assert_array_equal(c.points, PTS)
    np.testing.assert_array_equal(c.normals, NRM.astype(np.float32))
    np.testing.assert_allclose(c.colors, RGB / 255.0, atol=1e-7)
    np.testing.assert_array_equal(c.attrs["intensity"], [1, 2, 3])
    np.savez(tmp_path / "bad.npz", points=PTS, normals=NRM[:2])
    with pytest.raises(InputError, match="has 2 rows"):
        load_point_cloud(tmp_path / "bad.npz")
    np.savez(tmp_path / "none.npz", a=np.zeros(3), b=np.zeros(4))
    with pytest.raises(InputError, match="no 'points'"):
        load_point_cloud(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(InputError, match="npz"):
        load_point_cloud(tmp_path / "junk.npz")


@pytest.mark.parametrize("ext", [".npz", ".xyz", ".ply"])
def test_save_point_cloud_round_trips(tmp_path: Path, rng: np.random.Generator, ext: str) -> None:
    pts = rng.normal(size=(25, 3)) * 3
    nrm = rng.normal(size=(25, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    rgb8 = rng.integers(0, 256, size=(25, 3))
    cloud = PointCloud(pts, nrm, rgb8 / 255.0)
    save_point_cloud(cloud, tmp_path / f"o{ext}")
    back = load_point_cloud(tmp_path / f"o{ext}", validate=False)
    expect = pts.astype(np.float32).astype(np.float64) if ext == ".ply" else pts
    np.testing.assert_array_equal(back.points, expect)
    np.testing.assert_array_equal(back.normals, cloud.normals)
    np.testing.assert_array_equal(np.round(back.colors * 255), rgb8)


def test_save_point_cloud_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.ply, \.npz, \.xyz"):
        save_point_cloud(PointCloud(PTS), tmp_path / "x.las")
    assert not list(tmp_path.iterdir())
