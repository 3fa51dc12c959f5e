"""PLY reader/writer: ascii and binary (LE/BE), lists, strips, errors, round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recon.errors import InputError
from recon.io import load_mesh, load_point_cloud, save_mesh, save_point_cloud
from recon.io.ply import PlyList, decode_tristrips, polygons_to_triangles, read_ply
from recon.types import Mesh, PointCloud


def _cloud_arrays(rng: np.random.Generator, n: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = rng.normal(size=(n, 3)).astype(np.float32)
    nrm = rng.normal(size=(n, 3)).astype(np.float32)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    return pts, nrm, rgb


def _write_binary(path: Path, pts: np.ndarray, nrm: np.ndarray, rgb: np.ndarray, endian: str) -> None:
    fmt = "binary_little_endian" if endian == "<" else "binary_big_endian"
    dt = np.dtype(
        [("x", endian + "f4"), ("y", endian + "f4"), ("z", endian + "f4"), ("quality", endian + "f8"),
         ("nx", endian + "f4"), ("ny", endian + "f4"), ("nz", endian + "f4"),
         ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    )  # fmt: skip
    rec = np.empty(len(pts), dtype=dt)
    for i, k in enumerate("xyz"):
        rec[k] = pts[:, i]
    rec["quality"] = np.arange(len(pts)) * 0.5
    for i, k in enumerate(("nx", "ny", "nz")):
        rec[k] = nrm[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        rec[k] = rgb[:, i]
    header = (
        f"ply\nformat {fmt} 1.0\ncomment made by a test\nelement vertex {len(pts)}\n"
        "property float x\nproperty float y\nproperty float z\nproperty double quality\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    path.write_bytes(header.encode() + rec.tobytes())


@pytest.mark.parametrize("endian", ["<", ">"])
def test_binary_ply_exact(tmp_path: Path, rng: np.random.Generator, endian: str) -> None:
    pts, nrm, rgb = _cloud_arrays(rng)
    path = tmp_path / "c.PLY"  # upper-case extension is accepted
    _write_binary(path, pts, nrm, rgb, endian)
    c = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(c.points, pts.astype(np.float64))
    np.testing.assert_array_equal(c.normals, nrm)
    np.testing.assert_array_equal(c.colors, rgb.astype(np.float32) / 255)
    np.testing.assert_array_equal(c.attrs["quality"], np.arange(len(pts)) * 0.5)


def test_ascii_ply_exact(tmp_path: Path) -> None:
    pts = np.array([[0.5, -1.25, 3.0], [1e-3, 2.0, -7.5], [4.0, 4.0, 4.0]])
    body = "\n".join(f"{x} {y} {z} {r} 7 9" for (x, y, z), r in zip(pts, (0, 128, 255)))
    text = (
        "ply\r\nformat ascii 1.0\r\nelement vertex 3\r\nproperty double x\r\nproperty double y\r\n"
        "property double z\r\nproperty uchar red\r\nproperty uchar green\r\nproperty uchar blue\r\nend_header\r\n"
        + body
        + "\n"
    )
    path = tmp_path / "a.ply"
    path.write_text(text)
    c = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(c.points, pts)
    np.testing.assert_allclose(c.colors[:, 0], [0, 128 / 255, 1.0], rtol=0, atol=1e-7)
    np.testing.assert_allclose(c.colors[:, 2], 9 / 255, rtol=0, atol=1e-7)


def test_ascii_ply_mixed_polygons(tmp_path: Path) -> None:
    text = (
        "ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 2\nproperty list uchar int vertex_indices\nproperty uchar flag\nend_header\n"
        "0 0 0\n1 0 0\n1 1 0\n0 1 0\n2 2 0\n4 0 1 2 3 5\n3 1 4 2 6\n"
    )
    path = tmp_path / "poly.ply"
    path.write_text(text)
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])
    _, el = read_ply(path)
    np.testing.assert_array_equal(el["face"]["flag"], [5, 6])


@pytest.mark.parametrize("endian", ["<", ">"])
def test_binary_variable_lists(tmp_path: Path, endian: str) -> None:
    """Mixed triangles/quads force the pointer-doubling path; a scalar after the list too."""
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 2, 0]], dtype=endian + "f4")
    header = (
        f"ply\nformat {'binary_little_endian' if endian == '<' else 'binary_big_endian'} 1.0\n"
        "element vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 3\nproperty list uchar int vertex_indices\nproperty short tag\nend_header\n"
    )
    faces = b""
    for idx, tag in (([0, 1, 2, 3], -1), ([1, 4, 2], 7), ([4, 3, 2], 300)):
        faces += bytes([len(idx)]) + np.array(idx, endian + "i4").tobytes() + np.array([tag], endian + "i2").tobytes()
    path = tmp_path / "v.ply"
    path.write_bytes(header.encode() + verts.tobytes() + faces)
    _, el = read_ply(path)
    np.testing.assert_array_equal(el["face"]["tag"], [-1, 7, 300])
    np.testing.assert_array_equal(el["face"]["vertex_indices"].counts, [4, 3, 3])
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2], [4, 3, 2]])
    # cut the last byte: truncated
    path.write_bytes(header.encode() + verts.tobytes() + faces[:-1])
    with pytest.raises(InputError, match="truncated"):
        load_mesh(path)


def test_decode_tristrips() -> None:
    strips = np.array([0, 1, 2, 3, 4, -1, 5, 6, 7, 7, 8, -1])
    tri = decode_tristrips(strips)
    # strip 1: (0,1,2) (2,1,3) (2,3,4); strip 2: (5,6,7) then degenerate (6,7,7),(7,7,8) dropped
    np.testing.assert_array_equal(tri, [[0, 1, 2], [2, 1, 3], [2, 3, 4], [5, 6, 7]])
    assert decode_tristrips(np.array([1, 2])).shape == (0, 3)


def test_polygons_to_triangles_fan() -> None:
    lst = PlyList(np.array([5, 3, 2]), np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    tri = polygons_to_triangles(lst)
    np.testing.assert_array_equal(tri, [[0, 1, 2], [0, 2, 3], [0, 3, 4], [5, 6, 7]])


def test_save_point_cloud_ply_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    pts = rng.normal(size=(40, 3)) * 10
    nrm = rng.normal(size=(40, 3)).astype(np.float32)
    rgb8 = rng.integers(0, 256, size=(40, 3))
    cloud = PointCloud(pts, nrm, rgb8 / 255.0, attrs={"intensity": np.arange(40, dtype=np.uint16), "flag": np.arange(40) % 2 == 0})
    path = tmp_path / "out.ply"
    save_point_cloud(cloud, path)
    back = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(back.points, pts.astype(np.float32).astype(np.float64))  # small coords -> float
    np.testing.assert_array_equal(back.normals, nrm)
    np.testing.assert_array_equal(np.round(back.colors * 255), rgb8)
    np.testing.assert_array_equal(back.attrs["intensity"], np.arange(40))
    assert back.attrs["intensity"].dtype == np.uint16
    np.testing.assert_array_equal(back.attrs["flag"], np.arange(40) % 2 == 0)


def test_save_point_cloud_ply_large_coordinates_double(tmp_path: Path, rng: np.random.Generator) -> None:
    pts = rng.uniform(0, 100, size=(30, 3)) + np.array([636000.123, 5000000.456, 120.0])
    cloud = PointCloud(pts, sensors=np.tile([636000.0, 5000000.0, 200.0], (30, 1)))
    path = tmp_path / "geo.ply"
    save_point_cloud(cloud, path)
    assert b"property double x" in path.read_bytes()[:400]
    back = load_point_cloud(path, validate=False)
    np.testing.assert_array_equal(back.points, pts)
    np.testing.assert_array_equal(back.sensors, cloud.sensors)


def test_save_mesh_ply_large_coordinates(tmp_path: Path) -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64) * 0.001 + [636000.0012, 5e6 + 0.0007, 10.0]
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    mesh = Mesh(v, f, vertex_colors=np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.float32))
    path = tmp_path / "geo_mesh.ply"
    save_mesh(mesh, path)
    back = load_mesh(path)
    np.testing.assert_array_equal(back.vertices, v)
    np.testing.assert_array_equal(back.faces, f)
    np.testing.assert_array_equal(back.vertex_colors, mesh.vertex_colors)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "missing 'ply' magic"),
        (b"plx\nformat ascii 1.0\nend_header\n", "magic"),
        (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n", "no end_header"),
        (b"ply\nformat weird 1.0\nend_header\n", "unknown PLY format"),
        (b"ply\nformat ascii 1.0\nelement vertex many\nend_header\n", "malformed"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n", "malformed"),
        (b"ply\nformat ascii 1.0\nproperty float x\nend_header\n", "before any element"),
        (b"ply\nelement vertex 1\nproperty float x\nend_header\n1\n", "no format"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n4 5\n", "truncated"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 abc\n", "unparsable"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n" + b"\0" * 20, "truncated"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nend_header\n1\n", "lacks x, y, z"),
        (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0 1 0 0 0 1 0\n3 0 1 7\n", "does not exist"),
    ],
)
def test_ply_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as info:
        load_point_cloud(path, validate=False)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "Fix:" in msg and "\n" not in msg


def test_ply_mesh_input_to_cloud(tmp_path: Path) -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    save_mesh(Mesh(v, f), tmp_path / "tet.ply")
    c = load_point_cloud(tmp_path / "tet.ply", validate=False)
    np.testing.assert_array_equal(c.points, v)
    # outward area-weighted normal at the origin vertex points into the negative octant
    assert np.all(c.normals[0] < 0)
    s = load_point_cloud(tmp_path / "tet.ply", sample=500, seed=3, validate=False)
    assert len(s) == 500
