"""Fast paths of the kernel backend against their slow references (lookups, hierarchy, moments,
block matrix, two-scale map, multilevel preconditioner) and the resolution / solver defaults."""

import numpy as np
import pytest
import torch

from recon.backends.kernel import KernelConfig, KernelReconstructor
from recon.backends.kernel.basis import bspline
from recon.backends.kernel.bspline_tables import TWO_SCALE, two_scale_stencil
from recon.backends.kernel.cell_matrices import NormalConstraints, point_moments
from recon.backends.kernel.precond import have_fast_smoother, multilevel_preconditioner, sgs_reference
from recon.backends.kernel.solver import jacobi, pcg
from recon.backends.kernel.splat import splat_normals
from recon.backends.kernel.svh import (OFFSETS125, VoxelLevel, build_hierarchy, build_hierarchy_reference, pack_keys,
                                       unique_coords)
from recon.backends.kernel.system import _to_parents, assemble
from recon.backends.kernel.system_reference import point_moments_reference, to_parents_reference
from recon.errors import ConfigError
from tests.backends.kernel.helpers import sphere_points


def _cloud_u(n=4000, radius=9.3, seed=0):
    p, nrm = sphere_points(n, radius=radius, seed=seed, centre=(0.3, -0.2, 0.45))
    return torch.tensor(p, dtype=torch.float32), torch.tensor(nrm)


def test_hierarchy_matches_per_point_splat_reference():
    u, _ = _cloud_u()
    fast, ref = build_hierarchy(u, 4), build_hierarchy_reference(u, 4)
    for a, b in zip(fast, ref):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.coords, b.coords)
    assert [len(lv) for lv in fast] == [len(lv) for lv in ref] and len(fast[0]) > 1000


def test_dense_lookup_and_offset_lookup_match_binary_search():
    u, _ = _cloud_u()
    lv = build_hierarchy(u, 1)[0]
    assert lv.dense_grid() is not None
    q = lv.coords[::7][:, None, :] + OFFSETS125[None] * torch.tensor([1, -1, 2])  # some beyond the padded box
    dense, ref = lv.lookup(q), lv.lookup(q, dense=False)
    assert torch.equal(dense, ref) and 0.1 < (ref >= 0).float().mean() < 0.9
    off = lv.lookup_offsets(lv.coords[::5], OFFSETS125)
    assert torch.equal(off, lv.lookup(lv.coords[::5][:, None, :] + OFFSETS125[None], dense=False))
    far = torch.tensor([[10_000, 0, 0]])  # outside the grid: falls back, still -1
    assert (lv.lookup_offsets(far, OFFSETS125) == -1).all()


def test_unique_coords_dense_matches_torch_unique():
    ijk = torch.randint(-30, 30, (5000, 3))
    keys, inv = unique_coords(ijk, return_inverse=True)
    ref_keys, ref_inv = torch.unique(pack_keys(ijk), return_inverse=True)
    assert torch.equal(keys, ref_keys) and torch.equal(inv, ref_inv)
    wide = torch.tensor([[0, 0, 0], [400_000, 400_000, 400_000], [0, 0, 0]])  # too large for a dense box
    k2, i2 = unique_coords(wide, return_inverse=True)
    assert len(k2) == 2 and i2.tolist() == [0, 1, 0]


def test_point_moments_batched_match_the_numpy_reference():
    u = torch.rand(3000, 3, dtype=torch.float32) * 6 - 3
    cell = torch.randint(0, 40, (3000,))
    np.testing.assert_allclose(point_moments(u, cell, 40, batch=700).numpy(),
                               point_moments_reference(u, cell, 40).numpy(), rtol=1e-10, atol=1e-9)


