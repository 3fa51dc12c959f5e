"""GVKF end to end on a rendered sphere: training lowers the loss and the Chamfer distance,
checkpoints resume exactly, the backend and the CLI write meshes and Gaussians, bad scenes fail clearly."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import trimesh

from recon.backends.gvkf import GVKFBackend, GVKFConfig
from recon.backends.gvkf.trainer import GVKFTrainer
from recon.errors import EmptyResultError
from recon.types import Mesh

TINY = GVKFConfig(steps=300, init_count=800, max_gaussians=4000, densify_from=50, densify_every=50,
                  opacity_reset_every=0, sdf_views=8, mesh_resolution=32, threads=1, checkpoint_every=1e9)
RADIUS = 0.5


@pytest.fixture(scope="module")
def sphere_views():
    from recon.render import render_views
    from recon.render.rig import sphere_rig

    s = trimesh.creation.icosphere(3, radius=RADIUS)
    # cameras 2.9 units away (as after normalize_views: the object inside the unit sphere, cameras outside)
    cams = sphere_rig(np.zeros(3), RADIUS, 12, 40, fov_deg=21.0, seed=0)
    return render_views(Mesh(s.vertices, s.faces), supersample=1, cameras=cams)



def chamfer_to_sphere(mesh: Mesh) -> float:
    """Mean |r - R| of the mesh's vertices (the distance to the analytic sphere)."""
    return float(np.abs(np.linalg.norm(mesh.vertices, axis=1) - RADIUS).mean())


def test_training_lowers_the_photometric_loss_and_the_chamfer_distance(sphere_views):
    r = sphere_views
    cfg = dataclasses.replace(TINY, init="random", init_count=1500)
    tr = GVKFTrainer(cfg, r.rgb, r.alpha, r.cameras)
    before = tr.field().extract_mesh(resolution=32, colors=False)
    first = [tr.step()["photometric"] for _ in range(10)]
    tr.train(max_steps=280)
    last = [tr.step()["photometric"] for _ in range(10)]
    assert np.mean(last) < 0.5 * np.mean(first)
    after = tr.field().extract_mesh(resolution=32, colors=False)
    cd0, cd1 = chamfer_to_sphere(before), chamfer_to_sphere(after)
    assert cd1 < 0.5 * cd0 and cd1 < 0.03, (cd0, cd1)


def test_resume_continues_exactly(sphere_views, tmp_path):
    r = sphere_views
    cfg = dataclasses.replace(TINY, steps=60, densify_from=20, densify_every=20)
    straight = GVKFTrainer(cfg, r.rgb, r.alpha, r.cameras)
    straight.train()
    a = GVKFTrainer(cfg, r.rgb, r.alpha, r.cameras, checkpoint_dir=tmp_path)
    a.train(max_steps=30)
    b = GVKFTrainer(cfg, r.rgb, r.alpha, r.cameras, checkpoint_dir=tmp_path)
    assert b.load_checkpoint() and b.stats.step == 30
    b.train()
    assert b.stats.step == 60 and len(b.gaussians) == len(straight.gaussians)
    for x, y in zip(straight.gaussians.parameters(), b.gaussians.parameters()):
        assert torch.allclose(x, y, atol=1e-6)


def test_backend_world_units_and_saved_gaussians(sphere_views, tmp_path):
    r = sphere_views
    T = np.eye(4)
    T[:3, :3] *= 2.0
    T[:3, 3] = [10.0, 0.0, -5.0]
    field = GVKFBackend(TINY).fit_arrays(r.rgb, r.alpha, r.cameras, to_world=T)
    mesh = field.extract_mesh()
    rad = np.linalg.norm(mesh.vertices - [10.0, 0.0, -5.0], axis=1)
    assert np.median(rad) == pytest.approx(2.0 * RADIUS, rel=0.06)
    assert mesh.vertex_colors is not None and mesh.vertex_colors.shape == (mesh.n_vertices, 3)
    tet = field.extract_mesh(method="tetra")  # marching tetrahedra on the Gaussians' Delaunay, same field
    rad_t = np.linalg.norm(tet.vertices - [10.0, 0.0, -5.0], axis=1)
    assert np.median(rad_t) == pytest.approx(2.0 * RADIUS, rel=0.06)
    g = field.world_gaussians()
    assert torch.allclose(g.scales(), field.gaussians.scales() * 2.0, rtol=1e-5)
    assert float((g.means - torch.tensor([10.0, 0.0, -5.0])).norm(dim=1).median()) == pytest.approx(2 * RADIUS, rel=0.1)
    # the field's sign: inside negative, outside positive (world units)
    v = field.evaluate(np.array([[10.0, 0.0, -5.0], [10.0, 0.0, -5.0 + 2 * 0.6]]))
    assert v[0] < 0 < v[1]


def test_no_gaussian_surviving_is_a_clear_error(sphere_views):
    r = sphere_views
    cfg = dataclasses.replace(TINY, steps=5, densify_from=1, densify_every=1, prune_opacity=0.999)
    with pytest.raises(EmptyResultError, match="no Gaussian survived"):
        GVKFBackend(cfg).fit_arrays(r.rgb, r.alpha, r.cameras)


def test_cli_reconstructs_a_rendered_folder(sphere_views, tmp_path):
    """gvkf is the default backend for a posed-image folder (no --backend given)."""
    from typer.testing import CliRunner

    from recon.render import write_render_folder
    from recon_apps.cli import app

    folder = write_render_folder(sphere_views, tmp_path / "scene")
    out = tmp_path / "mesh.ply"
    res = CliRunner().invoke(app, ["reconstruct", str(folder), "-o", str(out), "--steps", "250",
                                   "--set", "init_count=800", "--set", "mesh_resolution=32", "--set", "sdf_views=6",
                                   "--save-gaussians", str(tmp_path / "g.npz"), "--json", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["backend"] == "gvkf", res.stdout
    m = trimesh.load(out)
    centre = sphere_views.centre
    assert np.median(np.linalg.norm(m.vertices - centre, axis=1)) == pytest.approx(RADIUS, rel=0.1)
    from recon.backends.gvkf.gaussians import GaussianSet

    assert len(GaussianSet.load(tmp_path / "g.npz")) > 100
    assert (tmp_path / "mesh.ckpt" / "gvkf.pt").is_file()
    bad = CliRunner().invoke(app, ["reconstruct", str(folder), "-o", str(tmp_path / "m2.ply"), "--backend", "volsdf",
                                   "--save-gaussians", str(tmp_path / "g2.npz")])
    assert "--backend gvkf" in str(bad.exception)


def test_config_preset_is_the_defaults(repo_root):
    from recon.config import from_dict, load_yaml, to_dict
    from recon.errors import ConfigError
    from recon.pipeline import load_reconstruct_config

    cfg = GVKFConfig()
    assert from_dict(GVKFConfig, to_dict(cfg)) == cfg
    assert from_dict(GVKFConfig, load_yaml(repo_root / "configs" / "gvkf.yaml")["gvkf"]) == cfg
    top, preset, spec = load_reconstruct_config(str(repo_root / "configs" / "gvkf.yaml"))
    assert spec.name == "gvkf" and preset == cfg
    with pytest.raises(ConfigError, match="init"):
        GVKFConfig(init="sfm")
    with pytest.raises(ConfigError):
        from_dict(GVKFConfig, {"stepz": 3})
