import numpy as np
import pytest
import torch

from recon.backends.kernel.splat import splat_normals
from recon.backends.kernel.svh import build_hierarchy
from recon.backends.kernel.system import NormalConstraints, assemble, assemble_reference
from tests.backends.kernel.helpers import sphere_points


def _tiny(seed=0, n=60):
    p, nrm = sphere_points(n, radius=3.3, seed=seed, centre=(0.2, -0.4, 0.1))
    u = torch.tensor(p, dtype=torch.float32)
    levels = build_hierarchy(u, 4)
    cons = [NormalConstraints(d, *splat_normals(u, torch.tensor(nrm), levels[d])) for d in range(2)]
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


def test_splat_drops_conflicting_normals():
    u = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [5.5, 5.5, 5.5]], dtype=torch.float32)
    n = torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [0, 1.0, 0]])
    lv = build_hierarchy(u, 1)[0]
    idx, tgt = splat_normals(u, n, lv)
    centres = lv.coords[idx]
    assert (centres >= 4).all()  # the two opposite normals cancel: their voxels are dropped
    np.testing.assert_allclose(tgt.numpy(), np.tile([0, 1.0, 0], (len(idx), 1)), atol=1e-6)
