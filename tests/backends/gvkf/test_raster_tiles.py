"""Projection (EWA radius, exact screen box) and tile binning against slow references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.backends.gvkf.gaussians import GaussianSet
from recon.backends.gvkf.projection import project_gaussians
from recon.backends.gvkf.tiles import bin_gaussians, tile_rects
from recon.ops.rays import image_rays



def test_ewa_radius_of_isotropic_gaussian_on_axis():
    f, z, s = 50.0, 2.0, 0.1
    K = torch.tensor([[f, 0, 20.0], [0, f, 15.0], [0, 0, 1]], dtype=torch.float64)
    gs = GaussianSet.from_values(torch.tensor([[0.0, 0.0, z]]), torch.tensor([s]))
    p = project_gaussians(gs.means.double(), gs.rotations().double(), gs.scales().double(),
                          gs.opacities().double(), K, torch.eye(4, dtype=torch.float64), 40, 30)
    sigma_px = f * float(gs.scales()[0, 0]) / z
    assert float(p.radii[0]) == pytest.approx(3 * math.sqrt(sigma_px ** 2 + 0.3), rel=1e-9)
    torch.testing.assert_close(p.means2d[0], torch.tensor([20.0, 15.0], dtype=torch.float64))


def test_screen_box_contains_every_contributing_pixel():
    """Every pixel whose closed-form alpha reaches 1/255 lies in the Gaussian's box, and the box is
    tight (its pixel extent is not much larger than the support)."""
    g = torch.Generator().manual_seed(0)
    n, W, H = 40, 48, 36
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.5
    means[:, 1] -= 0.3 * torch.rand(n, generator=g, dtype=torch.float64)
    gs = GaussianSet(means, torch.empty(n, 3, dtype=torch.float64).uniform_(-3.5, -1.0, generator=g),
                     torch.randn(n, 4, generator=g, dtype=torch.float64),
                     torch.randn(n, generator=g, dtype=torch.float64) + 1.0, torch.zeros(n, 3, dtype=torch.float64))
    eye = np.array([0.0, -1.4, 0.2])
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = [1, 0, 0], [0, 0, -1], [0, 1, 0], eye
    K = np.array([[40.0, 0, 24.0], [0, 40.0, 18.0], [0, 0, 1]])
    p = project_gaussians(gs.means, gs.rotations(), gs.scales(), gs.opacities(), torch.as_tensor(K),
                          torch.as_tensor(c2w), W, H)
    o, d = image_rays(K, c2w, W, H)
    R, s = gs.rotations().detach().numpy(), gs.scales().detach().numpy()
    mu, op = gs.means.detach().numpy(), gs.opacities().detach().numpy()
    u = (np.arange(W * H) % W) + 0.5
    v = (np.arange(W * H) // W) + 0.5
    checked = 0
    for i in range(n):                                     # slow reference: loop is fine here
        ol, dl = ((o - mu[i]) @ R[i]) / s[i], (d @ R[i]) / s[i]
        A, B, C = (dl * dl).sum(1), 2 * (ol * dl).sum(1), (ol * ol).sum(1)
        t = -B / (2 * A)
        hit = (op[i] * np.exp(-0.5 * (C - B * B / (4 * A))) >= 1 / 255) & (t > 0)
        if not hit.any():
            continue
        checked += 1
        assert bool(p.valid[i]), i
        b = p.bbox[i].numpy()
        assert (u[hit] >= b[0]).all() and (u[hit] <= b[2]).all() and (v[hit] >= b[1]).all() and (v[hit] <= b[3]).all()
        inside_img = (b[0] > 1) and (b[2] < W - 1) and (b[1] > 1) and (b[3] < H - 1)
        if inside_img:                                     # tight: within 1.5 px of the support
            assert b[0] > u[hit].min() - 1.5 and b[2] < u[hit].max() + 1.5
    assert checked >= 15


def _slow_bins(rect, n_tiles, depths, ntx, nty, cap):
    lists = {t: [] for t in range(ntx * nty)}
    for g in sorted(range(len(depths)), key=lambda g: (float(depths[g]), g)):
        if n_tiles[g] == 0:
            continue
        x0, y0, x1, y1 = (int(v) for v in rect[g])
        for ty in range(y0, y1 + 1):
            for tx in range(x0, x1 + 1):
                lists[ty * ntx + tx].append(g)
    return {t: (v if cap is None else v[:cap]) for t, v in lists.items() if v}


@pytest.mark.parametrize("cap", [None, 3])
def test_binning_matches_slow_loops(cap):
    g = torch.Generator().manual_seed(1)
    n, W, H, ts = 60, 37, 29, 8
    lo = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([W + 10.0, H + 10.0]) - 5
    size = torch.rand(n, 2, generator=g, dtype=torch.float64) * 20
    bbox = torch.cat([lo, lo + size], 1)
    valid = torch.rand(n, generator=g) > 0.1
    depths = torch.rand(n, generator=g, dtype=torch.float64).round(decimals=1)   # ties on purpose
    ntx, nty = math.ceil(W / ts), math.ceil(H / ts)
    rect, n_tiles = tile_rects(bbox, valid, W, H, ts)
    tt = bin_gaussians(rect, n_tiles, depths, ntx, nty, cap)
    slow = _slow_bins(rect, n_tiles, depths, ntx, nty, cap)
    got = {int(t): [int(x) for x in row[:c]] for t, row, c in zip(tt.tile_ids, tt.table, tt.counts)}
    assert got == slow
    assert (tt.table[torch.arange(tt.table.shape[1])[None, :] >= tt.counts[:, None]] == n).all()
    assert (tt.counts[:-1] >= tt.counts[1:]).all()
    # A rectangle covers exactly the tiles holding a pixel centre inside the box.
    for gi in range(n):
        if n_tiles[gi] == 0:
            continue
        cols = [i for i in range(W) if bbox[gi, 0] <= i + 0.5 <= bbox[gi, 2]]
        rows = [j for j in range(H) if bbox[gi, 1] <= j + 0.5 <= bbox[gi, 3]]
        assert rect[gi].tolist() == [cols[0] // ts, rows[0] // ts, cols[-1] // ts, rows[-1] // ts]
