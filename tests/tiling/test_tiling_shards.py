"""The lattice's point -> tile rules and pass 2 (spilling) against brute-force box tests."""

from __future__ import annotations

import numpy as np
import pytest

from recon.tiling.lattice import Lattice
from recon.tiling.plan import CountGrid, count_piece, make_lattice
from recon.tiling.shards import SHARD_DTYPE, load_shard, spill_piece
from recon.tiling.streams import make_pieces, probe

from tests.tiling.helpers import OFFSET


def _lattice() -> Lattice:
    # h = 0.1, depth 3 -> coarsest voxel 0.4; tiles 2.0 x 2.0 x 1.6; blend 0.3, shard margin 0.6
    return Lattice(tuple(OFFSET - 0.4), 0.1, 3, (5, 5, 4), 3)


def _points(lat: Lattice, n: int, rng) -> np.ndarray:
    p = OFFSET + rng.uniform(-0.3, 5.3, (n, 3)) * np.array([1.0, 1.0, 0.5])
    # put some points exactly on tile planes and on shard-box planes (the boundary cases)
    k = n // 10
    axis = rng.integers(0, 3, k)
    idx = rng.integers(-1, 4, k) * lat.tile_voxels[axis]
    plane = lat.plane(idx, axis)
    shift = rng.choice([0.0, lat.shard_margin, -lat.shard_margin], k)
    p[np.arange(k), axis] = plane + shift
    return p


def _in_box(p: np.ndarray, box: np.ndarray) -> np.ndarray:
    return ((p >= box[0]) & (p < box[1])).all(1)


def test_tile_of_agrees_with_core_boxes(rng):
    lat = _lattice()
    p = _points(lat, 20_000, rng)
    t = lat.tile_of(p)
    box = lat.core_box(t)
    assert ((p >= box[:, 0]) & (p < box[:, 1])).all()


def test_spill_puts_every_point_in_one_core_and_the_margins_exactly(tmp_path, rng):
    lat = _lattice()
    p = _points(lat, 30_000, rng)
    nrm = rng.normal(size=p.shape)
    np.save(tmp_path / "cloud.npy", np.c_[p, nrm])
    src = probe(tmp_path / "cloud.npy")
    assert src.count == len(p) and src.has_normals
    shard_dir = tmp_path / "shards"
    parts = []
    for piece in make_pieces([src], 7_000):  # 5 pieces, read in chunks of 3000 points
        parts += spill_piece(piece, lat, shard_dir, chunk_points=3000)
    tiles = sorted({q.tile for q in parts})
    expected = {tuple(t) for t in np.unique(lat.tile_of(p), axis=0)}
    assert expected <= set(tiles)
    core_total = 0
    for t in tiles:
        rec = load_shard(shard_dir, t)
        assert rec.dtype == SHARD_DTYPE
        core_box, shard_box = lat.core_box(np.asarray(t)), lat.shard_box(np.asarray(t))
        want_core = p[_in_box(p, core_box)]
        want_all = p[_in_box(p, shard_box)]
        got_core = rec["xyz"][rec["core"] == 1]
        # same rows, same (input) order, bit for bit
        np.testing.assert_array_equal(got_core, want_core)
        np.testing.assert_array_equal(rec["xyz"], want_all)
        margin = rec["xyz"][rec["core"] == 0]
        assert len(margin) == len(want_all) - len(want_core)
        assert not _in_box(margin, core_box).any()
        core_total += len(got_core)
        # normals travel with their points
        ref = np.c_[p, nrm][_in_box(p, shard_box)]
        np.testing.assert_array_equal(rec["normal"], ref[:, 3:6].astype(np.float32))
        n_core = sum(q.core for q in parts if q.tile == t)
        assert n_core == len(got_core)
    assert core_total == len(p)


def test_pass1_counts_and_plan(tmp_path, rng):
    lat = _lattice()
    p = _points(lat, 20_000, rng)
    np.save(tmp_path / "cloud.npy", p)
    src = probe(tmp_path / "cloud.npy")
    grid = CountGrid()
    for piece in make_pieces([src], 6_000):
        grid.add(count_piece(piece, chunk_points=2500))
    assert grid.points == len(p) and grid.counts.sum() == len(p)
    np.testing.assert_array_equal(grid.lo, p.min(0))
    np.testing.assert_array_equal(grid.hi, p.max(0))
    lat2, notes = make_lattice(grid, depth=4, voxel_size=0.1, detail=0.6, min_resolution=None, tile_size=None,
                               overlap=None, max_tile_points=15000)
    assert "warning" not in notes and notes["largest_shard_estimate"] <= 15000
    assert lat2.margin_voxels == 4 and lat2.voxel_size == 0.1
    origin = np.asarray(lat2.origin)
    a = 0.1 * 2 ** 3
    np.testing.assert_allclose(origin / a, np.round(origin / a), atol=1e-6)  # on the coarse lattice
    assert (origin <= p.min(0)).all()


def test_lattice_rejects_margin_too_wide():
    with pytest.raises(ValueError):
        Lattice((0.0, 0.0, 0.0), 0.1, 3, (1, 1, 1), 1)
