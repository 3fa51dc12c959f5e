"""Encodings: the grid_sample fast path against explicit trilinear gathers (values, gradients,
second derivatives), hashed levels, and the frequency encoding."""

from __future__ import annotations

import math

import torch

from recon.backends.volsdf.encoding import GridEncoding, frequency_dim, frequency_encoding, hash_index


def _points(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * 0.999


def test_grid_fast_path_matches_reference_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    enc = GridEncoding([4, 7, 12], n_features=2, log2_size=12, init_scale=1.0, generator=g).double()
    assert not any(enc.hashed)
    x = _points(300).requires_grad_(True)
    fast = enc(x)
    ref = enc(x, reference=True)
    assert torch.allclose(fast, ref, atol=1e-12)
    w = torch.randn(fast.shape[1], dtype=torch.float64, generator=g)
    (gf,) = torch.autograd.grad((fast @ w).sum(), x, create_graph=True)
    (gr,) = torch.autograd.grad((ref @ w).sum(), x, create_graph=True)
    assert torch.allclose(gf, gr, atol=1e-10)
    # the eikonal-style loss on the gradient backpropagates into the tables identically (double backward)
    lf = ((gf.norm(dim=-1) - 1) ** 2).mean()
    lr = ((gr.norm(dim=-1) - 1) ** 2).mean()
    tf = torch.autograd.grad(lf, list(enc.tables), retain_graph=True)
    tr = torch.autograd.grad(lr, list(enc.tables), retain_graph=True)
    for a, b in zip(tf, tr):
        assert torch.allclose(a, b, atol=1e-10)
    assert max(float(a.abs().max()) for a in tf) > 1e-3


def test_grid_interpolates_vertex_values_exactly():
    gen = torch.Generator().manual_seed(1)
    enc = GridEncoding([4], n_features=3, log2_size=12, init_scale=1.0, generator=gen).double()
    ijk = torch.tensor([[0, 0, 0], [4, 4, 4], [1, 2, 3], [3, 0, 2]])
    x = ijk.double() / 4 * 2 - 1
    table = enc.level_table(0)
    idx = ijk[:, 0] + 5 * (ijk[:, 1] + 5 * ijk[:, 2])
    assert torch.allclose(enc(x), table[idx], atol=1e-12)
    # linear along an edge
    a, b = x[2], x[2] + torch.tensor([0.5, 0, 0], dtype=torch.float64)
    mid = enc(((a + b) / 2)[None])
    assert torch.allclose(mid, 0.5 * (enc(a[None]) + enc(b[None])), atol=1e-12)


def test_hashed_level_gradient_matches_finite_differences():
    enc = GridEncoding([8, 40], n_features=2, log2_size=10, init_scale=1.0,
                       generator=torch.Generator().manual_seed(2)).double()
    assert enc.hashed == [False, True]
    x = _points(50, seed=3).requires_grad_(True)
    y = enc(x)
    w = torch.randn(y.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    (g,) = torch.autograd.grad((y @ w).sum(), x)
    h = 1e-6
    for k in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[k] = h
        fd = ((enc(x.detach() + e) - enc(x.detach() - e)) @ w) / (2 * h)
        assert torch.allclose(g[:, k], fd, atol=1e-5)
    idx = hash_index(torch.randint(0, 41, (1000, 3)), 1024)
    assert int(idx.min()) >= 0 and int(idx.max()) < 1024


def test_coarse_to_fine_mask_silences_fine_levels():
    gen = torch.Generator().manual_seed(0)
    enc = GridEncoding([4, 8, 16], n_features=2, log2_size=14, init_scale=1.0, generator=gen)
    enc.set_active_levels(1)
    x = _points(20).float().requires_grad_(True)
    y = enc(x)
    assert torch.count_nonzero(y[:, 2:]) == 0 and torch.count_nonzero(y[:, :2]) > 0
    y.sum().backward()
    assert enc.tables[1].grad is None or torch.count_nonzero(enc.tables[1].grad) == 0


def test_frequency_encoding():
    x = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64)
    e = frequency_encoding(x, 2)
    assert e.shape == (1, frequency_dim(3, 2)) == (1, 15)
    expect = torch.cat([x, torch.sin(x), torch.cos(x), torch.sin(2 * x), torch.cos(2 * x)], -1)
    assert torch.allclose(e, expect)
    assert math.isclose(float(frequency_encoding(x, 0).sum()), float(x.sum()))
