"""Streaming readers, the synthetic scene, and bad input reported as one line (exit status 2)."""

from __future__ import annotations

import numpy as np
import pytest

from recon.tiling.streams import iter_chunks, make_pieces, probe
from recon.tiling.synth_scene import SceneSpec, iter_scene, parse_count, write_scene


def _read_all(path, piece_points=7_000, chunk=3_000):
    src = probe(path)
    xyz, nrm = [], []
    for piece in make_pieces([src], piece_points):
        for ch in iter_chunks(piece, chunk):
            xyz.append(ch.xyz)
            nrm.append(ch.normals)
    return src, np.concatenate(xyz), np.concatenate(nrm)


@pytest.fixture(scope="module")
def scene_laz(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "scene.laz"
    info = write_scene(path, SceneSpec(30_000, seed=3), batch_points=8_000)
    return path, info


def test_synthetic_scene_is_deterministic_exact_and_georeferenced(scene_laz, tmp_path):
    import laspy

    path, info = scene_laz
    las = laspy.read(path)
    assert len(las.points) == info["points"] == 30_000
    np.testing.assert_array_equal(las.header.offsets, [636000.0, 850000.0, 100.0])
    x = np.asarray(las.x)
    assert x.dtype == np.float64 and 636000.0 - 1 <= x.min() and x.max() <= 636000.0 + info["side"] + 1
    # millimetre steps survive at 636 km: the float64 coordinates are on the 1 mm grid
    np.testing.assert_allclose((x - 636000.0) * 1000.0, np.round((x - 636000.0) * 1000.0), atol=1e-6)
    assert {2, 6} <= set(np.unique(las.classification)) <= {2, 5, 6, 7}  # ground, buildings (+ trees, noise)
    again = write_scene(tmp_path / "again.laz", SceneSpec(30_000, seed=3), batch_points=5_000)
    las2 = laspy.read(tmp_path / "again.laz")
    for dim in ("X", "Y", "Z", "classification", "nx", "ny", "nz"):
        np.testing.assert_array_equal(np.asarray(las[dim]), np.asarray(las2[dim]))
    assert again["bounds"] == info["bounds"]
    other = next(iter_scene(SceneSpec(30_000, seed=4)))[0]
    assert not np.array_equal(other[:100], np.stack([las.x, las.y, las.z], 1)[:100])


def test_scene_without_noise_has_the_same_samples(tmp_path):
    noisy = np.concatenate([b[0] for b in iter_scene(SceneSpec(20_000, seed=1, outliers=0.0))])
    clean = np.concatenate([b[0] for b in iter_scene(SceneSpec(20_000, seed=1, noise=0.0, outliers=0.0))])
    d = np.linalg.norm(noisy - clean, axis=1)
    assert 0.02 < d.std() / 0.03 * np.sqrt(3) < 2.5 and d.max() < 0.03 * 6


def test_streams_read_each_format_in_pieces(scene_laz, tmp_path):
    import laspy

    path, _ = scene_laz
    las = laspy.read(path)
    ref = np.stack([las.x, las.y, las.z], 1)
    src, xyz, nrm = _read_all(path)
    assert src.kind == "las" and src.has_normals
    np.testing.assert_array_equal(xyz, ref)
    np.testing.assert_array_equal(nrm[:, 2], np.asarray(las.nz))
    for ext in (".ply", ".npy"):
        write_scene(tmp_path / f"s{ext}", SceneSpec(30_000, seed=3))
        src2, xyz2, nrm2 = _read_all(tmp_path / f"s{ext}")
        assert src2.count == 30_000 and src2.has_normals
        np.testing.assert_allclose(xyz2, ref, atol=6e-4)  # LAS stores millimetres
        np.testing.assert_allclose(nrm2, nrm, atol=1e-6)


def test_parse_count():
    assert parse_count("20M") == 20_000_000 and parse_count("300k") == 300_000 and parse_count("2_000") == 2000
    with pytest.raises(Exception, match="point count"):
        parse_count("lots")


def _cli(args, capsys) -> tuple[int, str]:
    from recon_apps.batch_cli import main

    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def _write_empty_las(path):
    import laspy

    las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
    las.write(path)


@pytest.mark.parametrize("case, message", [
    ("missing", "file not found"),
    ("empty_npy", "holds no points"),
    ("garbage_las", "not a LAS/LAZ file"),
    ("truncated_las", "truncated"),
    ("empty_las", "holds no points"),
    ("bad_suffix", "cannot be streamed"),
])
def test_bad_input_is_one_line_exit_2(case, message, tmp_path, capsys, scene_laz):
    path = tmp_path / {"missing": "nope.laz", "empty_npy": "e.npy", "garbage_las": "g.las", "truncated_las": "t.las",
                       "empty_las": "e.las", "bad_suffix": "x.obj"}[case]
    if case == "empty_npy":
        np.save(path, np.zeros((0, 3)))
    elif case == "garbage_las":
        path.write_bytes(b"this is not a point cloud" * 20)
    elif case == "truncated_las":
        write_scene(path, SceneSpec(2_000, seed=0))
        path.write_bytes(path.read_bytes()[:2000])
    elif case == "empty_las":
        _write_empty_las(path)
    elif case == "bad_suffix":
        path.write_text("v 0 0 0\n")
    code, err = _cli(["batch", str(path), "-o", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_bad_options_are_one_line(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).normal(size=(100, 3)))
    code, err = _cli(["batch", str(tmp_path / "c.npy"), "-o", str(tmp_path / "o"), "--orient", "sideways"], capsys)
    assert code == 2 and "unknown orientation" in err and len(err.strip().splitlines()) == 1
    code, err = _cli(["batch", str(tmp_path / "c.npy"), "-o", str(tmp_path / "o"), "--memory-limit", "lots"], capsys)
    assert code == 2 and "memory limit" in err


def test_all_nan_input_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "nan.npy", np.full((500, 3), np.nan))
    code, err = _cli(["batch", str(tmp_path / "nan.npy"), "-o", str(tmp_path / "o"), "--in-process", "--quiet"], capsys)
    assert code == 2 and "no finite points" in err and len(err.strip().splitlines()) == 1


def test_synth_scene_command(tmp_path, capsys):
    code, err = _cli(["synth-scene", "-o", str(tmp_path / "s.npy"), "--points", "12k", "--no-normals", "--quiet"],
                     capsys)
    assert code == 0, err
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (12_000, 3) and arr[:, 0].min() > 636000.0


def test_job_yaml_preset_and_cli_job_file(tmp_path, capsys, repo_root):
    from recon.tiling.config import BatchConfig, load_job

    from tests.tiling.helpers import wavy_plane

    preset = BatchConfig.from_dict(load_job(repo_root / "configs" / "batch" / "batch.yaml"))
    assert preset.memory_limit == "2GB" and preset.tile_shape == "auto" and preset.tile_point_budget() > 100_000
    wavy_plane(tmp_path / "plane.npy", n=6_000)
    job = tmp_path / "job.yaml"
    job.write_text("inputs: [plane.npy]\noutput: out\nvoxel_size: 0.2\nprocesses: false\npreview: false\n")
    code, err = _cli(["batch", str(job), "--quiet", "--json"], capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "scene.ply").exists() and (tmp_path / "out" / "scene.json").exists()
