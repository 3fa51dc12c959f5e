"""Checks before and around a batch job: option types and ranges, the streamed cloud rules, the job
folder's life cycle and file-system errors as one line."""

from __future__ import annotations

import errno
import sqlite3

import numpy as np
import pytest

from recon.errors import ConfigError, InputError, ReconError
from recon.io.validate import singular_values
from recon.tiling.cloudcheck import MIN_BATCH_POINTS, Moments, check_cloud
from recon.tiling.config import BatchConfig, load_job
from recon.tiling.jobfolder import JobFolder, check_job_folder, reported_write_errors
from recon.tiling.options import check_options
from recon.tiling.plan import MAX_TILES, CountGrid, PieceStats, make_lattice
from recon.tiling.synth_scene import SceneSpec, parse_count

from tests.tiling.helpers import OFFSET, run, wavy_plane


def test_moments_merged_over_chunks_match_the_whole_cloud():
    rng = np.random.default_rng(0)
    pts = OFFSET + rng.normal(size=(5_000, 3)) * np.array([30.0, 10.0, 0.5])
    whole = singular_values(pts)
    m = Moments()
    for chunk in np.array_split(pts, [7, 1000, 1001, 3500]):  # uneven chunks, one of a single point
        m = m.merged(Moments.of(chunk))
    assert m.n == len(pts)
    np.testing.assert_allclose(m.singular_values(), whole, rtol=1e-9)
    # merging in another order, and with chunks scaled differently (far from the origin), agrees
    far = np.r_[pts[:10] * 1e6, pts[10:]]
    a = Moments.of(far[:10]).merged(Moments.of(far[10:]))
    b = Moments.of(far[10:]).merged(Moments.of(far[:10]))
    np.testing.assert_allclose(a.singular_values(), singular_values(far), rtol=1e-5)
    np.testing.assert_allclose(a.singular_values(), b.singular_values(), rtol=1e-12)


def _check(pts: np.ndarray, dropped: int = 0) -> None:
    m = Moments()
    for chunk in np.array_split(pts, 3):
        m = m.merged(Moments.of(chunk))
    lo = pts.min(0) if len(pts) else np.full(3, np.inf)
    hi = pts.max(0) if len(pts) else np.full(3, -np.inf)
    check_cloud(len(pts), dropped, lo, hi, m, "scan.las")


def test_check_cloud_applies_the_reconstruct_rules():
    rng = np.random.default_rng(1)
    plane = OFFSET + np.c_[rng.uniform(0, 5, (500, 2)), np.zeros(500)]
    _check(plane)  # a plane is fine
    with pytest.raises(InputError, match="no finite points"):
        _check(np.zeros((0, 3)), dropped=40)
    with pytest.raises(InputError, match=f"only 3 valid points \\(need at least {MIN_BATCH_POINTS}\\)"):
        _check(plane[:3])
    with pytest.raises(InputError, match="all 500 points are identical"):
        _check(np.tile(OFFSET, (500, 1)))
    t = rng.uniform(0, 100, (500, 1))
    with pytest.raises(InputError, match="collinear"):
        _check(OFFSET + t * np.array([1.0, -2.0, 0.25]))
    bent = OFFSET + np.c_[t, t ** 2 / 100, np.zeros(500)]  # a curve in a plane is not a line
    _check(bent)


@pytest.mark.parametrize("data, message", [
    ({"workers": 1.5}, "workers must be a whole number"),
    ({"workers": True}, "workers must be a whole number"),
    ({"workers": 0}, "between 1 and"),
    ({"inputs": 5}, "inputs must be a file or folder name"),
    ({"inputs": ["a.las", 3]}, "inputs must list file or folder names"),
    ({"tile_size": float("inf")}, "finite"),
    ({"tile_size": -1.0}, "positive"),
    ({"overlap": "wide"}, "overlap must be a number"),
    ({"retries": 10 ** 6}, "retries must be between 0 and 100"),
    ({"chunk_points": 10 ** 9}, "chunk_points"),
    ({"memory_limit": "-2GB"}, "memory_limit must be between"),
    ({"memory_limit": "1e400GB"}, "cannot read memory limit"),
    ({"preview": "yes"}, "true or false"),
    ({"kernel": {"upsample": 1000}}, "kernel.upsample must be between 1 and 8"),
    ({"kernel": {"solver_tol": [1]}}, "kernel: entry 'solver_tol' must be a name with a plain value"),
    ({"kernel": {"mise_iter": 2}}, "unknown kernel option 'mise_iter'"),
])
def test_option_types_and_ranges(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)")):
        check_options(data, "job.yaml")
    with pytest.raises(ConfigError):
        BatchConfig(**{"inputs": ["x.las"], "output": "o", **data})


