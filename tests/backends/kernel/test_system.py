import numpy as np
import pytest
import torch

from recon.backends.kernel.splat import normal_confidence, splat_normals
from recon.backends.kernel.svh import build_hierarchy
from recon.backends.kernel.cell_matrices import NormalConstraints
from recon.backends.kernel.system import assemble
from recon.backends.kernel.system_reference import assemble_reference
from tests.backends.kernel.helpers import sphere_points


def _tiny(seed=0, n=60, weighted=False):
    p, nrm = sphere_points(n, radius=3.3, seed=seed, centre=(0.2, -0.4, 0.1))
    u = torch.tensor(p, dtype=torch.float32)
    levels = build_hierarchy(u, 4)
    cons = []
    for d in range(2):
        idx, tgt, mass = splat_normals(u, torch.tensor(nrm), levels[d])
        cons.append(NormalConstraints(d, idx, tgt, normal_confidence(mass) if weighted else None))
    if weighted:
        assert 0 < float(cons[0].weights.min()) < 1 == float(cons[1].weights.max())  # weighted and full targets
    return u, levels, cons


def _dense(m):
    return m.toarray() if hasattr(m, "toarray") else m.to_dense().numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_assembly_matches_dense_reference(seed):
    u, levels, cons = _tiny(seed)
    kw = dict(pos_weight=1e4, normal_weight=1e4, reg_weight=0.7)
    sys_ = assemble(u, levels, cons, **kw, cell_batch=37)  # small batches exercise the batching
    A_ref, b_ref = assemble_reference(u.numpy().astype(np.float64), levels, cons, **kw)
    A = _dense(sys_.matrix)
    assert A.shape == A_ref.shape
    scale = np.abs(A_ref).max()
    assert np.abs(A - A_ref).max() < 1e-6 * scale
    assert np.abs(sys_.rhs.numpy() - b_ref).max() < 1e-6 * np.abs(b_ref).max()
    # same sparsity (no missing coupling): every reference entry above round-off is present
    assert ((np.abs(A_ref) > 1e-6 * scale) <= (A != 0)).all()
    np.testing.assert_allclose(sys_.diagonal.numpy(), np.diag(A_ref), rtol=1e-5)
    np.testing.assert_allclose(A, A.T, atol=1e-6 * scale)


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_assembly_with_confidence_weights_matches_dense_reference(seed):
    u, levels, cons = _tiny(seed, weighted=True)
    kw = dict(pos_weight=1e4, normal_weight=1e4, reg_weight=0.7)
    sys_ = assemble(u, levels, cons, **kw, cell_batch=37)
    A_ref, b_ref = assemble_reference(u.numpy().astype(np.float64), levels, cons, **kw)
    A = _dense(sys_.matrix)
    scale = np.abs(A_ref).max()
    # float32 moments: errors ~1e-7 of the largest entry; lightly weighted targets leave diagonal
    # entries small enough that this is up to ~2e-5 of their own size
    assert np.abs(A - A_ref).max() < 1e-6 * scale
    assert np.abs(sys_.rhs.numpy() - b_ref).max() < 1e-6 * np.abs(b_ref).max()
    np.testing.assert_allclose(sys_.diagonal.numpy(), np.diag(A_ref), rtol=1e-5, atol=1e-6 * scale)
    # the weights matter: unweighted targets give a different system
    A1, _ = assemble_reference(u.numpy().astype(np.float64), levels, _tiny(seed)[2], **kw)
    assert np.abs(A1 - A_ref).max() > 1e-3 * scale


def test_normal_confidence_weights_targets_by_splatted_mass():
    u = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [5.9, 5.9, 5.9]], dtype=torch.float32)
    n = torch.tensor([[0, 0, 1.0]] * 3 + [[0, 1.0, 0]])
    lv = build_hierarchy(u, 1)[0]
    idx, tgt, mass = splat_normals(u, n, lv)
    c = lv.coords[idx]
    w = normal_confidence(mass)
    # the three points at a voxel centre give it mass 3 (weight 1); the lone point at (5.9, 5.9, 5.9)
    # gives its own voxel's centre (5.5) trilinear weight 0.6^3 = 0.216 and the far corner 0.4^3
    at = lambda xyz: int(torch.nonzero((c == torch.tensor(xyz)).all(1))[0])  # noqa: E731
    assert float(mass[at([0, 0, 0])]) == pytest.approx(3.0) and float(w[at([0, 0, 0])]) == 1.0
    assert float(w[at([5, 5, 5])]) == pytest.approx(0.216, rel=1e-5)
    assert float(w[at([6, 6, 6])]) == pytest.approx(0.064, rel=1e-5)
    assert float(normal_confidence(mass, full=0.5)[at([5, 5, 5])]) == pytest.approx(0.432, rel=1e-5)


def test_splat_drops_conflicting_normals():
    u = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [5.5, 5.5, 5.5]], dtype=torch.float32)
    n = torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [0, 1.0, 0]])
    lv = build_hierarchy(u, 1)[0]
    idx, tgt, mass = splat_normals(u, n, lv)
    centres = lv.coords[idx]
    assert (centres >= 4).all()  # the two opposite normals cancel: their voxels are dropped
    np.testing.assert_allclose(tgt.numpy(), np.tile([0, 1.0, 0], (len(idx), 1)), atol=1e-6)
