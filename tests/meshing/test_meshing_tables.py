"""The generated marching-cubes table: per-case structure and global watertightness."""

from __future__ import annotations

import numpy as np
import pytest

from recon.meshing import boundary_edge_count, is_watertight, mesh_volume, polygonise
from recon.meshing.sparse import _cell_corners
from recon.meshing.tables import CORNERS, EDGE_HIGH, EDGE_LOW, FACES, build_tables, case_loops


def test_table_shape_and_counts():
    tri, ntri = build_tables()
    assert tri.shape == (256, 5, 3)
    assert ntri[0] == 0 and ntri[255] == 0
    # 1 inside corner -> 1 triangle, 2 adjacent -> quad (2 triangles)
    assert ntri[0b00000001] == 1 and ntri[0b00000011] == 2
    for case in range(256):
        loops = case_loops(case)
        assert ntri[case] == sum(len(loop) - 2 for loop in loops)
        assert np.all(tri[case, ntri[case] :] == -1)


@pytest.mark.parametrize("case", range(256))
def test_each_case_is_a_consistent_patch(case):
    tri, ntri = build_tables()
    inside = (case >> np.arange(8)) & 1
    crossing = set(np.flatnonzero(inside[EDGE_LOW] != inside[EDGE_HIGH]).tolist())
    t = tri[case, : ntri[case]]
    assert set(t.ravel().tolist()) == crossing  # every crossed edge used, no other edge
    directed = [(int(a), int(b)) for f in t for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))]
    assert len(set(directed)) == len(directed)  # no directed edge twice: oriented manifold
    edge_faces = [{i for i, (_, es, _) in enumerate(FACES) if e in es} for e in range(12)]
    for a, b in directed:
        if (b, a) not in directed:  # a patch border: must lie on one cube face
            assert edge_faces[a] & edge_faces[b]
    # orientation: the normal of the whole patch points from inside to outside corners
    if 0 < ntri[case] and inside.sum() == 1:
        mid = (CORNERS[EDGE_LOW] + CORNERS[EDGE_HIGH]) / 2.0
        p = mid[t]
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]).sum(axis=0)
        assert np.dot(n, mid[t].mean(axis=(0, 1)) - CORNERS[np.argmax(inside)]) > 0


def _grid_cells(n: int) -> np.ndarray:
    return np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_field_gives_closed_consistently_oriented_mesh(seed):
    """White-noise values hit every case, ambiguous faces included."""
    rng = np.random.default_rng(seed)
    n = 14
    cells = _grid_cells(n)
    pts, cidx, _ = _cell_corners(cells)
    vals = rng.normal(size=pts.shape[0]) - 0.3
    border = np.any((pts == 0) | (pts == n), axis=1)
    vals[border] = 1.0  # positive all around: the surface is closed
    m = polygonise(cidx, pts, vals, np.zeros(3), 1.0)
    assert m.n_faces > 3000
    assert boundary_edge_count(m) == 0 and is_watertight(m)
    f = m.faces
    d = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # each directed edge exactly once: neighbours agree on orientation
    assert np.unique(d[:, 0] * m.n_vertices + d[:, 1]).size == d.shape[0]
    assert mesh_volume(m) > 0
    # enclosed volume roughly matches the inside-sample fraction of the interior
    inside_frac = np.mean(vals[~border] < 0)
    assert 0.5 * inside_frac < mesh_volume(m) / (n - 2) ** 3 < 1.5 * inside_frac
