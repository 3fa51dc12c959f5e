import numpy as np
import pytest
import torch

from recon.backends.kernel.basis import axis_weights, basis_reference, bspline, bspline_deriv, level_stencil
from recon.backends.kernel.svh import OFFSETS27


def test_partition_of_unity_is_two():
    t = np.linspace(-3, 3, 1001)
    s = sum(bspline(t - i) for i in range(-6, 7))
    np.testing.assert_allclose(s, 2.0, atol=1e-12)


def test_profile_values_and_support():
    np.testing.assert_allclose(bspline(np.array([0.0, 0.5, 1.0, 1.5, -1.0, 2.0])), [1.5, 1.0, 0.25, 0.0, 0.25, 0.0])


def test_derivative_matches_finite_differences():
    t = np.linspace(-1.7, 1.7, 341) + 1e-3
    eps = 1e-6
    fd = (bspline(t + eps) - bspline(t - eps)) / (2 * eps)
    np.testing.assert_allclose(bspline_deriv(t), fd, atol=1e-5)
    tt = torch.tensor(t)
    np.testing.assert_allclose(bspline_deriv(tt).numpy(), fd, atol=1e-5)


def test_axis_weights_match_profile():
    tau = torch.rand(100, 3, dtype=torch.float64)
    w, dw = axis_weights(tau)
    for j, o in enumerate((-1, 0, 1)):
        t = tau - 0.5 - o
        np.testing.assert_allclose(w[..., j].numpy(), bspline(t.numpy()), atol=1e-12)
        np.testing.assert_allclose(dw[..., j].numpy(), bspline_deriv(t.numpy()), atol=1e-12)


@pytest.mark.parametrize("level", [0, 2])
def test_vectorised_stencil_matches_slow_reference(level):
    rng = np.random.default_rng(3)
    u = rng.uniform(-7, 7, size=(50, 3))
    base, w, g = level_stencil(torch.tensor(u), level, grad=True)
    # slow reference: all voxels of a box around the points, dense
    s = 2**level
    lo, hi = np.floor(u.min(0) / s) - 2, np.floor(u.max(0) / s) + 3
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    val_ref, grad_ref = basis_reference(u, grid, level)
    for k in range(len(u)):
        nb = base[k].numpy() + OFFSETS27.numpy()
        cols = [int(np.nonzero((grid == c).all(1))[0][0]) for c in nb]
        np.testing.assert_allclose(w[k].numpy(), val_ref[k, cols], atol=1e-12)
        np.testing.assert_allclose(g[k].numpy(), grad_ref[k, cols], atol=1e-12)
        # the 27 voxels carry every non-zero basis function
        np.testing.assert_allclose(w[k].sum().item(), val_ref[k].sum(), atol=1e-12)
    np.testing.assert_allclose(w.sum(1).numpy(), 8.0, atol=1e-12)  # 2^3
