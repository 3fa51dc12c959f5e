"""Vertex colours survive a write and a read in every mesh format that stores them (PLY, OBJ, GLB)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from recon.io import load_mesh, save_mesh
from recon.io.meshes import colours_to_uint8
from recon.types import Mesh


def _coloured_sphere(seed: int = 0) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=2, radius=1.5)
    rng = np.random.default_rng(seed)
    colours = rng.random((len(tm.vertices), 3)).astype(np.float32)
    colours[:3] = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5 / 255, 254.5 / 255, 0.999]]  # the ends and half steps
    return Mesh(np.asarray(tm.vertices) + [4.0, -2.0, 1.0], np.asarray(tm.faces), vertex_colors=colours)


@pytest.mark.parametrize("ext", [".ply", ".obj", ".glb"])
def test_vertex_colours_round_trip_within_one_step(tmp_path: Path, ext: str) -> None:
    mesh = _coloured_sphere()
    path = tmp_path / f"c{ext}"
    save_mesh(mesh, path)
    back = load_mesh(path)
    assert back.n_vertices == mesh.n_vertices and back.n_faces == mesh.n_faces
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-5)  # same vertex order
    assert back.vertex_colors is not None, f"{ext}: colours were not written or not read"
    err = np.abs(back.vertex_colors - mesh.vertex_colors)
    assert err.max() <= 0.5 / 255 + 1e-6, (ext, err.max() * 255)  # rounded to the nearest 8-bit step
    np.testing.assert_array_equal(colours_to_uint8(back.vertex_colors), colours_to_uint8(mesh.vertex_colors))


def test_obj_colours_are_v_x_y_z_r_g_b(tmp_path: Path) -> None:
    mesh = _coloured_sphere()
    save_mesh(mesh, tmp_path / "c.obj")
    v_lines = [ln.split() for ln in (tmp_path / "c.obj").read_text().splitlines() if ln.startswith("v ")]
    assert len(v_lines) == mesh.n_vertices and all(len(v) == 7 for v in v_lines)
    rgb = np.array([[float(x) for x in v[4:]] for v in v_lines])
    assert np.abs(rgb - mesh.vertex_colors).max() <= 0.5 / 255 + 1e-6
    # trimesh (as MeshLab) reads them as per-vertex colours
    tm = trimesh.load(tmp_path / "c.obj", process=False)
    assert tm.visual.kind == "vertex"
    np.testing.assert_array_equal(np.asarray(tm.visual.vertex_colors)[:, :3], colours_to_uint8(mesh.vertex_colors))


def test_glb_stores_color_0(tmp_path: Path) -> None:
    save_mesh(_coloured_sphere(), tmp_path / "c.glb")
    data = (tmp_path / "c.glb").read_bytes()
    n = struct.unpack("<I", data[12:16])[0]
    gltf = json.loads(data[20:20 + n])
    attrs = gltf["meshes"][0]["primitives"][0]["attributes"]
    assert "COLOR_0" in attrs
    acc = gltf["accessors"][attrs["COLOR_0"]]
    assert acc["componentType"] == 5121 and acc["normalized"]  # unsigned bytes, normalised to [0, 1]


def test_ply_colours_are_uchar_red_green_blue(tmp_path: Path) -> None:
    save_mesh(_coloured_sphere(), tmp_path / "c.ply")
    header = (tmp_path / "c.ply").read_bytes().split(b"end_header")[0].decode("ascii")
    for name in ("red", "green", "blue"):
        assert f"property uchar {name}" in header


def test_out_of_range_and_nan_colours_are_clipped(tmp_path: Path) -> None:
    mesh = _coloured_sphere()
    mesh.vertex_colors[:4] = [[-0.2, 1.3, np.nan], [2.0, -1.0, 0.5], [0.25, 0.5, 0.75], [1.0, 0.0, 0.0]]
    for ext in (".ply", ".obj", ".glb"):
        save_mesh(mesh, tmp_path / f"x{ext}")
        back = load_mesh(tmp_path / f"x{ext}").vertex_colors
        np.testing.assert_allclose(back[:2], [[0.0, 1.0, 0.0], [1.0, 0.0, 128 / 255]], atol=1e-6, err_msg=ext)
