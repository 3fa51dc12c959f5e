"""Mesh reading/writing, mesh input as points, and surface sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from recon.errors import EmptyResultError, InputError
from recon.io import load_mesh, load_point_cloud, sample_surface, save_mesh
from recon.types import Mesh


def _sphere(subdivisions: int = 3) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=subdivisions, radius=2.0)
    return Mesh(np.asarray(tm.vertices) + [10.0, -3.0, 1.0], np.asarray(tm.faces))


@pytest.mark.parametrize("ext", [".ply", ".obj", ".stl", ".off", ".glb"])
def test_save_and_load_mesh_round_trip(tmp_path: Path, ext: str) -> None:
    mesh = _sphere(2)
    path = tmp_path / f"s{ext}"
    save_mesh(mesh, path)
    back = load_mesh(path)
    assert back.n_faces == mesh.n_faces
    assert back.n_vertices == mesh.n_vertices
    # same triangles as sets of corner positions (float32 storage in some formats)
    a = np.sort(mesh.vertices[mesh.faces].reshape(-1, 9).round(4), axis=0)
    b = np.sort(back.vertices[back.faces].reshape(-1, 9).round(4), axis=0)
    np.testing.assert_allclose(a, b, atol=2e-4)
    assert [p.name for p in tmp_path.iterdir()] == [f"s{ext}"]  # no temp files left


def test_save_mesh_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.ply, \.obj, \.stl, \.off, \.glb"):
        save_mesh(_sphere(1), tmp_path / "m.vtk")
    with pytest.raises(EmptyResultError):
        save_mesh(Mesh(np.zeros((0, 3)), np.zeros((0, 3))), tmp_path / "m.ply")
    with pytest.raises(InputError, match="output directory does not exist"):
        save_mesh(_sphere(1), tmp_path / "missing" / "m.ply")
    assert not list(tmp_path.iterdir())


def test_multi_body_obj_concatenated(tmp_path: Path) -> None:
    text = (
        "o first\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
        "o second\nv 5 5 5\nv 6 5 5\nv 5 6 5\nv 5 5 6\nf 4 5 6\nf 4 5 7\n"
    )
    (tmp_path / "two.obj").write_text(text)
    mesh = load_mesh(tmp_path / "two.obj")
    assert mesh.n_faces == 3
    assert mesh.n_vertices == 7
    np.testing.assert_allclose(mesh.vertices.max(axis=0), [6, 6, 6])


def test_stl_vertices_merged(tmp_path: Path) -> None:
    save_mesh(_sphere(1), tmp_path / "s.stl")
    mesh = load_mesh(tmp_path / "s.stl")
    assert mesh.n_vertices == 42 and mesh.n_faces == 80


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("e.obj", b"# nothing\n", "empty mesh"),
        ("z.stl", b"", "empty file"),
        ("v.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n", "empty mesh"),
        ("g.glb", b"glTF\x02\x00\x00\x00garbage", "cannot read GLB"),
        ("o.off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n", "OFF"),
    ],
)
def test_load_mesh_errors(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_mesh(tmp_path / name)


def test_load_mesh_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "m.3ds").write_bytes(b"abc")
    with pytest.raises(InputError, match=r"\.ply, \.obj"):
        load_mesh(tmp_path / "m.3ds")


def test_sample_surface_on_sphere() -> None:
    mesh = _sphere(4)  # radius 2 centred at (10, -3, 1)
    pts, nrm = sample_surface(mesh, 5000, seed=7)
    centre = np.array([10.0, -3.0, 1.0])
    r = np.linalg.norm(pts - centre, axis=1)
    # every sample lies on a flat triangle inside the sphere, no deeper than the chord sag
    assert r.max() <= 2.0 + 1e-9
    assert r.min() > 2.0 * 0.995
    radial = (pts - centre) / r[:, None]
    cos = np.sum(radial * nrm, axis=1)
    assert cos.min() > 0.99
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-6)
    # area-weighted: each octant gets about 1/8 of the samples
    octant = ((pts - centre) > 0) @ np.array([1, 2, 4])
    counts = np.bincount(octant, minlength=8)
    assert counts.min() > 5000 / 8 * 0.85
    # seeded
    again, _ = sample_surface(mesh, 5000, seed=7)
    np.testing.assert_array_equal(pts, again)


def test_mesh_input_as_point_cloud(tmp_path: Path) -> None:
    mesh = _sphere(3)
    save_mesh(mesh, tmp_path / "sphere.obj")
    verts = load_point_cloud(tmp_path / "sphere.obj")
    assert len(verts) == mesh.n_vertices
    centre = np.array([10.0, -3.0, 1.0])
    radial = (verts.points - centre) / 2.0
    assert np.sum(radial * verts.normals, axis=1).min() > 0.98  # outward vertex normals
    samples = load_point_cloud(tmp_path / "sphere.obj", sample=1000, seed=1)
    assert len(samples) == 1000
    assert np.abs(np.linalg.norm(samples.points - centre, axis=1) - 2.0).max() < 0.02
    with pytest.raises(InputError, match="positive"):
        load_point_cloud(tmp_path / "sphere.obj", sample=0)


def test_cloud_subsample(tmp_path: Path, rng: np.random.Generator) -> None:
    pts = rng.normal(size=(100, 3))
    np.save(tmp_path / "p.npy", pts)
    sub = load_point_cloud(tmp_path / "p.npy", sample=30, seed=5)
    assert len(sub) == 30
    # the rows are original rows, in original order
    idx = np.array([np.flatnonzero(np.all(pts == p, axis=1))[0] for p in sub.points[:5]])
    assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(load_point_cloud(tmp_path / "p.npy", sample=30, seed=5).points, sub.points)
    assert len(load_point_cloud(tmp_path / "p.npy", sample=1000)) == 100