def test_flags_are_named_as_flags_and_job_files_by_name(tmp_path):
    with pytest.raises(ConfigError, match="^--max-tile-points must be between") as e:
        check_options({"max_tile_points": 5}, cli=True)
    assert e.value.path is None
    job = tmp_path / "job.yaml"
    job.write_text("inputs: [a.las]\nworkers: 2.5\n")
    with pytest.raises(ConfigError, match="workers must be a whole number") as e:
        load_job(job)
    assert e.value.path == str(job)
    job.write_text("inputs: [a.las]\n7: x\n")
    with pytest.raises(ConfigError, match="unknown batch option\\(s\\) 7"):
        load_job(job)
    job.write_bytes(b"inputs: [" + b"a.las, " * 200_000 + b"]\n")
    with pytest.raises(ConfigError, match="too big for a job file"):
        load_job(job)
    # worker processes below ~1 GB would be paused by Dask for good; threads have no limit
    with pytest.raises(ConfigError, match="too small for a worker process"):
        BatchConfig(inputs=["x.las"], output="o", memory_limit="300MB")
    assert BatchConfig(inputs=["x.las"], output="o", memory_limit="300MB", processes=False).memory_bytes() == 300e6


def test_synth_scene_spec_ranges():
    for kwargs, message in [({"points": 0}, "points"), ({"points": 10 ** 12}, "points"), ({"seed": -1}, "seed"),
                            ({"density": float("inf")}, "density"), ({"density": 1e-6}, "density"),
                            ({"noise": float("nan")}, "noise"), ({"outliers": 1.0}, "outliers")]:
        with pytest.raises(ConfigError, match=message):
            SceneSpec(**{"points": 1000, **kwargs})
    for text in ("1e400", "nan", "-3", "", "2.5"):
        with pytest.raises(ConfigError, match="not a point count"):
            parse_count(text)


def test_too_many_tiles_are_refused_before_any_work():
    grid = CountGrid()
    rng = np.random.default_rng(2)
    xyz = np.c_[rng.uniform(0, 1000, (20_000, 2)), rng.uniform(0, 1, 20_000)]
    cells = np.unique(np.floor(xyz).astype(np.int64), axis=0)
    grid.add(PieceStats(0, len(xyz), 0, xyz.min(0), xyz.max(0), 0, cells, np.ones(len(cells), np.int64),
                        Moments.of(xyz)))
    with pytest.raises(ConfigError, match=f"at most {MAX_TILES:,}"):
        make_lattice(grid, depth=1, voxel_size=0.001, detail=0.6, min_resolution=None, tile_size=0.02,
                     overlap=None, max_tile_points=10 ** 6)
    lat, notes = make_lattice(grid, depth=1, voxel_size=0.001, detail=0.6, min_resolution=None, tile_size=None,
                              overlap=None, max_tile_points=1000)  # the tile size from the budget is fine
    assert notes["estimated_tiles"] < MAX_TILES
    with pytest.raises(ConfigError, match="voxels wide"):
        make_lattice(grid, depth=4, voxel_size=0.1, detail=0.6, min_resolution=None, tile_size=1e300,
                     overlap=None, max_tile_points=1000)


def test_job_folder_is_removed_after_a_failed_start_only_when_this_run_made_it(tmp_path):
    out = tmp_path / "a" / "b" / "job"
    folder = JobFolder(out)
    folder.create()
    (out / "manifest.sqlite").write_bytes(b"")
    assert folder.discard_if_unused() and not (tmp_path / "a").exists()

    kept = JobFolder(out)
    kept.create()
    (out / "shards").mkdir()  # resumable work: kept
    assert not kept.discard_if_unused() and (out / "shards").is_dir()

    before = tmp_path / "existing"
    before.mkdir()
    old = JobFolder(before)
    old.create()
    assert not old.discard_if_unused() and before.is_dir()


def test_job_folder_checks(tmp_path):
    cloud = wavy_plane(tmp_path / "plane.npy", n=100)
    with pytest.raises(ConfigError, match="holds an input"):
        check_job_folder(tmp_path, [cloud], resume=True)
    job = tmp_path / "job"
    job.mkdir()
    (job / "manifest.sqlite").write_bytes(b"")
    with pytest.raises(ConfigError, match="previous batch job"):
        check_job_folder(job, [cloud], resume=False)
    check_job_folder(job, [cloud], resume=True)
    (job / "manifest.sqlite").unlink()
    (job / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="holds no batch job"):
        check_job_folder(job, [cloud], resume=True)


def test_file_system_errors_become_one_line(tmp_path):
    with pytest.raises(ReconError, match="cannot write in the job folder \\(No space left on device\\)") as e:
        with reported_write_errors(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "tiles" / "0_0_0.ply"))
    assert e.value.path == str(tmp_path / "tiles" / "0_0_0.ply")
    with pytest.raises(ReconError, match="cannot use the job manifest \\(database or disk is full\\)"):
        with reported_write_errors(tmp_path):
            raise sqlite3.OperationalError("database or disk is full")
    with pytest.raises(ConnectionResetError):  # not a file-system error: left alone
        with reported_write_errors(tmp_path):
            raise ConnectionResetError(errno.ECONNRESET, "reset")


def test_a_full_disk_while_stitching_is_one_error_line(tmp_path, monkeypatch):
    import recon.tiling.runner as runner

    def full(tiles, out_path, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(out_path))

    monkeypatch.setattr(runner, "merge_tiles", full)
    cloud = wavy_plane(tmp_path / "plane.npy", n=4_000)
    with pytest.raises(ReconError, match="cannot write in the job folder") as e:
        run(cloud, tmp_path / "job", voxel_size=0.2, tile_size=6.4, tile_shape="column")
    assert e.value.path == str(tmp_path / "job" / "scene.ply")
