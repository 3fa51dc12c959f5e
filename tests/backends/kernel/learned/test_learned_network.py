"""The learned network: identity initialisation, structure labels, one training step, CLI, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.backends.kernel.learned import data as D
from recon.backends.kernel.learned.encoder import voxel_pool
from recon.backends.kernel.learned.grids import encoder_grids
from recon.backends.kernel.learned.model import LearnedKernelModel, ModelSpec
from recon.backends.kernel.learned.train import TrainConfig, pretrain_step, sample_voxel_size, train_step
from recon.backends.kernel.learned.unet import structure_labels
from recon.backends.kernel.svh import VoxelLevel, pack_keys

SPEC = ModelSpec(depth=3, channels=(8, 8, 8), kernel_dim=4, psi_hidden=8, udf_dim=4)


def _sphere(n, r=6.0, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return torch.from_numpy((d * r).astype(np.float32)), torch.from_numpy(d.astype(np.float32))


def test_voxel_pool_max_and_mean():
    x = torch.tensor([[1.0, -1.0], [3.0, 5.0], [2.0, 0.0]])
    idx = torch.tensor([0, 0, 2])
    assert torch.equal(voxel_pool(x, idx, 3, "amax"), torch.tensor([[3.0, 5.0], [0.0, 0.0], [2.0, 0.0]]))
    assert torch.equal(voxel_pool(x, idx, 3, "mean"), torch.tensor([[2.0, 2.0], [0.0, 0.0], [2.0, 0.0]]))


def test_structure_labels():
    gt0 = VoxelLevel.from_keys(pack_keys(torch.tensor([[0, 0, 0], [1, 0, 0]])), 0)
    gt1 = VoxelLevel.from_keys(pack_keys(torch.tensor([[0, 0, 0], [5, 5, 5]])), 1)
    cand1 = VoxelLevel.from_keys(pack_keys(torch.tensor([[0, 0, 0], [5, 5, 5], [2, 2, 2]])), 1)
    lab = structure_labels(cand1, [gt0, gt1], 1)
    order = {tuple(c.tolist()): int(v) for c, v in zip(cand1.coords, lab)}
    assert order == {(0, 0, 0): 2, (5, 5, 5): 1, (2, 2, 2): 0}


def test_untrained_model_is_the_training_free_kernel():
    """Identity initialisation: <psi, F> = 1, normals = splatted input normals, grid = input grid."""
    torch.manual_seed(0)
    u, n = _sphere(800)
    model = LearnedKernelModel(SPEC)
    pred = model.predict(u, n, True)
    enc = encoder_grids(u, SPEC.depth)
    for lv, e in zip(pred.levels, enc):
        assert torch.equal(lv.keys, e.keys)
    for F in pred.feats:
        assert torch.allclose(F, torch.full_like(F, 0.5))
    alphas, _ = model.solve(pred, u, tol=1e-6, max_iter=2000)
    from recon.backends.kernel.learned.kernel import evaluate_field

    f_learned = model.field(pred, alphas, u)
    a0, _ = model.solve(type(pred)(**{**pred.__dict__, "feats": [None] * 3, "psis": [None] * 3}), u, tol=1e-6,
                        max_iter=2000)
    f_free = evaluate_field(u, pred.levels, a0, [None] * 3, [None] * 3)
    assert torch.allclose(f_learned, f_free, atol=1e-4)
    # the fit vanishes on the sphere (mean |f| at the input points, finest-voxel units)
    assert float(f_learned.detach().abs().mean()) < 0.05


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    gt_p, gt_n = _sphere(20000, r=0.35, seed=1)
    shape = D.ShapeGT("sphere", gt_p.numpy(), gt_n.numpy())
    cfg = TrainConfig(model=SPEC)
    cfg.data.voxel_size = 1 / 24
    cfg.samples.surface = cfg.samples.uniform = cfg.samples.band = 800
    sample = D.draw_sample(shape, rng, 600, 600, [0.02], 1.0)
    model = LearnedKernelModel(SPEC)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_now():
        return train_step(model, sample, cfg, np.random.default_rng(7), torch.device("cpu"))[0]

    before = loss_now()
    opt.zero_grad()
    before.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.heads[0].feat[-1].weight.grad.abs().sum() > 0  # gradients reach the kernel features via the solve
    opt.step()
    after = float(loss_now().detach())
    assert after < float(before.detach())


def test_direct_normal_loss_is_zero_for_true_normals_and_two_for_flipped():
    """The stage-1 normal loss: 1 - cos against splatted ground-truth normals (untrained head = the input splat)."""
    from recon.backends.kernel.learned.losses import direct_normal_loss

    u, n = _sphere(4000, r=6.0)
    model = LearnedKernelModel(SPEC)
    dense_u, dense_n = _sphere(40000, r=6.0, seed=3)
    good = direct_normal_loss(model.predict(u, n, True), dense_u, dense_n)
    bad = direct_normal_loss(model.predict(u, -n, True), dense_u, dense_n)
    assert float(good.detach()) < 0.01  # the splat of the true normals at voxel centres (sphere curvature only)
    assert float(bad.detach()) > 1.98


def test_pretrain_step_lowers_the_normal_loss_on_wrong_normals():
    """Stage 1 (no solve) learns: random input normals, a few steps of the direct normal loss."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    gt_p, gt_n = _sphere(20000, r=0.35, seed=1)
    shape = D.ShapeGT("sphere", gt_p.numpy(), gt_n.numpy())
    spec = ModelSpec(depth=3, channels=(8, 8, 8), kernel_dim=4, psi_hidden=8, udf_dim=4, normal_hidden=16)
    cfg = TrainConfig(model=spec)
    cfg.data.voxel_size = 1 / 24
    cfg.samples.uniform = cfg.samples.band = 500
    sample = D.draw_sample(shape, rng, 800, 800, [0.01], 1.0)
    sample.normals = rng.normal(size=sample.normals.shape).astype(np.float32)
    sample.normals /= np.linalg.norm(sample.normals, axis=1, keepdims=True)
    model = LearnedKernelModel(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(25):
        loss, parts = pretrain_step(model, sample, cfg, np.random.default_rng(7), torch.device("cpu"))
        first = parts["normal_direct"] if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, parts = pretrain_step(model, sample, cfg, np.random.default_rng(7), torch.device("cpu"))
    assert first > 0.7  # random normals: about 1 - E[cos] = 1
    assert parts["normal_direct"] < 0.5 * first


def test_training_voxel_follows_the_inference_rule():
    """data.voxel_size null: the finest voxel of a training cloud is the learned path's inference voxel."""
    from recon.backends.kernel.scale import voxel_size_from_detail

    p, _ = _sphere(3000, r=0.4)
    cfg = TrainConfig(model=ModelSpec(min_resolution=80.0))
    cfg.data.voxel_size = None
    want = voxel_size_from_detail(p, 0.6, min_resolution=80.0)
    assert sample_voxel_size(p.numpy(), cfg) == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(np.sqrt(4 * np.pi * 0.4**2) / 80.0, rel=0.1)  # the cap binds at 3k points
    cfg.data.voxel_size = 0.02
    assert sample_voxel_size(p.numpy(), cfg) == 0.02


def test_model_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = LearnedKernelModel(SPEC)
    model.meta = {"command": "test"}
    p = model.save(tmp_path / "w.pt")
    back = LearnedKernelModel.load(p)
    assert back.spec == SPEC and back.meta == {"command": "test"}
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    from recon.errors import InputError

    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(InputError):
        LearnedKernelModel.load(tmp_path / "bad.pt")


def test_procedural_shapes_are_unit_size_with_outward_normals():
    sh = D.procedural_shape(3, n=4000)
    assert sh is not None
    ext = sh.points.max(0) - sh.points.min(0)
    assert ext.max() == pytest.approx(1.0, abs=1e-5)
    from scipy.spatial import cKDTree

    q = sh.points + 0.02 * sh.normals  # just outside: IMLS distance ~ +0.02
    sdf = D.imls_sdf(cKDTree(sh.points), sh.points.astype(np.float64), sh.normals.astype(np.float64), q, 0.02)
    assert np.median(sdf) == pytest.approx(0.02, abs=0.005)


def test_config_model_field_validation():
    from recon.backends.kernel import KernelConfig
    from recon.errors import ConfigError

    assert KernelConfig().model == "none"
    with pytest.raises(ConfigError):
        KernelConfig(model="bogus")
    with pytest.raises(ConfigError):
        KernelConfig(weights="w.pt")  # weights without model learned


def test_missing_weights_names_the_training_command(tmp_path):
    from recon.backends.kernel import KernelConfig, KernelReconstructor
    from recon.errors import ConfigError

    u, n = _sphere(200, r=0.5)
    with pytest.raises(ConfigError, match="recon train kernel"):
        cfg = KernelConfig(model="learned", weights=str(tmp_path / "none.pt"))
        KernelReconstructor(cfg).reconstruct(u.numpy(), n.numpy())


def test_cli_errors_are_one_line_exit_2(tmp_path):
    import typer
    from typer.testing import CliRunner

    from recon_apps.train_kernel_cli import register

    app = typer.Typer()
    train_app = typer.Typer()
    app.add_typer(train_app, name="train")
    register(train_app)
    from recon.errors import ReconError

    runner = CliRunner()
    res = runner.invoke(app, ["train", "kernel", "--config", str(tmp_path / "missing.yaml")])
    assert isinstance(res.exception, ReconError) and res.exception.exit_code == 2
    assert "configs/train/kernel-train.yaml" in str(res.exception)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 0\n")
    res = runner.invoke(app, ["train", "kernel", "--config", str(cfg), "--steps", "0"])
    assert isinstance(res.exception, ReconError) and "--steps" in str(res.exception)
    cfg.write_text("bogus_key: 1\n")
    res = runner.invoke(app, ["train", "kernel", "--config", str(cfg)])
    assert isinstance(res.exception, ReconError) and "bogus_key" in str(res.exception)


def test_cli_trains_resumes_and_records(tmp_path):
    """`recon train kernel` end to end on a tiny config: weights + record; --resume continues the step count."""
    import json

    import typer
    from typer.testing import CliRunner

    from recon.backends.kernel.learned.model import LearnedKernelModel
    from recon_apps.train_kernel_cli import register

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"""seed: 3
output: {tmp_path / 'w' / 'lk.pt'}
cache_dir: {tmp_path / 'cache'}
device: cpu
model: {{depth: 2, channels: [4, 4], kernel_dim: 2, psi_hidden: 4, udf_dim: 2, groups: 2}}
data: {{n_procedural: 1, meshes: [], n_dense: 3000, n_min: 300, n_max: 400, voxel_size: 0.0625,
        gt_grid_points: 3000, normal_prob: 1.0}}
train: {{steps: 2, checkpoint_every: 1, solver_max_iter: 200}}
samples: {{surface: 200, uniform: 200, band: 200}}
""")
    app = typer.Typer()
    train_app = typer.Typer()
    app.add_typer(train_app, name="train")
    register(train_app)
    runner = CliRunner()
    res = runner.invoke(app, ["train", "kernel", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    w = tmp_path / "w" / "lk.pt"
    m = LearnedKernelModel.load(w)
    assert m.meta["steps"] == 2 and m.meta["seed"] == 3 and "train kernel" in m.meta["command"]
    rec = json.loads(w.with_suffix(".json").read_text())
    assert rec["config"]["data"]["n_procedural"] == 1
    out = tmp_path / "other"
    res = runner.invoke(app, ["train", "kernel", "--config", str(cfg), "--resume", "--steps", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    m3 = LearnedKernelModel.load(out / "lk.pt")
    assert m3.meta["steps"] == 3 and m3.meta["runs"][-1]["resumed_at_step"] == 2
    assert len((out / "lk_history.csv").read_text().strip().splitlines()) == 1 + 3
