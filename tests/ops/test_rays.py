"""Rays and projection: a projected point's ray passes through it; pixel centres at +0.5."""

import numpy as np
import torch

from recon.ops.rays import image_rays, pixel_rays, project


def _camera(seed: int = 0):
    rng = np.random.default_rng(seed)
    K = np.array([[120.0, 0.3, 33.0], [0, 118.0, 29.5], [0, 0, 1]])
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    c2w = np.eye(4)
    c2w[:3, :3] = q
    c2w[:3, 3] = rng.normal(size=3) * 3
    return K, c2w


def test_projection_and_ray_round_trip():
    K, c2w = _camera()
    rng = np.random.default_rng(1)
    pts_cam = np.c_[rng.uniform(-1, 1, (50, 2)), rng.uniform(1, 5, 50)]
    pts = pts_cam @ c2w[:3, :3].T + c2w[:3, 3]
    uv, z = project(K, c2w, pts)
    np.testing.assert_allclose(z, pts_cam[:, 2], atol=1e-12)
    o, d, cos = pixel_rays(K, c2w, uv)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1, atol=1e-12)
    t = z / cos  # distance along the ray
    np.testing.assert_allclose(o + d * t[:, None], pts, atol=1e-9)


def test_principal_point_pixel_looks_down_the_axis():
    K = np.array([[100.0, 0, 2.0], [0, 100.0, 1.0], [0, 0, 1]])
    o, d = image_rays(K, np.eye(4), 4, 2)  # pixel (i=1, j=0) has centre (1.5, 0.5) ...
    assert o.shape == (8, 3)
    # the principal point (2, 1) lies between pixels 1 and 2 of row 0 and row 1
    mid = (d[1] + d[2] + d[5] + d[6]) / 4
    np.testing.assert_allclose(mid / np.linalg.norm(mid), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(d[0] / d[0][2], [(0.5 - 2) / 100, (0.5 - 1) / 100, 1], atol=1e-12)


def test_torch_matches_numpy_batched_cameras():
    K, c2w = _camera(3)
    uv = np.random.default_rng(2).uniform(0, 64, (20, 2))
    o, d, c = pixel_rays(K, c2w, uv)
    Kb = torch.tensor(np.broadcast_to(K, (20, 3, 3)).copy())
    Cb = torch.tensor(np.broadcast_to(c2w, (20, 4, 4)).copy())
    ot, dt, ct = pixel_rays(Kb, Cb, torch.tensor(uv))
    np.testing.assert_allclose(ot.numpy(), o, atol=1e-12)
    np.testing.assert_allclose(dt.numpy(), d, atol=1e-12)
    np.testing.assert_allclose(ct.numpy(), c, atol=1e-12)
