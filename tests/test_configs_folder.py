"""Every file under configs/ loads with its real loader, and every reconstruction preset runs once.

The files are found by globbing the folder, so a new file cannot be skipped: a reconstruction preset
(configs/*.yaml) goes through load_reconstruct_config and one `recon reconstruct` run on a tiny input,
a training config (configs/train/) through recon.config.load_config_as with its trainer's TrainConfig, a batch job (configs/batch/)
through recon.tiling.config.load_job. A file anywhere else fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from recon_apps.cli import app
from typer.testing import CliRunner

from recon.backends.kernel.learned.train import TrainConfig as KernelTrainConfig
from recon.config import load_config_as, load_yaml, to_dict
from recon.normals.hdfe.train import TrainConfig as HdfeTrainConfig
from recon.pipeline import load_reconstruct_config, preset_dict
from recon.registry import backends, get_backend
from recon.tiling.config import BatchConfig, load_job

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
PRESETS = sorted(CONFIGS.glob("*.yaml"))
#: training configs by file name -> their trainer's config class
TRAIN_CONFIGS = {"kernel-train.yaml": KernelTrainConfig, "normals-hdfe.yaml": HdfeTrainConfig}
SPHERE_RADIUS = 0.5


def _backend_of(path: Path) -> str:
    return load_yaml(path)["backend"]


POINT_PRESETS = [p for p in PRESETS if "points" in get_backend(_backend_of(p)).requires]
IMAGE_PRESETS = [p for p in PRESETS if "images" in get_backend(_backend_of(p)).requires]


def test_every_file_is_in_a_known_place():
    known = set(PRESETS) | set((CONFIGS / "train").glob("*.yaml")) | set((CONFIGS / "batch").glob("*.yaml"))
    stray = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*") if p.is_file() and p not in known)
    assert not stray, f"configs/ files no test loads: {stray} (presets: configs/*.yaml, train/, batch/)"
    assert set(PRESETS) == set(POINT_PRESETS) | set(IMAGE_PRESETS)
    assert len(POINT_PRESETS) >= 3 and len(IMAGE_PRESETS) >= 3


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_preset_has_the_one_shape_and_loads(path):
    data = load_yaml(path)
    name = data["backend"]
    assert name in backends()
    assert set(data) == {"backend", "device", "normals", name}, f"{path.name}: top-level keys {sorted(data)}"
    cfg, backend_cfg, spec = load_reconstruct_config(path)
    assert cfg.backend == spec.name == name and isinstance(backend_cfg, spec.config_class())
    for key, value in data[name].items():  # every value in the file reaches the typed config
        got = getattr(backend_cfg, key)
        assert got == (pytest.approx(value) if isinstance(value, float) else value), (path.name, key)
    # the resolved dict has the preset's shape and loads back to the same configs
    again = load_reconstruct_config(None, values=_flat(preset_dict(cfg, backend_cfg)))
    assert preset_dict(*again[:2]) == preset_dict(cfg, backend_cfg)


def _flat(preset: dict) -> dict:
    """A preset dict as ``values`` keys: ``backend``, ``device``, ``normals.k``, ``<backend>.<key>``."""
    out = {"backend": preset["backend"], "device": preset["device"]}
    out.update({f"normals.{k}": v for k, v in preset["normals"].items()})
    out.update({f"{preset['backend']}.{k}": v for k, v in preset[preset["backend"]].items()})
    return out


def test_kernel_preset_is_the_defaults():
    from recon.backends.kernel import KernelConfig

    cfg, backend_cfg, _ = load_reconstruct_config(CONFIGS / "kernel.yaml")
    assert backend_cfg == KernelConfig() and to_dict(cfg.normals) == {"method": "pca", "k": None, "orient": "auto"}


@pytest.mark.parametrize("path", sorted((CONFIGS / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_training_config_loads_with_its_trainer(path):
    assert path.name in TRAIN_CONFIGS, f"no trainer known for configs/train/{path.name}: add it to TRAIN_CONFIGS"
    cfg, source = load_config_as(TRAIN_CONFIGS[path.name], path)
    assert source == str(path)
    data = load_yaml(path)
    assert to_dict(cfg)["seed"] == data["seed"] and to_dict(cfg)["output"] == data["output"]


@pytest.mark.parametrize("path", sorted((CONFIGS / "batch").glob("*.yaml")), ids=lambda p: p.name)
def test_batch_job_loads(path):
    cfg = BatchConfig.from_dict(load_job(path))
    data = load_yaml(path)
    assert cfg.backend == "kernel" and cfg.detail == data["detail"] and cfg.workers == data["workers"]
    assert all(Path(p).is_absolute() for p in cfg.inputs)  # relative to the job file's folder
    assert Path(cfg.output).resolve() == (path.parent / data["output"]).resolve()


def _sphere_cloud(path: Path, n: int = 2000) -> Path:
    """``n`` points (no normals) on a sphere of radius SPHERE_RADIUS centred at (10, 20, 30)."""
    v = np.random.default_rng(0).normal(size=(n, 3))
    pts = SPHERE_RADIUS * v / np.linalg.norm(v, axis=1, keepdims=True) + [10.0, 20.0, 30.0]
    np.savetxt(path, pts, fmt="%.6f")
    return path


def _reconstruct(args: list[str]) -> dict:
    res = CliRunner().invoke(app, ["reconstruct", *args, "--json", "-q"])
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads(res.stdout)


@pytest.mark.parametrize("path", POINT_PRESETS, ids=lambda p: p.name)
def test_point_preset_reconstructs_a_small_cloud(path, tmp_path):
    src = _sphere_cloud(tmp_path / "sphere.xyz")
    out = tmp_path / "mesh.ply"
    summary = _reconstruct([str(src), "-o", str(out), "--config", str(path)])
    cfg, backend_cfg, _ = load_reconstruct_config(path)
    assert summary["config"] == preset_dict(cfg, backend_cfg)  # the run used exactly the preset
    v = np.asarray(trimesh.load(out, force="mesh").vertices)
    r = np.linalg.norm(v - [10.0, 20.0, 30.0], axis=1)
    assert len(v) > 100 and abs(np.median(r) - SPHERE_RADIUS) < 0.03 * SPHERE_RADIUS


@pytest.fixture(scope="module")
def tiny_render_folder(tmp_path_factory) -> Path:
    """A sphere rendered at 8 views of 24 px, written as a posed-image folder."""
    from recon.render import render_views, write_render_folder
    from recon.render.rig import sphere_rig
    from recon.types import Mesh

    s = trimesh.creation.icosphere(2, radius=SPHERE_RADIUS)
    cams = sphere_rig(np.zeros(3), SPHERE_RADIUS, 8, 24, fov_deg=30.0, seed=0)
    views = render_views(Mesh(s.vertices, s.faces), supersample=1, cameras=cams)
    return write_render_folder(views, tmp_path_factory.mktemp("render") / "scene")


#: per image preset: --set values that keep one run to a few seconds on a CPU (the sizes of the
#: networks and samplers stay the preset's)
TINY_RUN = {"mesh_resolution": 16, "init_fit_steps": 0, "rays_per_step": 16, "sdf_views": 4, "init_count": 300}


@pytest.mark.parametrize("path", IMAGE_PRESETS, ids=lambda p: p.name)
def test_image_preset_trains_one_step(path, tiny_render_folder, tmp_path):
    name = _backend_of(path)
    fields = {f for f in to_dict(get_backend(name).config_class()())}
    tiny = {k: v for k, v in TINY_RUN.items() if k in fields}
    sets = [x for k, v in tiny.items() for x in ("--set", f"{k}={v}")]
    out = tmp_path / "mesh.ply"
    summary = _reconstruct([str(tiny_render_folder), "-o", str(out), "--config", str(path), "--steps", "1",
                            "--device", "cpu", *sets])
    cfg, backend_cfg, _ = load_reconstruct_config(path, device="cpu",
                                                  values={**tiny, "steps": 1, "time_budget": None})
    assert summary["config"] == preset_dict(cfg, backend_cfg)
    assert summary["views"] == 8
    v = np.asarray(trimesh.load(out, force="mesh").vertices)
    assert len(v) > 20 and np.isfinite(v).all()
    assert np.linalg.norm(v, axis=1).max() < 4.0  # inside the cameras' sphere (world units)
