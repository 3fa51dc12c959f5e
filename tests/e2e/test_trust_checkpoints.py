"""Issue 20: no checkpoint or weights file runs code when it is read.

A crafted file is a ``torch.save`` of an object whose unpickling would create a canary file. Through
the real CLI (``recon reconstruct FOLDER --resume --checkpoint-dir DIR``) and through the weights
loaders, such a file is refused with one error line, the canary never appears and nothing is written.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from recon.backends.gvkf.trainer import GVKFTrainer
from recon.backends.volsdf.trainer import VolSDFTrainer
from recon.errors import InputError
from recon.io import load_mesh
from recon.io.torch_files import load_tensors, to_plain
from recon.render import render_views, write_render_folder
from tests.e2e.trust_helpers import assert_clean_refusal, run_cli, snapshot

#: keeps the CLI children small and quick on the shared machine
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: per backend: a checkpoint file name and options that skip slow set-up (VolSDF's sphere fit)
BACKENDS = {"volsdf": (VolSDFTrainer.checkpoint_name, ("--set", "init_fit_steps=0")),
            "gvkf": (GVKFTrainer.checkpoint_name, ())}


def resume_cli(views: Path, out: Path, ckpt_dir: Path, backend: str):
    """``recon reconstruct VIEWS -o OUT --backend B --resume --checkpoint-dir DIR`` (2 steps, quiet)."""
    return run_cli("reconstruct", views, "-o", out, "--backend", backend, "--steps", "2", *BACKENDS[backend][1],
                   "--resume", "--checkpoint-dir", ckpt_dir, "--quiet", env=ENV, timeout=120)


class _Canary:
    """Unpickling this object creates ``path`` (what a hostile file could do with any command)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def write_crafted(path: Path, canary: Path, **plain: object) -> Path:
    """A torch.save file holding ``plain`` entries plus an object that creates ``canary`` when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**plain, "payload": _Canary(canary)}, path)
    return path


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> Path:
    """A tiny posed-image folder: 8 views of a box, 32 x 32 pixels."""
    root = tmp_path_factory.mktemp("scene")
    trimesh.creation.box(extents=(1.0, 0.7, 0.5)).export(root / "box.ply")
    result = render_views(load_mesh(root / "box.ply"), n_views=8, size=32, seed=0, supersample=1)
    return write_render_folder(result, root / "views")


def test_the_crafted_file_would_run_code_if_unpickled(tmp_path):
    """The control: the canary really appears when the file is unpickled the unsafe way."""
    canary = tmp_path / "CANARY"
    f = write_crafted(tmp_path / "x.pt", canary)
    torch.load(f, weights_only=False)
    assert canary.exists()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_resume_refuses_a_crafted_checkpoint(views, tmp_path, backend):
    ckpt_dir, out, canary = tmp_path / "ckpt", tmp_path / "o.ply", tmp_path / "CANARY"
    name = BACKENDS[backend][0]
    write_crafted(ckpt_dir / name, canary, version=1, step=3)
    before = snapshot([views, ckpt_dir])
    proc = resume_cli(views, out, ckpt_dir, backend)
    assert not canary.exists(), "the checkpoint ran code"
    assert_clean_refusal(proc, str(ckpt_dir / name), "python objects", "without --resume", inputs=before,
                         no_output=[out])


@pytest.mark.parametrize("content, fragment", [
    (b"not a checkpoint at all", "not a torch.save zip archive"),
    ("wrong keys", "cannot resume"),
])
def test_resume_refuses_other_bad_checkpoints(views, tmp_path, content, fragment):
    ckpt_dir, out = tmp_path / "ckpt", tmp_path / "o.ply"
    ckpt_dir.mkdir()
    f = ckpt_dir / VolSDFTrainer.checkpoint_name
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:  # readable, but not this trainer's state
        torch.save({"version": 1, "image_shape": [8, 32, 32], "model": {"w": torch.zeros(2)}}, f)
    before = snapshot([views, ckpt_dir])
    proc = resume_cli(views, out, ckpt_dir, "volsdf")
    assert_clean_refusal(proc, str(f), fragment, "without --resume", inputs=before, no_output=[out])


# --------------------------------------------------------------------------- weights loaders

def test_hdfe_weights_loader_refuses_a_crafted_file(tmp_path):
    from recon.normals.hdfe import load_model

    canary = tmp_path / "CANARY"
    f = write_crafted(tmp_path / "hdfe.pt", canary, format="recon-hdfe-2")
    with pytest.raises(InputError) as e:
        load_model(f)
    assert not canary.exists()
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "python objects" in msg.lower() and "retrain" in msg


def test_learned_kernel_weights_loader_refuses_a_crafted_file(tmp_path):
    from recon.backends.kernel.learned.model import MODEL_FORMAT, LearnedKernelModel

    canary = tmp_path / "CANARY"
    f = write_crafted(tmp_path / "lk.pt", canary, format=MODEL_FORMAT)
    with pytest.raises(InputError) as e:
        LearnedKernelModel.load(f)
    assert not canary.exists()
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "python objects" in msg.lower() and "recon train kernel" in msg


def test_committed_weights_load_without_unpickling_objects():
    from recon.backends.kernel.learned.field import DEFAULT_WEIGHTS as LK_WEIGHTS
    from recon.normals.hdfe.model import DEFAULT_WEIGHTS as HDFE_WEIGHTS

    for path in (HDFE_WEIGHTS, LK_WEIGHTS):
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert isinstance(state, dict) and "format" in state


# --------------------------------------------------------------------------- the checked loader

def test_load_tensors_refuses_compressed_archives(tmp_path):
    """torch.load would inflate compressed entries; a small file must not become gigabytes."""
    plain = tmp_path / "plain.pt"
    torch.save({"a": torch.zeros(1000)}, plain)
    packed = tmp_path / "packed.pt"
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    assert torch.equal(torch.load(packed, weights_only=True)["a"], torch.zeros(1000))  # torch itself reads it
    assert torch.equal(load_tensors(plain, what="test file", fix="f")["a"], torch.zeros(1000))
    with pytest.raises(InputError, match="compressed"):
        load_tensors(packed, what="test file", fix="f")


def test_load_tensors_refuses_non_zip_and_non_dict_files(tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"a": torch.zeros(3)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(InputError, match="not a torch.save zip archive"):
        load_tensors(legacy, what="test file", fix="f")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], listed)
    with pytest.raises(InputError, match="holds a list"):
        load_tensors(listed, what="test file", fix="f")
    with pytest.raises(InputError, match="not found"):
        load_tensors(tmp_path / "absent.pt", what="test file", fix="f")


def test_to_plain_makes_numpy_values_loadable(tmp_path):
    rng = np.random.default_rng(3)
    rng.integers(10)
    state = {"arr": np.arange(6, dtype=np.int16).reshape(2, 3), "x": np.float64(0.25), "flag": np.bool_(True),
             "rng": rng.bit_generator.state, "version": torch.__version__, "rows": [(1, np.float32(2.5))]}
    torch.save(state, tmp_path / "raw.pt")
    with pytest.raises(InputError, match="Python objects"):  # as they are, the numpy values are refused
        load_tensors(tmp_path / "raw.pt", what="test file", fix="f")
    torch.save(to_plain(state), tmp_path / "plain.pt")
    back = load_tensors(tmp_path / "plain.pt", what="test file", fix="f")
    assert back["arr"].dtype == torch.int16 and back["arr"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert back["x"] == 0.25 and back["flag"] is True and back["rows"] == [(1, 2.5)]
    assert type(back["version"]) is str
    again = np.random.default_rng(0)
    again.bit_generator.state = back["rng"]
    assert again.integers(1 << 30) == rng.integers(1 << 30)
    with pytest.raises(TypeError, match="weights_only"):
        to_plain({"bad": object()})


# --------------------------------------------------------------------------- HDFE training checkpoints

TINY_HDFE = {"encoder": {"n_dims": 4, "scales": [8, 16], "frame_k": 8, "max_points": 8}, "head": {"hidden": [8]},
             "data": {"procedural": False, "n_points": 400, "queries_per_cloud": 64, "val_queries_per_cloud": 4,
                      "meshes": ["ball.ply"], "held_out": [], "conditions": ["noise0"]},
             "train": {"epochs": 1, "batch": 16, "checkpoint_every": 1}}


def _hdfe_config(root: Path, cache: Path, epochs: int) -> dict:
    """A tiny HDFE training config: one mesh (``root``/meshes/ball.ply), weights in ``root``/w."""
    meshes = root / "meshes"
    if not (meshes / "ball.ply").is_file():
        meshes.mkdir(parents=True, exist_ok=True)
        trimesh.creation.icosphere(subdivisions=2).export(meshes / "ball.ply")
    cfg = {**TINY_HDFE, "output": str(root / "w" / "hdfe.pt"), "cache_dir": str(cache), "mesh_dir": str(meshes)}
    cfg["train"] = {**TINY_HDFE["train"], "epochs": epochs}
    return cfg


def _stop_after_first_epoch(line: str) -> None:
    """A training log that presses Ctrl-C once the first epoch is reported."""
    if line.startswith("epoch 1/"):
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def hdfe_cache(tmp_path_factory) -> Path:
    """A cache folder with the tiny training set and the checkpoint of a two-epoch run stopped after one."""
    from recon.normals.hdfe.train import train

    root = tmp_path_factory.mktemp("hdfe")
    with pytest.raises(SystemExit):
        train(_hdfe_config(root, root / "cache", 2), resume=False, log=_stop_after_first_epoch)
    return root / "cache"


def _copy_cache(src: Path, dst: Path) -> Path:
    for f in src.rglob("*"):
        if f.is_file():
            (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / f.relative_to(src)).write_bytes(f.read_bytes())
    return dst


def test_hdfe_training_checkpoint_round_trip(hdfe_cache, tmp_path_factory):
    from recon.normals.hdfe import load_model
    from recon.normals.hdfe.train import train

    state = torch.load(hdfe_cache / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    # the config (paths included) of the interrupted run, so the checkpoint is resumed
    out = train(_hdfe_config(hdfe_cache.parent, hdfe_cache, 2), resume=True, log=lambda s: None)
    resumed = load_model(out)
    assert resumed.meta["runs"][-1]["resumed_at_epoch"] == 1 and resumed.meta["runs"][-1]["ended_at_epoch"] == 2
    # an uninterrupted two-epoch run (cached data, no checkpoint) ends at the same weights
    straight_root = tmp_path_factory.mktemp("straight")
    cache = _copy_cache(hdfe_cache, straight_root / "cache")
    (cache / "checkpoint.pt").unlink()
    straight = load_model(train(_hdfe_config(straight_root, cache, 2), resume=False, log=lambda s: None))
    a, b = resumed.head.state_dict(), straight.head.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_hdfe_training_refuses_a_crafted_checkpoint(hdfe_cache, tmp_path):
    from recon.normals.hdfe.train import train

    cache = _copy_cache(hdfe_cache, tmp_path / "cache")
    canary = tmp_path / "CANARY"
    write_crafted(cache / "checkpoint.pt", canary, epoch=1)
    with pytest.raises(InputError) as e:
        train(_hdfe_config(tmp_path, cache, 2), resume=True, log=lambda s: None)
    assert not canary.exists()
    assert str(cache / "checkpoint.pt") in str(e.value) and "--fresh" in str(e.value)
    assert not (tmp_path / "w").exists()


# --------------------------------------------------------------------------- learned-kernel training checkpoints

def test_learned_training_refuses_a_crafted_checkpoint(tmp_path):
    from recon.backends.kernel.learned.train import train

    cfg = {"seed": 3, "output": str(tmp_path / "w" / "lk.pt"), "cache_dir": str(tmp_path / "cache"), "device": "cpu",
           "model": {"depth": 2, "channels": [4, 4], "kernel_dim": 2, "psi_hidden": 4, "udf_dim": 2, "groups": 2},
           "data": {"n_procedural": 1, "meshes": [], "n_dense": 3000, "n_min": 300, "n_max": 400,
                    "voxel_size": 0.0625, "gt_grid_points": 3000, "normal_prob": 1.0},
           "train": {"steps": 1, "checkpoint_every": 1, "solver_max_iter": 200}}
    canary = tmp_path / "CANARY"
    write_crafted(tmp_path / "cache" / "checkpoint.pt", canary, step=1)
    with pytest.raises(InputError) as e:
        train(cfg, resume=True, log=lambda s: None)
    assert not canary.exists()
    assert str(tmp_path / "cache" / "checkpoint.pt") in str(e.value) and "python objects" in str(e.value).lower()
    assert not (tmp_path / "w").exists()
