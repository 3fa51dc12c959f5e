"""`recon reconstruct` options that do not apply are refused with the fix; --sample does what its help says;
`recon eval` takes a point-cloud ground truth; `recon info` prints a readable table."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from recon_apps.reconstruct_options import IMAGE_BACKENDS, SHORTCUTS
from tests.e2e.test_cli import REPO, SAMPLE, assert_clean_error, run, sphere_points, write_xyz


def _find(d: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in nested dicts."""
    if not isinstance(d, dict):
        return []
    found = [d[key]] if key in d else []
    for v in d.values():
        found += _find(v, key)
    return found


@pytest.mark.parametrize("args, fragments", [
    (["--depth", "9"], ("--depth is a poisson option", "'kernel'", "--backend poisson", "--set depth=9")),
    (["--detail", "0.5", "-b", "poisson"], ("--detail is a kernel option", "--backend kernel", "drop --detail")),
    (["--voxel-size", "0.01", "-b", "poisson"], ("--voxel-size is a kernel option",)),
    (["--chunk-size", "1", "-b", "poisson"], ("--chunk-size is a kernel option",)),
    (["--mise-iter", "1", "-b", "poisson"], ("--mise-iter is a kernel option",)),
    (["--model", "learned", "-b", "poisson"], ("--model is a kernel option",)),
    (["--time-budget", "2m"], ("--time-budget", "posed-image folders", "drop --time-budget")),
    (["--steps", "5"], ("--steps", "image backends", "drop --steps")),
    (["--resume"], ("--resume", "posed-image folders", "drop --resume")),
    (["--mask-dir", "masks"], ("--mask-dir", "drop --mask-dir")),
    (["--save-gaussians", "{tmp}/g.npz"], ("--save-gaussians", "drop --save-gaussians")),
])
def test_option_for_another_backend_or_input_is_refused_with_the_fix(tmp_path, args, fragments):
    out = tmp_path / "o.ply"
    proc = run("reconstruct", SAMPLE, "-o", out, *[a.format(tmp=tmp_path) for a in args])
    assert_clean_error(proc, *fragments)
    assert not out.exists()


