"""Training on an analytic sphere scene: the zero level moves to the true radius; checkpoints resume
to the identical state; Ctrl-C writes a checkpoint."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.posed import estimate_background
from recon.backends.volsdf.trainer import VolSDFTrainer, pixel_batch_rays
from recon.ops.rays import image_rays

from tests.backends.volsdf.helpers import orbit_cameras, render_sphere

RADIUS = 0.7

#: A tiny, fast configuration (the defaults are sized for real scenes).
TINY = VolSDFConfig(grid_levels=4, grid_min_res=8, grid_max_res=32, grid_start_levels=4, sdf_width=32,
                    feature_dim=8, color_width=32, n_eval=32, n_samples=16, n_extra=8, sampler_iters=2,
                    rays_per_step=128, init_fit_steps=150, init_radius=0.5, threads=1, warmup_steps=10,
                    steps=200, time_budget=None, beta_final=5e-3)


@pytest.fixture(scope="module")
def scene():
    cams = orbit_cameras(12, 24)
    imgs, masks = render_sphere(cams, RADIUS)
    return cams, imgs, masks


def _radius(tr: VolSDFTrainer, n: int = 200) -> float:
    """Mean radius of the SDF's zero level along random directions."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(n, 3, generator=g)
    u = u / u.norm(dim=-1, keepdim=True)
    t = torch.linspace(0, 1, 401)
    with torch.no_grad():
        d = tr.model.sdf((u[:, None] * t[None, :, None]).reshape(-1, 3)).reshape(n, -1)
    i = (d < 0).float().argmin(1).clamp(min=1)
    d0, d1 = d.gather(1, (i - 1)[:, None])[:, 0], d.gather(1, i[:, None])[:, 0]
    return float((t[i - 1] + (t[i] - t[i - 1]) * d0 / (d0 - d1)).mean())


def test_training_moves_zero_level_to_true_radius(scene):
    cams, imgs, masks = scene
    tr = VolSDFTrainer(TINY, imgs, masks, cams)
    before = abs(_radius(tr) - RADIUS)
    assert before > 0.15
    stats = tr.train()
    after = abs(_radius(tr) - RADIUS)
    assert stats.step == TINY.steps
    assert after < 0.25 * before and after < 0.04, (before, after)
    assert stats.psnr > 20
    assert stats.beta <= 0.1


def test_training_without_masks_on_white_background(scene):
    cams, imgs, _ = scene
    cfg = dataclasses.replace(TINY, steps=150)
    tr = VolSDFTrainer(cfg, imgs, None, cams)
    assert torch.allclose(tr.model.background, torch.ones(3))
    before = abs(_radius(tr) - RADIUS)
    tr.train()
    assert abs(_radius(tr) - RADIUS) < 0.5 * before


def test_checkpoint_resume_gives_the_same_state(scene, tmp_path):
    cams, imgs, masks = scene
    cfg = dataclasses.replace(TINY, steps=8, grid_level_steps=3, grid_start_levels=2)
    straight = VolSDFTrainer(cfg, imgs, masks, cams)
    straight.train()

    first = VolSDFTrainer(cfg, imgs, masks, cams, checkpoint_dir=tmp_path)
    first.train(max_steps=4)
    assert (tmp_path / "volsdf.pt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volsdf.pt"]  # no temporary files left
    second = VolSDFTrainer(cfg, imgs, masks, cams, checkpoint_dir=tmp_path)
    assert second.load_checkpoint()
    assert second.stats.step == 4
    second.train()
    assert second.stats.step == 8
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(straight.generator.get_state(), second.generator.get_state())


def test_keyboard_interrupt_writes_checkpoint(scene, tmp_path):
    cams, imgs, masks = scene
    cfg = dataclasses.replace(TINY, steps=50)
    tr = VolSDFTrainer(cfg, imgs, masks, cams, checkpoint_dir=tmp_path)

    def stop(trainer):
        if trainer.stats.step >= 3:
            raise KeyboardInterrupt

    stats = tr.train(callback=stop, callback_every=1e-9)
    assert stats.interrupted and stats.step == 3
    state = torch.load(tmp_path / "volsdf.pt", weights_only=True)
    assert state["step"] == 3


def test_background_estimate():
    imgs = np.zeros((2, 4, 4, 3), np.float32)
    imgs[:, 1:3, 1:3] = 0.5
    masks = np.zeros((2, 4, 4), np.float32)
    masks[:, 1:3, 1:3] = 1
    assert np.allclose(estimate_background(imgs + 0.25, masks), 0.25)
    assert np.allclose(estimate_background(imgs, None), 0.0)
    assert np.allclose(estimate_background(imgs + 0.9, None), 1.0)
    assert np.allclose(estimate_background(imgs, masks, "white"), 1.0)


def test_pixel_batch_rays_match_image_rays(scene):
    cams = scene[0]
    W, H = cams.width, cams.height
    K = torch.from_numpy(cams.K)
    c2w = torch.from_numpy(cams.cam_to_world)
    for c in (0, 5):
        o, d = pixel_batch_rays(K, c2w, torch.arange(c * W * H, (c + 1) * W * H), W, H)
        o_ref, d_ref = image_rays(cams.K[c], cams.cam_to_world[c], W, H)
        assert np.allclose(o.numpy(), o_ref, atol=1e-6) and np.allclose(d.numpy(), d_ref, atol=1e-6)


def test_resume_with_other_sizes_is_a_clear_error(scene, tmp_path):
    from recon.backends.volsdf.backend import VolSDFBackend
    from recon.errors import InputError

    cams, imgs, masks = scene
    VolSDFBackend(dataclasses.replace(TINY, steps=2)).fit_arrays(imgs, masks, cams, checkpoint_dir=tmp_path)
    other = VolSDFBackend(dataclasses.replace(TINY, steps=4, sdf_width=16))
    with pytest.raises(InputError, match="cannot resume"):
        other.fit_arrays(imgs, masks, cams, checkpoint_dir=tmp_path, resume=True)
