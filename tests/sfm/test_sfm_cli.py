"""``recon sfm`` as a user runs it (subprocess, real exit codes): a model, and the clean refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from recon.io.cameras import load_views
from tests.sfm.conftest import N_VIEWS, Scene


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recon_apps.cli", *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=300)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """Exit status 2 and exactly one line on stderr, an ``error:`` line without a traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_sfm_writes_a_loadable_model_and_refuses_to_overwrite_it(scene: Scene, tmp_path: Path) -> None:
    out = tmp_path / "model"
    proc = run("sfm", scene.photos, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert f"registered {N_VIEWS} of {N_VIEWS} photos (100 %)" in proc.stderr
    for stage in ("sfm: reading photos", "sfm: features", "sfm: matching", "sfm: mapping"):
        assert stage in proc.stderr
    assert "time: photos" in proc.stderr
    assert len(load_views(out)) == N_VIEWS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left
    line = one_error_line(run("sfm", scene.photos, "-o", out, "-q"))
    assert "not empty" in line and "--force" in line


def test_identical_photos_give_one_clean_line_and_no_output(scene: Scene, tmp_path: Path) -> None:
    photos = tmp_path / "same"
    photos.mkdir()
    for k in range(10):  # ten copies of one textured view: no baseline, nothing to triangulate
        shutil.copyfile(scene.photos / "v03.png", photos / f"img{k:02d}.png")
    out = tmp_path / "model"
    line = one_error_line(run("sfm", photos, "-o", out, "--quiet"))
    assert "registered only 0 of 10 photos" in line and "10 failed" in line and "overlap" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same"]  # no output, no temporary folder


def test_output_inside_the_photos_and_too_few_photos_are_refused_before_work(scene: Scene, tmp_path: Path) -> None:
    line = one_error_line(run("sfm", scene.photos, "-o", scene.photos / "model", "-q"))
    assert "inside the photo folder" in line
    assert not (scene.photos / "model").exists()
    few = tmp_path / "few"
    few.mkdir()
    for k in range(3):
        shutil.copyfile(scene.photos / f"v{k:02d}.png", few / f"v{k:02d}.png")
    line = one_error_line(run("sfm", few, "-o", tmp_path / "m", "-q"))
    assert "only 3 photos" in line and "at least 8" in line
    line = one_error_line(run("sfm", tmp_path / "missing", "-o", tmp_path / "m2", "-q"))
    assert "not found" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few"]


def test_info_on_photos_without_cameras_says_sfm_will_pose_them(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 24), (10 * i, 20, 30)).save(folder / f"p{i}.jpg")
    proc = run("info", folder, "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["photos"] == 3 and "structure-from-motion" in d["cameras"]
