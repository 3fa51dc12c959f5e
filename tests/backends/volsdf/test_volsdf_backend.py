"""VolSDFBackend: the array API, and fit_views through a rendered folder and the camera loaders."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from recon.backends.volsdf import VolSDFBackend, VolSDFConfig, VolSDFField
from recon.config import from_dict, load_yaml, to_dict
from tests.backends.volsdf.helpers import orbit_cameras, render_sphere
from tests.backends.volsdf.test_volsdf_trainer import TINY


def test_config_round_trip_and_presets(repo_root):
    cfg = VolSDFConfig()
    assert from_dict(VolSDFConfig, to_dict(cfg)) == cfg
    from recon.pipeline import load_reconstruct_config

    for name in ("volsdf.yaml", "volsdf-gpu.yaml"):
        top, preset, spec = load_reconstruct_config(str(repo_root / "configs" / name))
        assert spec.name == "volsdf" and isinstance(preset, VolSDFConfig)
    assert from_dict(VolSDFConfig, load_yaml(repo_root / "configs" / "volsdf.yaml")["volsdf"]) == cfg  # = defaults
    gpu = from_dict(VolSDFConfig, load_yaml(repo_root / "configs" / "volsdf-gpu.yaml")["volsdf"])
    assert (gpu.sdf_layers, gpu.sdf_width, gpu.feature_dim, gpu.n_eval, gpu.n_samples) == (8, 256, 256, 128, 64)
    from recon.errors import ConfigError

    with pytest.raises(ConfigError):
        VolSDFConfig(n_extra=100, n_eval=64)
    with pytest.raises(ConfigError):
        from_dict(VolSDFConfig, {"encodng": "grid"})


def test_fit_arrays_world_units():
    cams = orbit_cameras(8, 20)
    imgs, masks = render_sphere(cams, 0.7)
    T = np.eye(4)
    T[:3, :3] *= 3.0
    T[:3, 3] = [1.0, 2.0, 3.0]
    backend = VolSDFBackend(dataclasses.replace(TINY, steps=5, mesh_resolution=32))
    field = backend.fit_arrays(imgs, masks, cams, to_world=T)
    assert isinstance(field, VolSDFField)
    assert field.info["steps"] == 5
    mesh = field.extract_mesh()
    r = np.linalg.norm(mesh.vertices - [1.0, 2.0, 3.0], axis=1)
    assert 0.5 * 3.0 * 0.3 < r.mean() < 3.0  # a closed blob around the world centre, in world units
    coloured = field.extract_mesh(colors=True)
    assert coloured.vertex_colors.shape == (coloured.n_vertices, 3)
    assert coloured.vertex_colors.min() >= 0 and coloured.vertex_colors.max() <= 1


def test_fit_views_from_rendered_folder(tmp_path):
    pytest.importorskip("open3d")
    try:
        from recon.io.cameras import load_views
        from recon.render import render_views, write_render_folder
    except ImportError as e:  # the loaders and renderer are optional parts of the tree
        pytest.skip(f"multiview I/O not available: {e}")
    import trimesh

    from recon.types import Mesh

    ico = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    mesh = Mesh(np.asarray(ico.vertices) + [5.0, 0.0, 0.0], np.asarray(ico.faces))
    res = render_views(mesh, n_views=8, size=24, seed=0)
    folder = write_render_folder(res, tmp_path / "scene")
    views = load_views(folder)
    backend = VolSDFBackend(dataclasses.replace(TINY, steps=3, mesh_resolution=24))
    field = backend.fit_views(views, checkpoint_dir=tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "volsdf.pt").is_file()
    b = field.bounds()
    centre = 0.5 * (b[0] + b[1])
    assert np.linalg.norm(centre - [5.0, 0.0, 0.0]) < 0.1  # the unit sphere sits on the object, in world units
    assert 0.4 < 0.5 * (b[1] - b[0]).max() < 1.0
    # resume continues from the checkpoint
    again = VolSDFBackend(dataclasses.replace(TINY, steps=5, mesh_resolution=24))
    f2 = again.fit_views(views, checkpoint_dir=tmp_path / "ckpt", resume=True)
    assert f2.info["steps"] == 5 and again.trainer.stats.history[0][0] == 1


def test_cameras_missing_the_scene_is_a_clear_error():
    from recon.errors import InputError

    cams = orbit_cameras(4, 8)
    imgs, masks = render_sphere(cams, 0.5)
    cams.cam_to_world[:, :3, 0] *= -1  # turned around: every camera looks away from the unit sphere
    cams.cam_to_world[:, :3, 2] *= -1
    with pytest.raises(InputError, match="no camera ray meets the unit sphere"):
        VolSDFBackend(dataclasses.replace(TINY, steps=1)).fit_arrays(imgs, masks, cams)
    with pytest.raises(InputError, match="cameras"):
        VolSDFBackend(TINY).fit_arrays(imgs[:3], masks[:3], orbit_cameras(4, 8))


def test_a_run_stopped_far_from_its_steps_says_so():
    cams = orbit_cameras(6, 16)
    imgs, masks = render_sphere(cams, 0.7)
    short = VolSDFBackend(dataclasses.replace(TINY, steps=10_000, time_budget=0.3, mesh_resolution=16))
    with pytest.warns(RuntimeWarning, match=r"stopped by the time budget after .* of 10,000 steps .*far from converged"):
        short.fit_arrays(imgs, masks, cams)
    done = VolSDFBackend(dataclasses.replace(TINY, steps=3, time_budget=None, mesh_resolution=16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        done.fit_arrays(imgs, masks, cams)  # all its steps: no warning
