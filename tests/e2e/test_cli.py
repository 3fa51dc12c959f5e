"""The `recon` command line end to end, as a user runs it (subprocess, real exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample_scan.ply"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recon_apps.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


def write_xyz(path: Path, pts: np.ndarray, normals: np.ndarray | None = None) -> Path:
    data = pts if normals is None else np.hstack([pts, normals])
    np.savetxt(path, data, fmt="%.6f")
    return path


def sphere_points(n: int, rng: np.random.Generator, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v * radius, v


def test_reconstruct_sample_with_poisson(tmp_path):
    out = tmp_path / "mesh.ply"
    proc = run("reconstruct", SAMPLE, "-o", out, "--backend", "poisson", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["backend"] == "poisson" and summary["faces"] > 1000
    assert any("normals estimated" in n for n in summary["notes"])
    mesh = trimesh.load(out, force="mesh")
    from recon.synthetic import mug

    # vertices near the data lie on the true surface (the scan is partial, so Poisson may close holes:
    # use the median distance, which must be a small fraction of the 1-unit object)
    d = np.abs(mug()(np.asarray(mesh.vertices)))
    assert np.median(d) < 0.01, np.median(d)


def test_reconstruct_sample_with_default_kernel_backend(tmp_path):
    out = tmp_path / "mesh.obj"
    proc = run("reconstruct", SAMPLE, "-o", out, "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["backend"] == "kernel"
    assert summary["solver"]["converged"] is True
    from recon.synthetic import mug

    v = np.asarray(trimesh.load(out, force="mesh").vertices)
    d = np.abs(mug()(v))
    # the noise is sigma 0.003 on a 1-unit object: the fitted surface must sit well inside it
    assert np.median(d) < 0.002, np.median(d)
    assert np.percentile(d, 95) < 0.006
    # trimming keeps the mesh near the data: nothing invented far from the scan
    from scipy.spatial import cKDTree

    from recon.io import load_point_cloud

    dist, _ = cKDTree(load_point_cloud(SAMPLE).points).query(v)
    assert dist.max() < 0.06


def test_reconstruct_sphere_with_config_and_overrides(tmp_path, rng):
    pts, nrm = sphere_points(20_000, rng)
    src = write_xyz(tmp_path / "sphere.xyz", pts, nrm)
    cfg = tmp_path / "p.yaml"
    cfg.write_text("backend: poisson\npoisson:\n  depth: 7\n")
    out = tmp_path / "sphere.obj"
    proc = run("reconstruct", src, "-o", out, "--config", cfg, "--set", "density_quantile=0", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["config"]["poisson"]["depth"] == 7
    assert summary["config"]["poisson"]["density_quantile"] == 0.0
    v = np.asarray(trimesh.load(out, force="mesh").vertices)
    r = np.linalg.norm(v, axis=1)
    assert abs(np.median(r) - 1.0) < 0.01


def test_reconstruct_keeps_georeferenced_offset(tmp_path, rng):
    pts, nrm = sphere_points(8000, rng, radius=5.0)
    offset = np.array([636000.0, 5_000_000.0, 120.0])
    np.savez(tmp_path / "geo.npz", points=pts + offset, normals=nrm)
    out = tmp_path / "geo.ply"
    proc = run("reconstruct", tmp_path / "geo.npz", "-o", out, "--backend", "poisson", "--set", "depth=6", "-q")
    assert proc.returncode == 0, proc.stderr
    from recon.io import load_mesh

    v = load_mesh(out).vertices
    assert np.allclose(np.median(np.linalg.norm(v - offset, axis=1)), 5.0, atol=0.1)


def test_normals_command_orients_sphere_outward(tmp_path, rng):
    pts, truth = sphere_points(5000, rng)
    src = write_xyz(tmp_path / "s.xyz", pts)
    out = tmp_path / "n.ply"
    proc = run("normals", src, "-o", out, "--method", "pca", "-q")
    assert proc.returncode == 0, proc.stderr
    from recon.io import load_point_cloud

    cloud = load_point_cloud(out)
    assert len(cloud) == 5000
    # rows keep their order; outward orientation means positive dot with the true normal everywhere
    cos = np.einsum("ij,ij->i", cloud.normals, truth)
    assert (cos > 0.9).mean() > 0.99


def test_info_json(tmp_path, rng):
    pts, nrm = sphere_points(1000, rng)
    src = write_xyz(tmp_path / "s.xyz", pts + 10.0, nrm)
    proc = run("info", src, "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    text = json.dumps(d)
    assert "1000" in text


def test_eval_json_known_offset(tmp_path):
    a = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    b = trimesh.creation.icosphere(subdivisions=5, radius=1.02)
    a.export(tmp_path / "a.ply")
    b.export(tmp_path / "b.ply")
    proc = run("eval", tmp_path / "a.ply", tmp_path / "b.ply", "--json", "--tau", "0.005", "--tau", "0.02")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert abs(d["chamfer_l1"] - 0.02) < 0.02 * 0.02 + 1e-3


def test_backends_lists_poisson():
    proc = run("backends", "--json")
    assert proc.returncode == 0
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["poisson"]["available"] is True
    assert set(rows["poisson"]["needs"]) == {"points", "normals"}


# ---------------------------------------------------------------- bad input


def _bad_inputs(tmp: Path, rng: np.random.Generator) -> dict[str, tuple[Path, tuple[str, ...]]]:
    cases: dict[str, tuple[Path, tuple[str, ...]]] = {}
    cases["missing"] = (tmp / "nope.ply", ("nope.ply",))
    (tmp / "x.abc").write_text("1 2 3\n")
    cases["extension"] = (tmp / "x.abc", ("x.abc",))
    (tmp / "trunc.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\n")
    cases["truncated header"] = (tmp / "trunc.ply", ("trunc.ply",))
    body = b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    (tmp / "short.ply").write_bytes(body + b"\x00" * 100)
    cases["truncated body"] = (tmp / "short.ply", ("short.ply",))
    (tmp / "empty.xyz").write_text("")
    cases["empty"] = (tmp / "empty.xyz", ("empty.xyz",))
    write_xyz(tmp / "few.xyz", rng.normal(size=(5, 3)))
    cases["few"] = (tmp / "few.xyz", ("few.xyz",))
    nan = np.full((50, 3), np.nan)
    np.save(tmp / "nan.npy", nan)
    cases["all nan"] = (tmp / "nan.npy", ("nan.npy",))
    np.savez(tmp / "mismatch.npz", points=rng.normal(size=(50, 3)), normals=rng.normal(size=(40, 3)))
    cases["normal count"] = (tmp / "mismatch.npz", ("mismatch.npz",))
    n = rng.normal(size=(50, 3))
    n[3] = 0
    write_xyz(tmp / "zero.xyz", rng.normal(size=(50, 3)), n)
    cases["zero normals"] = (tmp / "zero.xyz", ("zero.xyz",))
    write_xyz(tmp / "same.xyz", np.ones((50, 3)))
    cases["identical"] = (tmp / "same.xyz", ("same.xyz",))
    t = rng.random(50)[:, None]
    write_xyz(tmp / "line.xyz", t * np.array([[1.0, 2.0, 3.0]]))
    cases["collinear"] = (tmp / "line.xyz", ("line.xyz",))
    return cases


BAD = ["missing", "extension", "truncated header", "truncated body", "empty", "few", "all nan", "normal count",
       "zero normals", "identical", "collinear"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gives_one_line_and_no_output(tmp_path, rng, case):
    src, frags = _bad_inputs(tmp_path, rng)[case]
    out = tmp_path / "out.ply"
    proc = run("reconstruct", src, "-o", out, "--backend", "poisson")
    assert_clean_error(proc, *frags)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out")], "partial output left behind"


def test_nan_rows_are_dropped_with_a_count(tmp_path, rng):
    pts, nrm = sphere_points(3000, rng)
    pts[:7] = np.nan
    src = write_xyz(tmp_path / "some_nan.xyz", pts, nrm)
    out = tmp_path / "m.ply"
    proc = run("reconstruct", src, "-o", out, "--backend", "poisson", "--set", "depth=6", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert any("7" in n and "NaN" in n for n in json.loads(proc.stdout)["notes"]), proc.stdout


def test_bad_config_key_and_backend(tmp_path, rng):
    src = write_xyz(tmp_path / "s.xyz", *sphere_points(500, rng))
    out = tmp_path / "o.ply"
    assert_clean_error(run("reconstruct", src, "-o", out, "--backend", "poisson", "--set", "depht=9"), "'poisson.depht'")
    assert_clean_error(run("reconstruct", src, "-o", out, "--backend", "nosuch"), "nosuch")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("backend: poisson\npoisson:\n  depth: deep\n")
    assert_clean_error(run("reconstruct", src, "-o", out, "--config", cfg), "c.yaml", "'poisson.depth'")
    assert_clean_error(run("reconstruct", src, "-o", tmp_path / "o.xyz", "--backend", "poisson"), "o.xyz")
    assert not out.exists()


@pytest.mark.shared_data
def test_reconstruct_gargoyle(shared_data, tmp_path):
    src = shared_data / "scans" / "srb_gargoyle" / "gargoyle.ply"
    out = tmp_path / "gargoyle.ply"
    proc = run("reconstruct", src, "-o", out, "--backend", "poisson", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["points"] == 95_435
    assert not any("normals estimated" in n for n in s["notes"])  # the scan has normals
    mesh = trimesh.load(out, force="mesh")
    from scipy.spatial import cKDTree

    from recon.io import load_point_cloud

    cloud = load_point_cloud(src)
    d, _ = cKDTree(cloud.points).query(np.asarray(mesh.vertices))
    extent = np.ptp(cloud.points, axis=0).max()
    assert np.median(d) < 0.005 * extent


def test_save_field_then_view_it(tmp_path, rng):
    pts, nrm = sphere_points(6000, rng, radius=1.0)
    offset = np.array([500.0, -20.0, 7.0])
    src = write_xyz(tmp_path / "s.xyz", pts + offset, nrm)
    out, fld, snap = tmp_path / "s.ply", tmp_path / "s.npz", tmp_path / "live.png"
    proc = run("reconstruct", src, "-o", out, "--save-field", fld, "--view-snapshot", snap, "-q")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and fld.is_file() and snap.is_file()
    from recon.backends.kernel import KernelField
    from recon.io import load_mesh

    field = KernelField.load(fld)  # saved in world units: zero on the input surface
    assert np.abs(field.evaluate(pts[:200] + offset)).max() < 0.05 * field.voxel_size + 1e-3
    np.testing.assert_allclose(field.extract_mesh().vertices, load_mesh(out).vertices, atol=1e-5)
    shot = tmp_path / "view.png"
    proc = run("view", fld, "--screenshot", shot, "--iso", str(0.3 * field.voxel_size))
    assert proc.returncode == 0, proc.stderr
    assert shot.is_file()


def test_save_field_and_view_errors(tmp_path, rng):
    pts, nrm = sphere_points(2000, rng)
    src = write_xyz(tmp_path / "s.xyz", pts, nrm)
    out = tmp_path / "s.ply"
    proc = run("reconstruct", src, "-o", out, "-b", "poisson", "--save-field", tmp_path / "f.npz")
    assert_clean_error(proc, "has no field to save")
    proc = run("reconstruct", src, "-o", out, "--save-field", tmp_path / "f.txt")
    assert_clean_error(proc, ".npz")
    proc = subprocess.run([sys.executable, "-m", "recon_apps.cli", "reconstruct", str(src), "-o", str(out), "--view"],
                          capture_output=True, text=True, env={k: v for k, v in __import__("os").environ.items()
                                                              if k not in ("DISPLAY", "WAYLAND_DISPLAY")})
    assert_clean_error(proc, "--view needs a display", "--view-snapshot")
    assert not out.exists() and not (tmp_path / "f.npz").exists()


def test_reconstruct_posed_images_with_resume(tmp_path):
    """A rendered posed-image folder -> VolSDF -> mesh; --resume continues."""
    from recon.render import render_views, write_render_folder
    from recon.types import Mesh

    s = trimesh.creation.icosphere(2, radius=0.5)
    folder = tmp_path / "scene"
    write_render_folder(render_views(Mesh(s.vertices, s.faces), n_views=8, size=32, seed=0), folder)
    out, ckpt = tmp_path / "m.ply", tmp_path / "ck"
    common = ("--set", "mesh_resolution=48", "--set", "rays_per_step=128", "--set", "threads=1", "--set",
              "init_fit_steps=50", "--checkpoint-dir", ckpt, "--json")
    proc = run("reconstruct", folder, "-o", out, "--backend", "volsdf", "--steps", "10", *common)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["backend"] == "volsdf" and summary["views"] == 8 and summary["faces"] > 0
    assert out.is_file() and any(ckpt.iterdir())
    proc = run("reconstruct", folder, "-o", out, "--backend", "volsdf", "--steps", "20", "--resume", *common)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["faces"] > 0
    proc = run("reconstruct", folder, "-o", tmp_path / "k.ply", "--backend", "kernel")
    assert_clean_error(proc, "reconstructs point clouds, not posed images")
    proc = run("reconstruct", folder, "-o", tmp_path / "r.ply", "--resume", "--checkpoint-dir", tmp_path / "none")
    assert_clean_error(proc, "nothing to resume")
    assert not (tmp_path / "k.ply").exists() and not (tmp_path / "r.ply").exists()
