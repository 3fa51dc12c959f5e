"""Issue 20 for ``recon batch`` and ``recon synth-scene``: every bad input, option or output location is
refused before any work with one error line (exit 2), no job folder is left behind and no input changes;
a finished job folder that was moved resumes from its own tiles.

The jobs run their Dask workers as threads of the CLI process (``--in-process``) to stay quick.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.trust_helpers import assert_clean_refusal, run_cli, snapshot
from tests.tiling.helpers import OFFSET, wavy_plane

#: keeps the CLI children small and quick on the shared machine
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: a small job: 4,000 points, 0.2 voxels, 6.4-wide columns (about a dozen tiles, a few seconds)
JOB = ("--in-process", "--voxel-size", "0.2", "--tile-size", "6.4", "--tile-shape", "column", "--no-preview")


def default_sigint() -> None:
    """In the child before exec: Ctrl-C as in a terminal, whatever an earlier test left in this process
    (an ignored SIGINT is inherited through exec, and Python then installs no handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _identical(folder: Path) -> Path:
    np.save(folder / "same.npy", np.tile(OFFSET, (2_000, 1)))
    return folder / "same.npy"


def _line(folder: Path) -> Path:
    t = np.linspace(0.0, 10.0, 2_000)[:, None]
    np.save(folder / "line.npy", OFFSET + t * np.array([1.0, 2.0, 0.5]))
    return folder / "line.npy"


def _three(folder: Path) -> Path:
    np.save(folder / "three.npy", OFFSET + np.random.default_rng(0).normal(size=(3, 3)))
    return folder / "three.npy"


def _plane(folder: Path) -> Path:
    return wavy_plane(folder / "plane.npy", n=4_000)


def _inside_job(folder: Path) -> Path:
    (folder / "job").mkdir()
    return wavy_plane(folder / "job" / "plane.npy", n=4_000)


def _job_file(folder: Path, text: str) -> Path:
    (folder / "job.yaml").write_text(text)
    return folder / "job.yaml"


# each case: (files in the input folder, the command line after `recon`, fragments of the error line, job folder)
CASES = {
    "identical points": lambda d: (["batch", _identical(d), "-o", d / "job", *JOB], ["same.npy", "identical"],
                                   d / "job"),
    "a line": lambda d: (["batch", _line(d), "-o", d / "job", *JOB], ["line.npy", "collinear"], d / "job"),
    "3 points": lambda d: (["batch", _three(d), "-o", d / "job", *JOB], ["three.npy", "only 3 valid points"],
                           d / "job"),
    "job inputs: 5": lambda d: (["batch", _job_file(d, "inputs: 5\noutput: job\nprocesses: false\n")],
                                ["job.yaml", "inputs"], d / "job"),
    "job workers: 1.5": lambda d: (["batch", _job_file(d, f"inputs: [{_plane(d).name}]\noutput: job\n"
                                                         "workers: 1.5\nprocesses: false\n")],
                                   ["job.yaml", "workers", "whole number"], d / "job"),
    "--workers 1000000": lambda d: (["batch", _plane(d), "-o", d / "job", "--workers", "1000000", *JOB],
                                    ["--workers", "1,000,000"], d / "job"),
    "--tile-size nan": lambda d: (["batch", _plane(d), "-o", d / "job", *JOB, "--tile-size", "nan"],
                                  ["--tile-size", "finite"], d / "job"),
    "--memory-limit lots": lambda d: (["batch", _plane(d), "-o", d / "job", *JOB, "--memory-limit", "lots"],
                                      ["memory limit"], d / "job"),
    "unwritable output location": lambda d: (["batch", _plane(d), "-o", "/proc/recon-test-job", *JOB],
                                             ["/proc/recon-test-job", "cannot write"], Path("/proc/recon-test-job")),
    "-o is the input's folder": lambda d: (["batch", _plane(d), "-o", d, *JOB], ["holds an input"],
                                           d / "manifest.sqlite"),
    "input inside the job folder": lambda d: (["batch", _inside_job(d), "-o", d / "job", "--resume", *JOB],
                                              ["holds an input"], d / "job" / "manifest.sqlite"),
    "synth-scene --points 1e12": lambda d: (["synth-scene", "-o", d / "s.npy", "--points", "1e12"], ["points"],
                                            d / "s.npy"),
    "synth-scene --points 1e400": lambda d: (["synth-scene", "-o", d / "s.npy", "--points", "1e400"],
                                             ["not a point count"], d / "s.npy"),
    "synth-scene --seed -1": lambda d: (["synth-scene", "-o", d / "s.npy", "--seed", "-1", "-n", "2k"], ["seed"],
                                        d / "s.npy"),
    "synth-scene --density 1e-9": lambda d: (["synth-scene", "-o", d / "s.npy", "--density", "1e-9", "-n", "2k"],
                                             ["density"], d / "s.npy"),
    "synth-scene --noise inf": lambda d: (["synth-scene", "-o", d / "s.npy", "--noise", "inf", "-n", "2k"],
                                          ["noise"], d / "s.npy"),
    "synth-scene unwritable output": lambda d: (["synth-scene", "-o", "/proc/recon-test.npy", "-n", "2k"],
                                                ["cannot write"], Path("/proc/recon-test.npy")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_batch_input_is_refused_cleanly(case, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    args, fragments, job = CASES[case](folder)
    before = snapshot([folder])
    proc = run_cli(*args, cwd=tmp_path, env=ENV, timeout=300)
    assert_clean_refusal(proc, *fragments, inputs=before, no_output=[job])
    assert snapshot([folder]) == before  # nothing was added next to the inputs either


def _events(job: Path) -> int:
    db = sqlite3.connect(job / "manifest.sqlite")
    try:
        return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        db.close()


def _batch(*args: object, cwd: Path) -> dict:
    proc = run_cli("batch", *args, *JOB, "--json", "--quiet", cwd=cwd, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_a_moved_job_folder_resumes_from_its_own_tiles(tmp_path):
    cloud = _plane(tmp_path)
    first = tmp_path / "a" / "job"
    s1 = _batch(cloud, "-o", first, cwd=tmp_path)
    assert s1["fitted"] >= 3 and s1["done"] >= 3 and s1["faces"] > 1000 and s1["reused_fits"] == 0
    scene = (first / "scene.ply").read_bytes()
    events = _events(first)

    moved = tmp_path / "b" / "job"
    moved.parent.mkdir()
    os.rename(first, moved)
    s2 = _batch(cloud, "-o", moved, "--resume", cwd=tmp_path)
    assert (s2["reused_fits"], s2["reused_meshes"]) == (s1["fitted"], s1["done"])  # nothing recomputed
    assert _events(moved) == events  # no tile task ran
    assert s2["mesh"] == str(moved / "scene.ply") and (moved / "scene.ply").read_bytes() == scene
    assert not first.exists()  # nothing was written at the old location

    # a manifest of the old format (absolute paths into a folder that is gone) resumes the same way
    db = sqlite3.connect(moved / "manifest.sqlite")
    with db:
        db.execute("UPDATE tiles SET field_path = ? || '/' || field_path WHERE field_path IS NOT NULL", (str(first),))
        db.execute("UPDATE tiles SET mesh_path = ? || '/' || mesh_path WHERE mesh_path IS NOT NULL", (str(first),))
    db.close()
    (moved / "scene.ply").unlink()
    s3 = _batch(cloud, "-o", moved, "--resume", cwd=tmp_path)
    assert (s3["reused_fits"], s3["reused_meshes"]) == (s1["fitted"], s1["done"])
    assert _events(moved) == events
    assert (moved / "scene.ply").read_bytes() == scene and not first.exists()
    index = json.loads((moved / "scene.json").read_text())
    assert all(t["mesh"] is None or not Path(t["mesh"]).is_absolute() for t in index["tiles"])


def test_a_failed_start_leaves_no_job_folder_so_a_rerun_works(tmp_path):
    """The issue's second run said "holds a previous batch job" after a refused first run."""
    bad, good = _line(tmp_path), _plane(tmp_path)
    job = tmp_path / "deep" / "job"
    refused = run_cli("batch", bad, "-o", job, *JOB, cwd=tmp_path, env=ENV, timeout=300)
    assert_clean_refusal(refused, "collinear", no_output=[job.parent])
    s = _batch(good, "-o", job, cwd=tmp_path)
    assert s["faces"] > 1000 and (job / "scene.ply").is_file()


def test_ctrl_c_keeps_finished_work_and_exits_130(tmp_path):
    cloud = _plane(tmp_path)
    job = tmp_path / "job"
    env = dict(os.environ, **ENV)
    # every fit sleeps, so the interrupt lands while tiles are running
    proc = subprocess.Popen([sys.executable, "-m", "recon_apps.cli", "batch", str(cloud), "-o", str(job), *JOB,
                             "--fault", "fit:*=sleep:3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint, env=env,
                            cwd=tmp_path)
    try:
        t_end = time.monotonic() + 120
        while not (job / "shards").is_dir() and time.monotonic() < t_end and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode(errors="replace")
    assert proc.returncode == 130, text[-2000:]
    assert "interrupted" in text and "--resume" in text and "Traceback" not in text
    assert (job / "manifest.sqlite").is_file() and not (job / "scene.ply").exists()
    s = _batch(cloud, "-o", job, "--resume", cwd=tmp_path)
    assert s["faces"] > 1000 and (job / "scene.ply").is_file()
