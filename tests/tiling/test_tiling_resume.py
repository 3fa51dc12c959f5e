"""Failures, retries and --resume: finished tiles are kept, the merged mesh is byte-identical."""

from __future__ import annotations

import sqlite3

import pytest

from recon.errors import ConfigError

from tests.tiling.helpers import run, wavy_plane

OPTS = dict(voxel_size=0.1, tile_size=4.0, tile_shape="column")  # 4 x 2 core tiles


def _events(out) -> list[tuple]:
    db = sqlite3.connect(out / "manifest.sqlite")
    try:
        return db.execute("SELECT tile, phase, attempt, status FROM events ORDER BY id").fetchall()
    finally:
        db.close()


def _fits(events, status="done") -> list[str]:
    return sorted(t for t, phase, _, s in events if phase == "fit" and s == status)


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    d = tmp_path_factory.mktemp("plane")
    return wavy_plane(d / "plane.npy", n=20_000)


@pytest.fixture(scope="module")
def reference(plane, tmp_path_factory):
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "job"
    s = run(plane, out, **OPTS)
    assert s.ok and s.done >= 6
    return s, (out / "scene.ply").read_bytes()


def test_failed_tile_is_retried_then_reported_and_resume_finishes_byte_identical(plane, reference, tmp_path):
    ref, ref_bytes = reference
    out = tmp_path / "job"
    bad = "1_0_0"
    s1 = run(plane, out, retries=1, faults={f"fit:{bad}": "raise:5"}, **OPTS)
    assert [f["tile"] for f in s1.failed] == [bad] and s1.failed[0]["attempts"] == 2
    assert s1.done >= 1 and s1.mesh is not None  # the others went on
    ev1 = _events(out)
    assert [a for t, ph, a, st in ev1 if t == bad and ph == "fit"] == [1, 2]
    done_before = _fits(ev1)
    assert bad not in done_before

    s2 = run(plane, out, resume=True, **OPTS)
    assert s2.ok and s2.reused_fits == len(done_before)
    ev2 = _events(out)[len(ev1):]
    assert _fits(ev2) == [bad]  # only the failed tile was fitted again
    assert (out / "scene.ply").read_bytes() == ref_bytes

    s3 = run(plane, out, resume=True, **OPTS)  # nothing left to do: nothing recomputed
    assert s3.ok and not _events(out)[len(ev1) + len(ev2):]
    assert (out / "scene.ply").read_bytes() == ref_bytes


def test_transient_failure_is_retried_and_succeeds(plane, reference, tmp_path):
    _, ref_bytes = reference
    out = tmp_path / "job"
    s = run(plane, out, retries=2, faults={"mesh:0_0_0": "raise:1", "fit:1_0_0": "raise:2"}, **OPTS)
    assert s.ok
    ev = _events(out)
    assert [(a, st) for t, ph, a, st in ev if t == "1_0_0" and ph == "fit"] == [(1, "error"), (2, "error"), (3, "done")]
    assert [(a, st) for t, ph, a, st in ev if t == "0_0_0" and ph == "mesh"] == [(1, "error"), (2, "done")]
    assert (out / "scene.ply").read_bytes() == ref_bytes


def test_existing_job_folder_needs_resume(plane, reference, tmp_path):
    out = tmp_path / "job"
    out.mkdir()
    (out / "manifest.sqlite").write_bytes(b"")
    with pytest.raises(ConfigError, match="--resume"):
        run(plane, out, **OPTS)