def test_parent_moments_by_parity_class_match_per_cell_kronecker_products():
    g = torch.Generator().manual_seed(3)
    cc = torch.randint(-9, 9, (600, 3), generator=g)
    cc = torch.unique(cc, dim=0)  # distinct cells, several per parent
    a = torch.randn(len(cc), 27, 27, generator=g, dtype=torch.float64)
    S = (a @ a.transpose(1, 2)).to(torch.float32)
    r = torch.randn(len(cc), 27, generator=g).to(torch.float32)
    Sp, rp, pc = _to_parents(S, r, cc, cell_batch=50)
    Sr, rr, pr = to_parents_reference(S.double(), r.double(), cc)
    assert torch.equal(pc, pr) and len(pc) < len(cc)
    assert Sp.shape[0] == rp.shape[0] == len(pc) + 1  # the extra last row is the zero "absent cell"
    assert not Sp[-1].any() and not rp[-1].any()
    Sp, rp = Sp[:-1], rp[:-1]
    np.testing.assert_allclose(Sp.numpy(), Sr.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(rp.numpy(), rr.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(Sp.numpy(), Sp.transpose(1, 2).numpy(), atol=1e-3)  # stays symmetric


def test_two_scale_map_reproduces_coarse_basis():
    y = np.linspace(-6, 6, 1201)
    fine = sum(c * bspline(y - (2 * 1 + t) - 0.5) for t, c in zip((-1, 0, 1, 2), TWO_SCALE))
    np.testing.assert_allclose(bspline(y / 2 - 1 - 0.5), fine, atol=1e-12)
    m = two_scale_stencil()
    assert m.shape == (8, 125, 125)
    # parity 0: coarse O = 0 takes fine o = -1, 0, 1, 2 per axis with weights 1/4, 3/4, 3/4, 1/4
    centre = m[0][:, 62].reshape(5, 5, 5)
    np.testing.assert_allclose(centre[1:, 2, 2].numpy() / centre[1:, 2, 2].sum().item(),
                               np.array(TWO_SCALE) / 2.0, atol=1e-12)


def _system(n=2500, seed=1):
    u, nrm = _cloud_u(n, radius=8.0, seed=seed)
    levels = build_hierarchy(u, 4)
    cons = [NormalConstraints(d, *splat_normals(u, nrm, levels[d])) for d in range(2)]
    return assemble(u, levels, cons, pos_weight=1e4, normal_weight=1e4, reg_weight=1.0)


def test_block_symmetric_matvec_matches_full_matrix():
    s = _system()
    A = s.matrix.toarray()
    x = np.random.default_rng(0).normal(size=A.shape[0]).astype(np.float32)
    np.testing.assert_allclose(s.matrix @ x, A @ x, rtol=1e-4, atol=1e-4 * np.abs(A @ x).max())
    np.testing.assert_allclose(A, A.T, atol=1e-6 * np.abs(A).max())
    np.testing.assert_allclose(s.matrix.diagonal(), np.diag(A), rtol=1e-6)
    for d in range(4):
        v = np.random.default_rng(d).normal(size=s.offsets[d + 1] - s.offsets[d]).astype(np.float32)
        np.testing.assert_allclose(s.matrix.column_matvec(d, v), A[:, s.offsets[d]:s.offsets[d + 1]] @ v,
                                   rtol=1e-4, atol=1e-4 * np.abs(A).max() * np.abs(v).max())


@pytest.mark.skipif(not have_fast_smoother(), reason="pyamg not installed")
def test_fast_multilevel_matches_reference_sweeps():
    s = _system()
    r = np.random.default_rng(3).normal(size=s.matrix.shape[0]).astype(np.float32)
    fast = multilevel_preconditioner(s.matrix, s.offsets, fast=True)(r)
    ref = multilevel_preconditioner(s.matrix, s.offsets, fast=False)(r)
    np.testing.assert_allclose(fast, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
    B = s.matrix.diagonal_block(1)
    b = r[s.offsets[1]:s.offsets[2]]
    x = np.zeros_like(b)
    from pyamg.relaxation.relaxation import gauss_seidel

    gauss_seidel(B, x, b, iterations=1, sweep="symmetric")
    np.testing.assert_allclose(x, sgs_reference(B, b), rtol=1e-3, atol=1e-5 * np.abs(x).max())


def test_multilevel_pcg_converges_faster_to_the_same_solution():
    s = _system()
    b = s.rhs.numpy()
    xj, ij = pcg(lambda v: s.matrix @ v, b, jacobi(s.diagonal.numpy()), tol=1e-6)
    xm, im = pcg(lambda v: s.matrix @ v, b, multilevel_preconditioner(s.matrix, s.offsets), tol=1e-6)
    assert ij.converged and im.converged
    assert im.iterations * 3 < ij.iterations  # measured ~6x fewer on the 200k bunny
    A = s.matrix.toarray()
    # both float32 solutions within 1e-3 of the exact (float64 direct) solution of the same system
    exact = np.linalg.solve(A.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(xm, exact, atol=1e-3 * np.abs(exact).max())
    np.testing.assert_allclose(xj, exact, atol=1e-3 * np.abs(exact).max())
    assert np.linalg.norm(A @ xm - b) <= 2e-6 * np.linalg.norm(b)
    # the operator is symmetric (a valid CG preconditioner)
    M = multilevel_preconditioner(s.matrix, s.offsets)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=len(b)).astype(np.float32), rng.normal(size=len(b)).astype(np.float32)
    assert abs(x @ M(y) - y @ M(x)) < 1e-4 * abs(x @ M(x))


def test_sparse_input_voxel_capped_by_min_resolution():
    p, n = sphere_points(5000, 0.5, seed=8)
    f = KernelReconstructor(KernelConfig(device="cpu")).reconstruct(p, n)
    assert f.voxel_size == pytest.approx(np.sqrt(np.pi) / 105, rel=0.02)  # sqrt(area) / 105; density rule ~0.06
    f2 = KernelReconstructor(KernelConfig(device="cpu", min_resolution=None)).reconstruct(p, n)
    assert f2.voxel_size > 2 * f.voxel_size
    assert f.solver_info.converged and f.solver_info.preconditioner in ("multilevel", "jacobi")
    with pytest.raises(ConfigError):
        KernelConfig(preconditioner="amg")
    with pytest.raises(ConfigError):
        KernelConfig(min_resolution=0)


def test_jacobi_and_multilevel_give_the_same_field():
    p, n = sphere_points(3000, 0.5, seed=9)
    fj = KernelReconstructor(KernelConfig(voxel_size=0.05, preconditioner="jacobi", solver_tol=1e-6,
                                          device="cpu")).reconstruct(p, n)
    fm = KernelReconstructor(KernelConfig(voxel_size=0.05, preconditioner="multilevel", solver_tol=1e-6,
                                          device="cpu")).reconstruct(p, n)
    assert fj.solver_info.preconditioner == "jacobi" and fm.solver_info.preconditioner == "multilevel"
    q = p + np.random.default_rng(0).normal(scale=0.02, size=p.shape)
    np.testing.assert_allclose(fm.evaluate(q), fj.evaluate(q), atol=1e-4 * 0.05)
