"""A job through ``recon batch --scheduler`` on a real `dask scheduler` + two `dask worker` processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recon.meshing import boundary_edge_count
from recon.tiling.lattice import Lattice
from recon.tiling.stitch import load_merged

from tests.tiling.helpers import seam_gaps, wavy_plane

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(*args: str, log: Path) -> subprocess.Popen:
    exe = shutil.which("dask", path=str(BIN)) or shutil.which("dask")
    if exe is None:
        pytest.skip("the dask command line is not installed")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen([exe, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _wait_workers(address: str, n: int, timeout: float = 60.0) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as c:
        c.wait_for_workers(n, timeout=timeout)


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def test_batch_runs_on_an_existing_scheduler_and_survives_a_killed_worker(tmp_path, capsys):
    from recon_apps.batch_cli import main

    cloud = wavy_plane(tmp_path / "plane.npy", n=12_000)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                           log=tmp_path / "scheduler.log"))
        time.sleep(1.0)
        for i in range(2):
            procs.append(_dask("worker", address, "--nthreads", "1", "--nworkers", "1", "--memory-limit", "2GB",
                               "--no-dashboard", "--local-directory", str(tmp_path / f"w{i}"),
                               log=tmp_path / f"worker{i}.log"))
        _wait_workers(address, 2)
        out = tmp_path / "job"
        # the first fit of tile 1_0_0 SIGKILLs its worker mid-tile: the scheduler reschedules it
        # (the nanny restarts the worker) and the job still succeeds
        code = 0
        try:
            main(["batch", str(cloud), "-o", str(out), "--scheduler", address, "--voxel-size", "0.1",
                  "--tile-size", "4.0", "--no-preview", "--json", "--quiet", "--fault", "fit:1_0_0=kill:1"])
        except SystemExit as e:
            code = e.code
        assert code in (0, None)
        summary = json.loads(capsys.readouterr().out)
        assert summary["failed"] == [] and summary["done"] >= 8
        assert (out / "faults" / "fit-1_0_0.0").exists()  # the kill did happen
        mesh = load_merged(out / "scene.ply")
        lattice = Lattice.from_dict(summary["lattice"])
        assert mesh.n_faces > 2000 and seam_gaps(mesh, lattice) == 0
        assert boundary_edge_count(mesh) < 0.03 * mesh.n_faces  # the rim of the plane
        pids = {e["pid"] for e in _events(out)}
        assert len(pids) >= 2  # the work ran in the external worker processes, not here
        assert os.getpid() not in pids
    finally:
        for p in reversed(procs):
            _stop(p)


def _events(out: Path) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(out / "manifest.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM events")]
    finally:
        db.close()


def test_in_process_workers_have_no_memory_limit_and_finish_inside_a_large_process(tmp_path):
    """Threads of one process share its RSS: a per-worker limit would pause them all for good once the
    caller is large (the full test session was; the job then waited forever)."""
    import numpy as np
    import psutil

    from recon.tiling.config import BatchConfig
    from recon.tiling.runner import cluster_memory_limit, dask_client

    rss = psutil.Process().memory_info().rss
    small = f"{max(rss // 2, 50_000_000)}B"          # below this process's size: Dask would pause at once
    cfg = BatchConfig(inputs=["x.ply"], output=str(tmp_path / "o"), processes=False, workers=2,
                      memory_limit=small, preview=False)
    assert cluster_memory_limit(cfg) == 0
    assert cluster_memory_limit(BatchConfig(inputs=["x.ply"], output="o", memory_limit="2GB")) == "2GB"
    with dask_client(cfg, log=lambda *_: None) as (client, _):
        limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
        assert limits == [0, 0]
        # work actually runs on them (a paused worker would leave this waiting)
        assert client.submit(np.add, 2, 3).result(timeout=60) == 5
