"""GVKF building blocks that do not need the rasteriser: Gaussians, init, losses, densification."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.backends.gvkf.densify import DensifyStats, densify_and_prune, remap_optimizer, reset_opacity
from recon.backends.gvkf.gaussians import GaussianSet, quat_to_rotmat, rotmat_to_quat
from recon.backends.gvkf.init import initial_gaussians, visual_hull_points
from recon.backends.gvkf.losses import normals_from_depth, photometric_loss, ssim

from tests.backends.gvkf.helpers import ring_cameras, sphere_masks


def test_quaternion_round_trip_and_covariance():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(200, 4, generator=g)
    R = quat_to_rotmat(q)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(200, 3, 3), atol=1e-5)
    assert torch.allclose(torch.det(R), torch.ones(200), atol=1e-5)
    assert torch.allclose(quat_to_rotmat(rotmat_to_quat(R)), R, atol=1e-5)
    gs = GaussianSet.from_values(torch.zeros(200, 3), torch.rand(200, 3, generator=g) + 0.1, quats=q)
    cov = gs.covariances()
    # the eigenvalues of R S^2 R^T are the squared scales
    ev = torch.linalg.eigvalsh(cov.double()).sort(-1).values
    assert torch.allclose(ev, (gs.scales().double() ** 2).sort(-1).values, atol=1e-6)


def test_gaussians_save_load_round_trip(tmp_path):
    g = GaussianSet.from_values(torch.randn(50, 3), torch.rand(50) + 0.01, quats=torch.randn(50, 4),
                                opacities=torch.rand(50) * 0.9 + 0.05, colours=torch.rand(50, 3) * 0.9 + 0.05)
    p = g.save(tmp_path / "g.npz")
    h = GaussianSet.load(p)
    for a, b in zip(g.parameters(), h.parameters()):
        assert torch.equal(a, b)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a recon Gaussians file"):
        GaussianSet.load(tmp_path / "other.npz")


def test_visual_hull_of_a_sphere_lies_on_it():
    cams = ring_cameras(12, 48)
    masks = sphere_masks(cams, 0.5)
    pts = visual_hull_points(masks, cams, resolution=64, agreement=1.0)
    r = np.linalg.norm(pts, axis=1)
    # 12 views carve a sphere to within a few voxels (2/64) on the outside
    assert len(pts) > 500
    assert np.median(r) == pytest.approx(0.5, abs=0.05)
    assert r.min() > 0.5 - 2 * 2 / 64


def test_initial_gaussians_methods():
    cams = ring_cameras(8, 32)
    masks = sphere_masks(cams, 0.5)
    images = np.repeat(masks[..., None], 3, -1) * 0.8
    g, how = initial_gaussians("auto", 500, images=images, masks=masks, cameras=cams, hull_resolution=48)
    assert how == "hull" and len(g) == 500
    assert float(g.colours().mean()) > 0.5  # the sphere is bright in every view
    g, how = initial_gaussians("auto", 300, images=images, masks=None, cameras=cams)
    assert how == "random" and float(g.means.norm(dim=1).max()) <= 0.9 + 1e-6
    pts = np.random.default_rng(0).normal(size=(400, 3)) * 0.2
    g, how = initial_gaussians("auto", 100, images=images, masks=masks, cameras=cams,
                               points3d=(pts, np.full((400, 3), 0.3)))
    assert how == "points3d" and len(g) == 100
    assert torch.allclose(g.colours(), torch.full((100, 3), 0.3), atol=1e-4)
    with pytest.raises(ValueError, match="no COLMAP points3D"):
        initial_gaussians("points3d", 10, images=images, masks=masks, cameras=cams)


def test_ssim_and_photometric_loss():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(32, 40, 3, generator=g)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-5)
    b = (a + 0.2 * torch.randn(32, 40, 3, generator=g)).clamp(0, 1)
    assert float(ssim(a, b)) < 0.9
    assert float(photometric_loss(a, a)) == pytest.approx(0.0, abs=1e-5)
    assert float(photometric_loss(a, b, 0.0)) == pytest.approx(float((a - b).abs().mean()), rel=1e-6)


def test_normals_from_depth_of_a_tilted_plane():
    cams = ring_cameras(1, 32, elevations=(0.0,))
    K = torch.as_tensor(cams.K[0], dtype=torch.float64)
    c2w = torch.as_tensor(cams.cam_to_world[0], dtype=torch.float64)
    n_true = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    n_true /= n_true.norm()
    # plane through the origin with normal n_true: intersect every pixel ray
    from recon.ops.rays import image_rays

    o, d = image_rays(cams.K[0], cams.cam_to_world[0], 32, 32)
    o, d = torch.from_numpy(o), torch.from_numpy(d)
    t = -(o @ n_true) / (d @ n_true)
    z = (t[:, None] * d) @ c2w[:3, 2]
    n = normals_from_depth(z.reshape(32, 32), K, c2w)
    facing = n_true if float(n_true @ (c2w[:3, 3])) > 0 else -n_true
    assert torch.allclose(n, facing.expand_as(n), atol=1e-6)


def _adam(g: GaussianSet) -> torch.optim.Adam:
    params = [p.requires_grad_(True) for p in g.parameters()]
    opt = torch.optim.Adam([{"params": [p]} for p in params])
    loss = sum((p ** 2).sum() for p in params)
    loss.backward()
    opt.step()
    return opt


def test_densify_clones_splits_prunes_and_carries_adam_state():
    gen = torch.Generator().manual_seed(0)
    means = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    scales = torch.tensor([0.005, 0.05, 0.005, 0.005])
    g = GaussianSet.from_values(means, scales, opacities=torch.tensor([0.5, 0.5, 0.5, 0.001]))
    opt = _adam(g)
    stats = DensifyStats(torch.tensor([1.0, 1.0, 0.0, 1.0]), torch.ones(4))  # 0 cloned, 1 split, 2 kept, 3 pruned
    new, source = densify_and_prune(g, stats, grad_threshold=0.5, dense_scale=0.01, prune_opacity=0.01,
                                    prune_scale=0.5, max_gaussians=100, generator=gen)
    # kept: 0, 2 (3 is pruned: transparent; 1 is replaced by 2 children); clone of 0; 2 children of 1
    assert len(new) == 5
    assert source.tolist() == [0, 2, 0, -1, -1]
    children = new.means[3:]
    assert torch.all((children - torch.tensor([1.0, 0, 0])).norm(dim=1) < 0.05 * 5)
    assert torch.allclose(new.scales()[3:], (g.scales()[1] / 1.6).expand(2, 3), rtol=1e-5)
    old_m = opt.state[g.means]["exp_avg"].clone()
    remap_optimizer(opt, g.parameters(), new.parameters(), source)
    m = opt.state[new.means]["exp_avg"]
    assert torch.equal(m[:3], old_m[[0, 2, 0]]) and torch.all(m[3:] == 0)
    assert opt.param_groups[0]["params"][0] is new.means
    reset_opacity(new, opt, 0.05)
    assert float(new.opacities().detach().max()) <= 0.05 + 1e-6
    assert torch.all(opt.state[new.opacity_logits]["exp_avg"] == 0)


def test_densify_respects_the_budget():
    gen = torch.Generator().manual_seed(0)
    g = GaussianSet.from_values(torch.randn(20, 3), torch.full((20,), 0.001))
    stats = DensifyStats(torch.arange(20, dtype=torch.float32), torch.ones(20))
    new, source = densify_and_prune(g, stats, grad_threshold=0.5, dense_scale=0.01, prune_opacity=0.0,
                                    prune_scale=1.0, max_gaussians=25, generator=gen)
    assert len(new) == 25
    assert sorted(source[20:].tolist()) == [15, 16, 17, 18, 19]  # the largest gradients were cloned
