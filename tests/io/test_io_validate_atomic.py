"""validate_point_cloud rules, atomic_write, path errors and describe()."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recon.errors import InputError
from recon.io import (
    SUPPORTED_MESH_EXTENSIONS,
    SUPPORTED_POINT_EXTENSIONS,
    atomic_write,
    describe,
    load_point_cloud,
    save_point_cloud,
    validate_point_cloud,
)
from recon.io.formats import guess_units
from recon.types import PointCloud


def _plane(rng: np.random.Generator, n: int = 50) -> np.ndarray:
    return np.column_stack([rng.uniform(size=n), rng.uniform(size=n), np.zeros(n)])


def test_validate_ok_normalises_normals(rng: np.random.Generator) -> None:
    pts = _plane(rng)
    nrm = np.tile([0.0, 0.0, 3.0], (50, 1))
    cloud, notes = validate_point_cloud(PointCloud(pts, nrm), "f.ply")
    assert notes == []
    np.testing.assert_allclose(cloud.normals, np.tile([0, 0, 1], (50, 1)), atol=0)
    assert cloud.normals.dtype == np.float32


def test_validate_drops_non_finite(rng: np.random.Generator) -> None:
    pts = _plane(rng, 2000)
    pts[:1234:1, 1] = np.nan
    pts[1500, 2] = np.inf
    cloud, notes = validate_point_cloud(PointCloud(pts, attrs={"i": np.arange(2000)}), "f.ply")
    assert len(cloud) == 2000 - 1235
    assert notes == ["dropped 1,235 rows with NaN/Inf coordinates (765 remain)"]
    assert cloud.attrs["i"][0] == 1234


@pytest.mark.parametrize(
    ("make", "match", "fix"),
    [
        (lambda r: PointCloud(np.zeros((0, 3))), "empty", "exported"),
        (lambda r: PointCloud(np.full((20, 3), np.nan)), "all 20 points have NaN", "valid depth"),
        (lambda r: PointCloud(_plane(r, 9)), "only 9 valid points", "denser"),
        (lambda r: PointCloud(_plane(r), np.ones((49, 3))), "49 normals for 50 points", "--ignore-normals"),
        (lambda r: PointCloud(_plane(r), colors=np.ones((3, 3))), "3 colors for 50 points", "re-export"),
        (lambda r: PointCloud(_plane(r), attrs={"i": np.zeros(4)}), "attribute 'i'", "re-export"),
        (lambda r: PointCloud(_plane(r), np.vstack([np.zeros((1, 3)), np.ones((49, 3))])), "1 normals are zero-length", "--ignore-normals"),
        (lambda r: PointCloud(_plane(r), np.vstack([np.full((2, 3), np.nan), np.ones((48, 3))])), "2 normals", "--ignore-normals"),
        (lambda r: PointCloud(np.tile([636000.5, 5e6, 3.0], (30, 1))), "identical", "units"),
        (lambda r: PointCloud(np.outer(r.uniform(size=40), [1.0, 2.0, -3.0]) + [636000.0, 5e6, 0.0]), "collinear", "two directions"),
    ],
)
def test_validate_errors(rng: np.random.Generator, make, match: str, fix: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        validate_point_cloud(make(rng), "scan.ply")
    assert str(info.value).startswith("scan.ply: ")
    assert fix in info.value.fix


def test_validate_nearly_collinear_is_fine(rng: np.random.Generator) -> None:
    t = rng.uniform(size=100)
    pts = np.column_stack([t, 2 * t, 1e-3 * rng.uniform(size=100)])
    cloud, _ = validate_point_cloud(PointCloud(pts), "x")
    assert len(cloud) == 100


def test_atomic_write_success(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".bin" and tmp != target
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_write_failure_leaves_nothing(tmp_path: Path, exc: BaseException) -> None:
    target = tmp_path / "out.ply"
    with pytest.raises(type(exc)):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"partial")
            raise exc
    assert not list(tmp_path.iterdir())


def test_save_point_cloud_writer_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recon.io import ply as plymod

    def broken(path, *args, **kwargs) -> None:
        Path(path).write_bytes(b"ply\nformat binary_little_endian 1.0\n")  # a partial file
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(plymod, "write_ply", broken)
    (tmp_path / "c.ply").write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_point_cloud(PointCloud(np.zeros((5, 3))), tmp_path / "c.ply")
    assert [p.name for p in tmp_path.iterdir()] == ["c.ply"]
    assert (tmp_path / "c.ply").read_bytes() == b"previous"


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_point_cloud(tmp_path / "nope.ply")
    (tmp_path / "d.ply").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        load_point_cloud(tmp_path / "d.ply")
    (tmp_path / "x.docx").write_bytes(b"abc")
    with pytest.raises(InputError, match=r"unknown point cloud extension '\.docx'.*\.ply, \.pcd") as info:
        load_point_cloud(tmp_path / "x.docx")
    assert "\n" not in str(info.value)


def test_supported_extensions() -> None:
    for ext in (".ply", ".pcd", ".xyz", ".pts", ".txt", ".csv", ".npy", ".npz", ".las", ".laz", ".bin", ".obj", ".stl"):
        assert ext in SUPPORTED_POINT_EXTENSIONS
    assert set(SUPPORTED_MESH_EXTENSIONS) == {".ply", ".obj", ".stl", ".off", ".glb", ".gltf"}


def test_describe_cloud(tmp_path: Path, rng: np.random.Generator) -> None:
    pts = rng.uniform(0, 50, size=(30, 3)) + [636000.0, 5e6, 0.0]
    pts[3] = np.nan
    save_point_cloud(PointCloud(pts, colors=np.ones((30, 3)), attrs={"intensity": np.arange(30.0)}), tmp_path / "geo.ply")
    d = describe(tmp_path / "geo.ply")
    assert d["kind"] == "point cloud" and d["points"] == 30 and d["valid_points"] == 29
    assert d["format"] == "PLY binary_little_endian"
    assert d["attributes"] == {"normals": False, "colors": True, "sensors": False, "attrs": ["intensity"]}
    finite = pts[np.isfinite(pts).all(axis=1)]
    np.testing.assert_array_equal(d["bounds"], [finite.min(axis=0), finite.max(axis=0)])
    assert d["units_guess"] == "m"


def test_units_heuristic() -> None:
    assert guess_units(80.0, 80.0, "float32 .bin", False)[0] == "m"
    assert guess_units(2.0, 1.0, "PLY ascii", False)[0] == "normalised"
    assert guess_units(3.0, 4.0, "PLY ascii", False)[0] == "m"
    assert guess_units(355.0, 355.0, "STL (trimesh)", True)[0] == "mm"
    assert guess_units(5000.0, 5000.0, "PLY ascii", False)[0] == "m"
    assert guess_units(50.0, 636050.0, "PLY ascii", True)[0] == "m"
    assert guess_units(7.0, 7.0, "PLY ascii", False)[0] == "m"
    assert guess_units(7.0, 7.0, "OBJ (trimesh)", True)[0] is None


def test_describe_file_modes_do_not_change(tmp_path: Path) -> None:
    path = tmp_path / "p.xyz"
    path.write_text("0 0 0\n1 0 0\n0 1 0\n")
    before = os.stat(path).st_mtime_ns
    d = describe(path)
    assert d["details"]["layout"] == "xyz" and os.stat(path).st_mtime_ns == before
