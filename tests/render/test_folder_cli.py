"""The render folder and the ``recon render`` command: layout, atomicity, refusal to overwrite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
import typer
from typer.testing import CliRunner

os.environ.setdefault("OMP_NUM_THREADS", "1")

from recon.errors import ConfigError  # noqa: E402
from recon.io.cameras import load_views  # noqa: E402
from recon.render import render_views, write_render_folder  # noqa: E402
from recon.types import Mesh  # noqa: E402
from recon_apps.render_cli import register  # noqa: E402


@pytest.fixture(scope="module")
def mesh_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("mesh") / "box.ply"
    trimesh.creation.box(extents=(1.0, 0.6, 0.4)).export(p)
    return p


def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def main() -> None:
        """test app"""

    register(a)
    register(a)  # idempotent
    return a


def test_cli_writes_a_complete_folder(mesh_file, tmp_path):
    out = tmp_path / "views"
    res = CliRunner().invoke(app(), ["render", str(mesh_file), "-o", str(out), "--views", "5", "--size", "16", "--seed", "2"])
    assert res.exit_code == 0, res.output
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for i in range(5):
        assert {f"images/r_00{i}.png", f"depth/r_00{i}.npy", f"normals/r_00{i}.png"} <= names
    assert {"transforms.json", "cameras.npz", "sparse/0/cameras.txt", "sparse/0/images.txt", "sparse/0/points3D.txt"} <= names
    meta = json.loads((out / "transforms.json").read_text())
    assert meta["render"]["seed"] == 2 and meta["render"]["mesh"] == str(mesh_file)
    assert [p.name for p in tmp_path.iterdir()] == ["views"]  # no temporary folders left
    from PIL import Image

    with Image.open(out / "images" / "r_000.png") as im:
        assert im.mode == "RGBA" and im.size == (16, 16)
    depth = np.load(out / "depth" / "r_000.npy")
    assert depth.dtype == np.float32 and depth.shape == (16, 16) and depth.max() > 0
    views = load_views(out)
    assert len(views) == 5 and views.depth_paths is not None


def test_cli_refuses_a_non_empty_folder_unless_forced(mesh_file, tmp_path):
    out = tmp_path / "views"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    res = CliRunner().invoke(app(), ["render", str(mesh_file), "-o", str(out), "--views", "3", "--size", "8"])
    assert isinstance(res.exception, ConfigError)
    msg = str(res.exception)
    assert "\n" not in msg and str(out) in msg and "--force" in msg
    assert (out / "keep.txt").exists()
    res = CliRunner().invoke(app(), ["render", str(mesh_file), "-o", str(out), "--views", "3", "--size", "8", "--force"])
    assert res.exit_code == 0, res.output
    assert not (out / "keep.txt").exists() and (out / "transforms.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["views"]


def test_cli_bad_options_and_bad_mesh(mesh_file, tmp_path):
    res = CliRunner().invoke(app(), ["render", str(mesh_file), "-o", str(tmp_path / "o"), "--views", "0"])
    assert isinstance(res.exception, ConfigError) and "--views" in str(res.exception)
    missing = tmp_path / "nope.ply"
    res = CliRunner().invoke(app(), ["render", str(missing), "-o", str(tmp_path / "o")])
    assert str(missing) in str(res.exception)
    assert not (tmp_path / "o").exists()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    mesh = Mesh.from_trimesh(trimesh.creation.icosphere(1))
    result = render_views(mesh, n_views=2, size=8)
    import recon.render.folder as folder_mod

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(folder_mod, "write_cameras_npz", boom)
    with pytest.raises(KeyboardInterrupt):
        write_render_folder(result, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_points3d_lie_on_the_surface_and_project_to_their_observations(tmp_path):
    from recon.io.cameras.colmap import read_images_text
    from recon.ops.rays import project

    mesh = Mesh.from_trimesh(trimesh.creation.icosphere(4, radius=2.0))
    out = write_render_folder(render_views(mesh, n_views=3, size=16), tmp_path / "s", points_per_view=10)
    rows = [ln.split() for ln in (out / "sparse/0/points3D.txt").read_text().splitlines() if not ln.startswith("#")]
    pts = np.array([[float(v) for v in r[1:4]] for r in rows])
    assert pts.shape == (30, 3)
    np.testing.assert_allclose(np.linalg.norm(pts, axis=1), 2.0, atol=0.01)
    lines = [ln for ln in (out / "sparse/0/images.txt").read_text().splitlines() if not ln.startswith("#")]
    views = load_views(out / "sparse/0")
    assert [im.name for im in read_images_text(out / "sparse/0/images.txt")] == [Path(p).name for p in views.image_paths]
    for c in range(3):
        obs = np.array(lines[2 * c + 1].split(), dtype=float).reshape(-1, 3)
        uv, _ = project(views.cameras.K[c], views.cameras.cam_to_world[c], pts[obs[:, 2].astype(int) - 1])
        np.testing.assert_allclose(uv, obs[:, :2], atol=1e-4)
