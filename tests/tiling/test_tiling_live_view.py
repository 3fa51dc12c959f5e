"""`recon batch --view-snapshot`: the runner reports every finished tile to the driver, and the CLI
shows them (the drawing runs in a child `recon` process, so no VTK enters the test process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from recon.tiling.config import BatchConfig
from recon.tiling.runner import run_batch
from tests.tiling.helpers import wavy_plane

OPTS = dict(processes=False, workers=1, tile_size=4.0, voxel_size=0.1, tile_shape="column", preview=True)


def test_runner_reports_every_tile_to_the_driver(tmp_path):
    src = wavy_plane(tmp_path / "plane.npy", n=12_000)
    seen: list[tuple[str, str, dict]] = []
    summary = run_batch(BatchConfig(inputs=[str(src)], output=str(tmp_path / "job"), **OPTS),
                        on_tile=lambda phase, tid, res: seen.append((phase, tid, res)))
    assert not summary.failed
    fits = {t for p, t, _ in seen if p == "fit"}
    meshes = {t for p, t, _ in seen if p == "mesh"}
    assert meshes == fits and len(meshes) >= 8  # every tile, fitted then meshed
    with_faces = [r for p, _, r in seen if p == "mesh" and r["faces"] > 0]
    assert len(with_faces) >= 8
    assert all(Path(r["mesh"]).is_file() and Path(r["preview"]).is_file() for r in with_faces)


def test_batch_view_snapshot_draws_the_tiles(tmp_path):
    src = wavy_plane(tmp_path / "plane.npy", n=12_000)
    shot = tmp_path / "live.png"
    proc = subprocess.run([sys.executable, "-m", "recon_apps.cli", "batch", str(src), "-o", str(tmp_path / "job"),
                           "--in-process", "--workers", "1", "--tile-size", "4", "--voxel-size", "0.1",
                           "--tile-shape", "column", "--view-snapshot", str(shot), "-q"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    bg = np.array([0x1F, 0x21, 0x24])
    assert (np.abs(img - bg).sum(-1) > 24).mean() > 0.05  # the welded tiles fill a good part of the frame
