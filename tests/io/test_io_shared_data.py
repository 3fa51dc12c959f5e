"""Every real file in shared/data/scans (and the igea strip mesh) loads with the right counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recon.io import describe, load_mesh, load_point_cloud

pytestmark = pytest.mark.shared_data

# file -> (rows read, valid rows after validation, has normals, has colours)
SCANS = {
    "srb_gargoyle/gargoyle.ply": (95_435, 95_435, True, False),
    "lidar/autzen_trim.laz": (110_000, 110_000, False, True),
    "lidar/simple.las": (1_065, 1_065, False, True),
    "lidar/vegetation_1_3.las": (10_683, 10_683, False, False),
    "lidar/kitti_000008.bin": (17_238, 17_238, False, False),
    "lidar/nuscenes_LIDAR_TOP_1532402927647951.pcd.bin": (34_688, 34_688, False, False),
    "lidar/autzen_trim.derived.npz": (110_000, 110_000, False, False),
    "rgbd/scannet_scene0000_00.bin": (40_684, 40_684, False, True),
    "rgbd/sunrgbd_000017.bin": (50_000, 50_000, False, True),
    "pcl/milk.pcd": (13_704, 13_704, False, False),
    "pcl/car6.pcd": (10_031, 10_031, False, False),
    "pcl/lamppost.pcd": (1_771, 1_771, False, False),
    "pcl/office1.pcd": (307_200, 254_456, False, True),
    "pcl/table_scene_mug_stereo_textured.pcd": (307_200, 209_280, False, True),
}


@pytest.mark.parametrize("name", sorted(SCANS))
def test_scan_loads(shared_data: Path, name: str) -> None:
    rows, valid, normals, colours = SCANS[name]
    path = shared_data / "scans" / name
    raw = load_point_cloud(path, validate=False)
    assert len(raw) == rows
    cloud = load_point_cloud(path)
    assert len(cloud) == valid
    assert cloud.has_normals == normals
    assert (cloud.colors is not None) == colours
    assert np.all(np.isfinite(cloud.points))
    if normals:
        np.testing.assert_allclose(np.linalg.norm(cloud.normals, axis=1), 1.0, atol=1e-5)


def test_every_scan_file_is_covered(shared_data: Path) -> None:
    point_ext = {".ply", ".pcd", ".las", ".laz", ".bin", ".npz"}
    files = {str(p.relative_to(shared_data / "scans")) for p in (shared_data / "scans").rglob("*") if p.suffix.lower() in point_ext}
    assert files == set(SCANS)


def test_autzen_laz_matches_derived_npz(shared_data: Path) -> None:
    laz = load_point_cloud(shared_data / "scans/lidar/autzen_trim.laz")
    with np.load(shared_data / "scans/lidar/autzen_trim.derived.npz") as z:
        xyz = z["xyz"]
        intensity = z["intensity"]
    assert 635_000 < laz.points[:, 0].min() < laz.points[:, 0].max() < 640_000
    np.testing.assert_allclose(laz.points, xyz, atol=1e-3, rtol=0)
    np.testing.assert_array_equal(laz.attrs["intensity"], intensity)
    # values sit on the 0.01 m LAS grid: float64 kept them exactly enough for mm work
    assert np.max(np.abs(laz.points * 100 - np.round(laz.points * 100))) < 1e-4


def test_kitti_layout_and_sensor(shared_data: Path) -> None:
    d = describe(shared_data / "scans/lidar/kitti_000008.bin")
    assert d["details"]["columns"] == 4 and d["units_guess"] == "m"
    nus = describe(shared_data / "scans/lidar/nuscenes_LIDAR_TOP_1532402927647951.pcd.bin")
    assert nus["details"]["columns"] == 5
    c = load_point_cloud(shared_data / "scans/lidar/nuscenes_LIDAR_TOP_1532402927647951.pcd.bin")
    ring = c.attrs["ring"]
    assert ring.min() >= 0 and ring.max() <= 31  # HDL-32E has 32 rings


def test_organised_pcd_describe(shared_data: Path) -> None:
    d = describe(shared_data / "scans/pcl/office1.pcd")
    assert d["details"]["organised"] and d["details"]["width"] == 640 and d["details"]["height"] == 480
    assert d["points"] == 307_200 and d["valid_points"] == 254_456
    assert d["attributes"]["colors"] and d["attributes"]["sensors"]


def test_gargoyle_exact_first_rows(shared_data: Path) -> None:
    path = shared_data / "scans/srb_gargoyle/gargoyle.ply"
    data = path.read_bytes()
    start = data.index(b"end_header\n") + len(b"end_header\n")
    raw = np.frombuffer(data, "<f4", 6 * 95_435, start).reshape(-1, 6)
    c = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(c.points, raw[:, :3].astype(np.float64))
    np.testing.assert_array_equal(c.normals, raw[:, 3:])


def test_igea_triangle_strips(shared_data: Path) -> None:
    mesh = load_mesh(shared_data / "meshes/common-3d-test-models/igea.ply")
    assert mesh.n_vertices == 134_345
    assert mesh.n_faces == 268_686
    tm = mesh.to_trimesh()
    assert tm.is_watertight and tm.is_winding_consistent  # strip winding alternated correctly
    d = describe(shared_data / "meshes/common-3d-test-models/igea.ply")
    assert d["kind"] == "mesh" and d["faces"] == 268_686


def test_real_meshes_load(shared_data: Path) -> None:
    counts = {
        "meshes/instant-ngp/bunny.obj": (2_503, 4_968),
        "meshes/trimesh-cad/1002_tray_bottom.STL": (2_216, 4_520),
        "meshes/scivi/feline.obj": (4_998, 10_000),
    }
    for name, (nv, nf) in counts.items():
        mesh = load_mesh(shared_data / name)
        assert (mesh.n_vertices, mesh.n_faces) == (nv, nf), name
    s = load_point_cloud(shared_data / "meshes/instant-ngp/bunny.obj", sample=2000, seed=0)
    assert len(s) == 2000 and s.has_normals
