"""Learned-kernel building blocks against slow references: sparse conv, assembly, implicit gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.backends.kernel.learned.assembly import build_system, constraint_centres, dense_reference
from recon.backends.kernel.learned.heads import PsiMLP, trilinear
from recon.backends.kernel.learned.implicit_solve import implicit_solve, pcg_torch
from recon.backends.kernel.learned.kernel import evaluate_field
from recon.backends.kernel.learned.sparse_conv import SparseConv3d, neighbour_index, sparse_conv_reference
from recon.backends.kernel.splat import splat_normals
from recon.backends.kernel.svh import VoxelLevel, build_hierarchy, pack_keys
from recon.backends.kernel.cell_matrices import NormalConstraints
from recon.backends.kernel.system_reference import assemble_reference


def _cloud(n=40, seed=0, radius=1.6):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return torch.from_numpy(d * radius + 3.0), torch.from_numpy(d.astype(np.float32))


def _setup(dtype=torch.float64, n=40, seed=0, depth=2):
    u, nrm = _cloud(n, seed)
    u = u.to(dtype)
    levels = build_hierarchy(u.float(), depth)
    cons = []
    for d in range(depth):
        idx, tgt, _ = splat_normals(u.float(), nrm, levels[d], 0.0)
        cons.append(NormalConstraints(d, idx, tgt))
    centres = torch.cat([constraint_centres(levels, c.level, c.index, dtype) for c in cons])
    normals = torch.cat([c.normals for c in cons]).to(dtype)
    return u, levels, cons, centres, normals


def _learned(levels, k=4, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    feats = [(0.5 + 0.3 * torch.randn(len(lv), k, generator=g)).to(dtype) for lv in levels]
    psis = []
    for _ in levels:
        p = PsiMLP(k, 8).to(dtype)
        with torch.no_grad():
            for lin in p.layers:
                lin.weight.copy_(0.5 * torch.randn(lin.weight.shape, generator=g))
                lin.bias.copy_(0.2 * torch.randn(lin.bias.shape, generator=g) + 0.3)
        psis.append(p)
    return feats, psis


def test_sparse_conv_matches_dense_conv3d():
    g = torch.Generator().manual_seed(0)
    axes = (torch.arange(5), torch.arange(4), torch.arange(6))
    ijk = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    level = VoxelLevel.from_keys(pack_keys(ijk + 7), 0)
    x = torch.randn(len(level), 3, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    conv = SparseConv3d(3, 5).double()
    conv.load_dense(w, b)
    out = conv(x, neighbour_index(level))
    ref = sparse_conv_reference(x, level.coords, w, b)
    assert torch.allclose(out, ref, atol=1e-12)
    # sparse subset: absent voxels act as zero padding
    keep = torch.arange(len(level)) % 3 != 0
    sub = VoxelLevel.from_keys(level.keys[keep], 0)
    full = torch.zeros_like(x)
    full[keep] = x[keep]
    ref2 = sparse_conv_reference(full, level.coords, w, b)[keep]
    assert torch.allclose(conv(x[keep], neighbour_index(sub)), ref2, atol=1e-12)


def test_kernel_dim0_matches_training_free_reference():
    u, levels, cons, centres, normals = _setup(torch.float64)
    sys_ = build_system(u, levels, [None, None], [None, None], centres, normals, pos_weight=1e4,
                        normal_weight=1e4, reg_weight=1.0)
    A, b = sys_.to_dense()
    A_ref, b_ref = assemble_reference(u.numpy(), levels, cons, pos_weight=1e4, normal_weight=1e4, reg_weight=1.0)
    scale = np.abs(A_ref).max()
    assert np.abs(A.numpy() - A_ref).max() < 1e-10 * scale
    assert np.abs(b.numpy() - b_ref).max() < 1e-10 * np.abs(b_ref).max()
    assert torch.allclose(sys_.diagonal(), torch.diagonal(A), rtol=1e-12)


def test_normal_confidences_match_the_training_free_weights_and_the_dense_reference():
    """Per-target confidences c_j: the same system as the training-free kernel's weighted constraints
    (kernel_dim 0), the dense reference with features, and matvec / diagonal of the dense A."""
    u, levels, cons, centres, normals = _setup(torch.float64)
    g = torch.Generator().manual_seed(3)
    wcons = [NormalConstraints(c.level, c.index, c.normals, 0.05 + 0.95 * torch.rand(len(c.index), generator=g))
             for c in cons]
    conf = torch.cat([c.weights for c in wcons]).to(torch.float64)
    sys0 = build_system(u, levels, [None, None], [None, None], centres, normals, pos_weight=1e4, normal_weight=1e4,
                        reg_weight=1.0, normal_conf=conf)
    A0, b0 = sys0.to_dense()
    A_ref, b_ref = assemble_reference(u.numpy(), levels, wcons, pos_weight=1e4, normal_weight=1e4, reg_weight=1.0)
    assert np.abs(A0.numpy() - A_ref).max() < 1e-10 * np.abs(A_ref).max()
    assert np.abs(b0.numpy() - b_ref).max() < 1e-10 * np.abs(b_ref).max()
    unweighted, _ = build_system(u, levels, [None, None], [None, None], centres, normals, pos_weight=1e4,
                                 normal_weight=1e4, reg_weight=1.0).to_dense()
    assert (A0 - unweighted).abs().max() > 1e-3 * A_ref.max()  # the confidences change the system
    feats, psis = _learned(levels)
    sys_ = build_system(u, levels, feats, psis, centres, normals, pos_weight=1e4, normal_weight=1e4, reg_weight=0.7,
                        normal_conf=conf)
    A, b = sys_.to_dense()
    A_d, b_d = dense_reference(u, levels, feats, psis, centres, normals, pos_weight=1e4, normal_weight=1e4,
                               reg_weight=0.7, normal_conf=conf)
    assert (A - A_d).abs().max() < 1e-9 * A_d.abs().max()
    assert (b - b_d).abs().max() < 1e-9 * b_d.abs().max()
    x = torch.randn(len(A), generator=g, dtype=torch.float64)
    assert torch.allclose(sys_.matvec(x), A @ x, rtol=1e-10, atol=1e-10 * float((A @ x).abs().max()))
    assert torch.allclose(sys_.diagonal(), torch.diagonal(A), rtol=1e-10)


def test_learned_assembly_matches_dense_reference():
    u, levels, cons, centres, normals = _setup(torch.float64, n=25)
    feats, psis = _learned(levels)
    sys_ = build_system(u, levels, feats, psis, centres, normals, pos_weight=1e4, normal_weight=1e4, reg_weight=0.7)
    A, b = sys_.to_dense()
    A_ref, b_ref = dense_reference(u, levels, feats, psis, centres, normals, pos_weight=1e4, normal_weight=1e4,
                                   reg_weight=0.7)
    assert A.shape == A_ref.shape
    assert (A - A_ref).abs().max() < 1e-9 * A_ref.abs().max()
    assert (b - b_ref).abs().max() < 1e-9 * b_ref.abs().max()
    assert b_ref.abs().max() > 1e-3  # the features really change the system


def test_trilinear_gradient_and_kernel_gradient_vs_finite_differences():
    u, levels, _, _, _ = _setup(torch.float64, n=25)
    feats, psis = _learned(levels)
    alphas = [torch.randn(len(lv), dtype=torch.float64, generator=torch.Generator().manual_seed(3)) for lv in levels]
    q = u[:7] + 0.3
    f, g = evaluate_field(q, levels, alphas, feats, psis, grad=True)
    eps = 1e-6
    for a in range(3):
        d = torch.zeros(3, dtype=torch.float64)
        d[a] = eps
        fp = evaluate_field(q + d, levels, alphas, feats, psis)
        fd = (fp - evaluate_field(q - d, levels, alphas, feats, psis)) / (2 * eps)
        assert torch.allclose(g[:, a], fd, atol=1e-6)
    v, dv, occ = trilinear(q, levels[0], feats[0], grad=True)
    fd = (trilinear(q + torch.tensor([0, eps, 0.0], dtype=torch.float64), levels[0], feats[0])[0]
          - trilinear(q - torch.tensor([0, eps, 0.0], dtype=torch.float64), levels[0], feats[0])[0]) / (2 * eps)
    assert torch.allclose(dv[..., 1], fd, atol=1e-7)


def test_pcg_solves_system():
    u, levels, cons, centres, normals = _setup(torch.float64)
    feats, psis = _learned(levels)
    sys_ = build_system(u, levels, feats, psis, centres, normals, pos_weight=1e4, normal_weight=1e4, reg_weight=1.0)
    A, b = sys_.to_dense()
    res = pcg_torch(sys_.matvec, b, sys_.diagonal(), tol=1e-12, max_iter=5000)
    assert res.converged
    assert torch.allclose(res.x, torch.linalg.solve(A, b), rtol=1e-7, atol=1e-9 * float(res.x.abs().max()))


def test_implicit_solve_gradient_matches_finite_differences():
    u, levels, cons, centres, normals = _setup(torch.float64, n=20)
    feats, psis = _learned(levels)
    g = torch.Generator().manual_seed(5)
    w = torch.randn(sum(len(lv) for lv in levels), dtype=torch.float64, generator=g)
    F0 = [f.clone() for f in feats]
    N0 = normals.clone()
    dirF = [torch.randn(f.shape, dtype=torch.float64, generator=g) for f in feats]
    dirN = torch.randn(normals.shape, dtype=torch.float64, generator=g)

    def loss(t: float, grad: bool = False):
        fs = [(f + t * df).requires_grad_(grad) for f, df in zip(F0, dirF)]
        nn_ = (N0 + t * dirN).requires_grad_(grad)
        s = build_system(u, levels, fs, psis, centres, nn_, pos_weight=1e4, normal_weight=1e4, reg_weight=1.0)
        alpha, _ = implicit_solve(s, tol=1e-13, max_iter=20000)
        val = (w * alpha).sum() + (alpha**2).sum()
        if not grad:
            return float(val.detach())
        val.backward()
        psi_w = psis[0].layers[0].weight.grad.clone()
        return float(val.detach()), sum((f.grad * df).sum() for f, df in zip(fs, dirF)) + (nn_.grad * dirN).sum(), psi_w

    for p in psis:
        p.zero_grad()
    _, directional, psi_grad = loss(0.0, grad=True)
    eps = 1e-5
    fd = (loss(eps) - loss(-eps)) / (2 * eps)
    assert abs(float(directional) - fd) <= 1e-5 * max(1.0, abs(fd))
    # a parameter of psi: one weight entry by central differences
    lin = psis[0].layers[0]
    i, j = 1, 2
    with torch.no_grad():
        lin.weight[i, j] += eps
    lp = loss(0.0)
    with torch.no_grad():
        lin.weight[i, j] -= 2 * eps
    lm = loss(0.0)
    with torch.no_grad():
        lin.weight[i, j] += eps
    assert float(psi_grad[i, j]) == pytest.approx((lp - lm) / (2 * eps), rel=1e-5, abs=1e-7)
