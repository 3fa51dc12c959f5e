"""Seams: tiles mesh their own cores from a shared blended field, border vertices weld exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from recon.meshing import boundary_edge_count
from recon.tiling.lattice import Lattice
from recon.tiling.stitch import boundary_edges, load_merged, plane_edges

from tests.tiling.helpers import run, seam_gaps, sphere, wavy_plane

H = 0.1  # voxel size of these tests; depth 4 -> coarsest voxel 0.8


def _plan(out) -> dict:
    import sqlite3

    db = sqlite3.connect(out / "manifest.sqlite")
    try:
        return json.loads(db.execute("SELECT value FROM meta WHERE key = 'plan'").fetchone()[0])
    finally:
        db.close()


def test_two_tile_plane_welds_without_gaps_and_matches_one_tile(tmp_path):
    cloud = wavy_plane(tmp_path / "plane.npy")
    tiled = run(cloud, tmp_path / "tiled", voxel_size=H, tile_size=8.0, tile_shape="column")
    single = run(cloud, tmp_path / "single", voxel_size=H, tile_size=24.0, tile_shape="column")
    lat = Lattice.from_dict(_plan(tmp_path / "tiled")["lattice"])
    assert tiled.ok and single.ok
    index = json.loads((tmp_path / "tiled" / "scene.json").read_text())
    cores = [t for t in index["tiles"] if t["core_points"] > 0]
    assert len(cores) == 2  # the border at x = 8 m splits the plane in two
    a, b = load_merged(tiled.mesh), load_merged(single.mesh)
    assert tiled.welded > 50
    # no open edge on the tile planes beyond those the one-tile mesh has there (where its rim
    # happens to run along a plane): the interior border is closed
    assert seam_gaps(a, lat) == 0
    assert plane_edges(a, lat).sum() <= plane_edges(b, lat).sum()
    # the only open edges are the outer rim of the plane, as in the one-tile run
    assert abs(len(boundary_edges(a.faces)) - len(boundary_edges(b.faces))) <= 0.02 * len(boundary_edges(b.faces))
    # the same surface: blending only moves vertices a little inside the overlap
    d_ab, _ = cKDTree(b.vertices).query(a.vertices)
    d_ba, _ = cKDTree(a.vertices).query(b.vertices)
    assert max(d_ab.max(), d_ba.max()) < 0.5 * H
    assert 0.5 * (d_ab.mean() + d_ba.mean()) < 0.05 * H
    assert abs(a.n_faces - b.n_faces) <= 0.01 * b.n_faces


@pytest.mark.parametrize("upsample", [1, 2])
def test_sphere_cut_into_cubes_is_watertight(tmp_path, upsample):
    cloud = sphere(tmp_path / "sphere.npy", n=20_000)
    s = run(cloud, tmp_path / "out", voxel_size=0.15, tile_size=3.6, tile_shape="cube", kernel={"upsample": upsample})
    m = load_merged(s.mesh)
    assert s.ok and s.done >= 8  # the sphere (r = 3) spans at least 2 x 2 x 2 tile cores
    assert m.n_faces > 4000
    assert boundary_edge_count(m) == 0
    r = np.linalg.norm(m.vertices - m.vertices.mean(0), axis=1)
    assert abs(r.mean() - 3.0) < 0.01 and r.std() < 0.01
