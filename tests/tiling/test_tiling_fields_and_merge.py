"""Fast paths against slow references: field save/load/crop, unique rows, the streamed weld."""

from __future__ import annotations

import numpy as np
import torch

from recon.tiling.fieldio import load_field, save_field
from recon.tiling.lattice import unique_rows
from recon.tiling.stitch import load_merged, merge_tiles


def _small_field():
    from recon.backends.kernel import KernelConfig
    from recon.backends.kernel.fit import fit_field

    rng = np.random.default_rng(0)
    n = 4000
    p = np.c_[rng.uniform(0, 4, n), rng.uniform(0, 4, n), np.zeros(n)]
    p[:, 2] = 0.2 * np.sin(p[:, 0])
    nrm = np.c_[-0.2 * np.cos(p[:, 0]), np.zeros(n), np.ones(n)]
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    offset = np.array([636000.0, 850000.0, 100.0])
    return fit_field(torch.from_numpy(p.astype(np.float32)), torch.from_numpy(nrm.astype(np.float32)), 0.2,
                     KernelConfig(), offset=offset), offset


def test_saved_field_evaluates_bit_identically_and_crop_keeps_values_inside(tmp_path):
    field, offset = _small_field()
    save_field(tmp_path / "f.npz", field)
    full = load_field(tmp_path / "f.npz")
    box = offset + np.array([[1.0, 1.2, -0.5], [2.2, 2.0, 0.5]])
    crop = load_field(tmp_path / "f.npz", crop=box)
    assert sum(len(lv) for lv in crop.levels) < 0.8 * sum(len(lv) for lv in full.levels)
    rng = np.random.default_rng(1)
    inside = box[0] + rng.random((5000, 3)) * (box[1] - box[0])
    anywhere = offset + rng.uniform(-0.5, 4.5, (5000, 3)) * np.array([1, 1, 0.2])
    np.testing.assert_array_equal(full.evaluate(anywhere), field.evaluate(anywhere))
    np.testing.assert_array_equal(crop.evaluate(inside), field.evaluate(inside))
    np.testing.assert_array_equal(full.cells(), field.cells())


def test_unique_rows_matches_numpy(rng):
    for a in (rng.integers(-3, 3, (5000, 3)) + 636000, rng.integers(-2**40, 2**40, (500, 3)), np.zeros((0, 3), int)):
        u, inv = unique_rows(a)
        u2, inv2 = np.unique(a.reshape(-1, 3), axis=0, return_inverse=True)
        np.testing.assert_array_equal(u, u2)
        np.testing.assert_array_equal(inv, inv2.reshape(-1))


def _weld_reference(tiles):
    """Slow reference: concatenate, then merge border vertices with equal coordinates (a dict)."""
    seen: dict[bytes, int] = {}
    verts, faces = [], []
    for v, f, b in tiles:
        ids = []
        for x, on in zip(v, b):
            key = x.tobytes()
            if on and key in seen:
                ids.append(seen[key])
                continue
            ids.append(len(verts))
            verts.append(x)
            if on:
                seen[key] = ids[-1]
        faces.append(np.asarray(ids)[f])
    return np.asarray(verts), np.concatenate(faces)


def test_merge_welds_border_vertices_like_the_reference(tmp_path, rng):
    from recon.tiling.job import write_tile_mesh

    tiles, files = [], []
    shared = rng.random((40, 3))
    shared[:, 0] = 1.0  # on the plane x = 1 shared by both tiles
    for t in range(3):
        own = rng.random((60, 3)) + [t, 0, 0]
        v = np.concatenate([own, shared if t < 2 else shared[:10] + [1, 0, 0]])
        b = np.zeros(len(v), bool)
        b[60:] = True
        perm = rng.permutation(len(v))
        v, b = v[perm], b[perm]
        f = rng.integers(0, len(v), (150, 3))
        tiles.append((v, f, b))
        write_tile_mesh(tmp_path / f"t{t}.ply", v, f, b)
        files.append((f"t{t}", str(tmp_path / f"t{t}.ply")))
    res = merge_tiles(files, tmp_path / "merged.ply")
    ref_v, ref_f = _weld_reference(tiles)
    m = load_merged(tmp_path / "merged.ply")
    np.testing.assert_array_equal(m.vertices, ref_v)
    np.testing.assert_array_equal(m.faces, ref_f)
    assert res.welded == 40 and res.vertices == len(ref_v) and res.faces == 450