def test_shortcut_from_a_config_preset_backend_is_checked(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("backend: poisson\n")
    proc = run("reconstruct", SAMPLE, "-o", tmp_path / "o.ply", "--config", cfg, "--detail", "1")
    assert_clean_error(proc, "--detail is a kernel option", "'poisson'")


@pytest.mark.parametrize("args, fragments", [
    (["--sample", "100"], ("--sample", "not to posed-image folders", "drop --sample")),
    (["--ignore-normals"], ("--ignore-normals", "drop --ignore-normals")),
    (["--save-field", "{tmp}/f.npz"], ("--save-field", "drop --save-field")),
    (["--detail", "0.5"], ("--detail applies to kernel", "drop --detail")),
    (["--depth", "8"], ("--depth applies to poisson", "drop --depth")),
])
def test_point_cloud_options_on_a_posed_image_folder_are_refused(tmp_path, args, fragments):
    folder = tmp_path / "views"
    folder.mkdir()
    proc = run("reconstruct", folder, "-o", tmp_path / "o.ply", *[a.format(tmp=tmp_path) for a in args])
    assert_clean_error(proc, *fragments)


def test_shortcut_for_the_chosen_backend_is_applied(tmp_path, rng):
    src = write_xyz(tmp_path / "s.xyz", *sphere_points(3000, rng))
    proc = run("reconstruct", src, "-o", tmp_path / "a.ply", "-b", "poisson", "--depth", "5", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    low = json.loads(proc.stdout)
    assert 5 in _find(low["config"], "depth")
    proc = run("reconstruct", src, "-o", tmp_path / "b.ply", "-b", "poisson", "--depth", "7", "--json", "-q")
    high = json.loads(proc.stdout)
    assert 7 in _find(high["config"], "depth")
    assert high["faces"] > 2 * low["faces"]  # a deeper octree, a finer mesh: the option reached the backend


def test_sample_subsets_a_point_cloud_and_says_so(tmp_path, rng):
    src = write_xyz(tmp_path / "s.xyz", *sphere_points(3000, rng))
    common = ("-b", "poisson", "--set", "depth=6", "--json", "-q")
    proc = run("reconstruct", src, "-o", tmp_path / "a.ply", "--sample", "1000", *common)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["points"] == 1000
    assert any("--sample 1000" in n and "1,000" in n for n in s["notes"]), s["notes"]
    proc = run("reconstruct", src, "-o", tmp_path / "b.ply", "--sample", "5000", *common)
    s = json.loads(proc.stdout)
    assert s["points"] == 3000
    assert any("only 3,000 points" in n for n in s["notes"]), s["notes"]


def test_sample_draws_surface_samples_from_a_mesh(tmp_path):
    trimesh.creation.icosphere(3, radius=1.0).export(tmp_path / "m.obj")  # 642 vertices
    proc = run("reconstruct", tmp_path / "m.obj", "-o", tmp_path / "a.ply", "--sample", "4000", "-b", "poisson",
               "--set", "depth=6", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["points"] == 4000 and not any("--sample" in n for n in s["notes"])
    assert not any("normals estimated" in n for n in s["notes"])  # samples carry face normals


def test_wrote_line_keeps_brackets_in_paths(tmp_path, rng):
    src = write_xyz(tmp_path / "s.xyz", *sphere_points(2000, rng))
    out = tmp_path / "mesh[1].ply"
    proc = run("reconstruct", src, "-o", out, "-b", "poisson", "--set", "depth=5")
    assert proc.returncode == 0, proc.stderr
    wrote = [ln for ln in proc.stderr.splitlines() if ln.startswith("wrote")]
    assert wrote and "mesh[1].ply" in " ".join(proc.stderr.split()), proc.stderr


def _readme_reconstruct_lines() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    return [shlex.split(ln) for ln in lines if ln.startswith("recon reconstruct ") and "[" not in ln]


def test_readme_examples_name_the_backend_of_their_shortcuts():
    by_option = {s.option: s for s in SHORTCUTS}
    examples = _readme_reconstruct_lines()
    assert len(examples) >= 5
    for argv in examples:
        if "--config" in argv:
            continue  # the backend comes from the preset
        folder = not Path(argv[2]).suffix
        backend = argv[argv.index("--backend") + 1] if "--backend" in argv else ("gvkf" if folder else "kernel")
        for opt in argv:
            if opt in by_option:
                assert backend in by_option[opt].backends, (" ".join(argv), opt)
            if opt == "--sample":
                assert not folder and backend not in IMAGE_BACKENDS, " ".join(argv)


# ---------------------------------------------------------------- eval with a point-cloud ground truth


@pytest.fixture
def spheres(tmp_path: Path) -> dict[str, Path]:
    gt = trimesh.creation.icosphere(5, radius=1.0)
    trimesh.creation.icosphere(5, radius=1.02).export(tmp_path / "pred.ply")
    gt.export(tmp_path / "gt.ply")
    pts, face = trimesh.sample.sample_surface(gt, 60_000, seed=1)
    np.savetxt(tmp_path / "gt.xyz", pts, fmt="%.7f")
    np.savetxt(tmp_path / "gt_n.xyz", np.hstack([pts, gt.face_normals[face]]), fmt="%.7f")
    return {"pred": tmp_path / "pred.ply", "mesh": tmp_path / "gt.ply", "cloud": tmp_path / "gt.xyz",
            "cloud_n": tmp_path / "gt_n.xyz"}


def test_eval_takes_a_point_cloud_ground_truth(spheres):
    args = ("--json", "--tau", "0.005", "--tau", "0.02", "--samples", "60000")
    mesh = json.loads(run("eval", spheres["pred"], spheres["mesh"], *args).stdout)
    proc = run("eval", spheres["pred"], spheres["cloud"], *args)
    assert proc.returncode == 0, proc.stderr
    cloud = json.loads(proc.stdout)
    # the spheres are 0.02 apart: both ground truths must see that offset
    assert abs(cloud["chamfer_l1"] - 0.02) < 0.002, cloud["chamfer_l1"]
    assert abs(cloud["chamfer_l1"] - mesh["chamfer_l1"]) < 0.002
    assert cloud["f@0.005"] == 0.0 and cloud["f@0.02"] > 0.99  # tau 0.01 / 0.04 world units around 0.02
    assert cloud["normal_consistency"] is None and cloud["gt_kind"] == "point cloud"
    assert cloud["gt_points"] == 60_000
    with_n = json.loads(run("eval", spheres["pred"], spheres["cloud_n"], *args).stdout)
    assert with_n["normal_consistency"] > 0.999
    assert "gt_kind" not in mesh and mesh["normal_consistency"] > 0.999


def test_eval_table_says_which_metrics_apply(spheres):
    proc = run("eval", spheres["pred"], spheres["cloud"], "--samples", "20000")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"normal_consistency\s*│\s*n/a", proc.stdout), proc.stdout
    note = " ".join(proc.stderr.split())
    assert "ground truth is a point cloud (20,000 of its points used)" in note
    assert "no normal consistency" in note


def test_eval_refuses_a_point_cloud_prediction_with_a_command_line_fix(spheres):
    proc = run("eval", spheres["cloud"], spheres["mesh"])
    assert_clean_error(proc, "PRED has no faces", "recon reconstruct")
    assert "load_point_cloud" not in proc.stderr


# ---------------------------------------------------------------- info


def test_info_prints_a_readable_table(tmp_path):
    trimesh.creation.icosphere(3).export(tmp_path / "m.obj")  # an OBJ without vn lines
    proc = run("info", tmp_path / "m.obj")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "{" not in out and "'" not in out and "True" not in out, out  # no Python reprs
    assert re.search(r"attributes\.normals\s*│\s*not stored", out), out
    assert re.search(r"faces\s*│\s*1,280", out) and re.search(r"bounds min\s*│\s*\(-1, -1, -1\)", out), out
    d = json.loads(run("info", tmp_path / "m.obj", "--json").stdout)
    assert d["attributes"]["normals"] is False and d["faces"] == 1280
    assert d["bounds"] == [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]


def test_info_reports_stored_normals(tmp_path, rng):
    from recon.io import save_mesh
    from recon.types import Mesh

    s = trimesh.creation.icosphere(2)
    save_mesh(Mesh(s.vertices, s.faces, vertex_normals=np.asarray(s.vertex_normals)), tmp_path / "n.ply")
    save_mesh(Mesh(s.vertices, s.faces), tmp_path / "plain.ply")
    assert json.loads(run("info", tmp_path / "n.ply", "--json").stdout)["attributes"]["normals"] is True
    assert json.loads(run("info", tmp_path / "plain.ply", "--json").stdout)["attributes"]["normals"] is False
    src = write_xyz(tmp_path / "c.xyz", *sphere_points(500, rng))
    proc = run("info", src)
    assert re.search(r"attributes\.normals\s*│\s*yes", proc.stdout) and re.search(r"points\s*│\s*500", proc.stdout)


def test_time_budget_alone_lets_the_time_decide():
    from recon_apps.reconstruct_options import UNCAPPED_STEPS, shortcut_values

    assert shortcut_values({"--time-budget": 600.0}) == {"time_budget": 600.0, "steps": UNCAPPED_STEPS}
    assert shortcut_values({"--steps": 50}) == {"steps": 50, "time_budget": None}
    assert shortcut_values({"--steps": 50, "--time-budget": 600.0}) == {"steps": 50, "time_budget": 600.0}
