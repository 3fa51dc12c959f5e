"""Laplace-CDF density: Psi_beta against the analytic Laplace CDF, and opacity across a plane."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.backends.volsdf.density import LaplaceDensity, laplace_cdf, sdf_to_density
from recon.backends.volsdf.sampler import render_weights


@pytest.mark.parametrize("beta", [1e-3, 0.02, 0.5])
def test_psi_matches_laplace_cdf(beta):
    from scipy.stats import laplace

    s = torch.linspace(-20 * beta, 20 * beta, 2001, dtype=torch.float64)
    ref = torch.from_numpy(laplace.cdf(s.numpy(), loc=0.0, scale=beta))
    assert torch.allclose(laplace_cdf(s, beta), ref, atol=1e-13, rtol=0)
    # never overflows far from the surface
    far = torch.tensor([-1e3, 1e3], dtype=torch.float64)
    assert torch.equal(laplace_cdf(far, 1e-4), torch.tensor([0.0, 1.0], dtype=torch.float64))


def _plane_opacity(t: np.ndarray, t0: float, beta: float) -> np.ndarray:
    """Analytic opacity 1 - exp(-int_0^t sigma) for the plane d(t) = t0 - t (inside beyond t0)."""
    below = 0.5 * (np.exp((np.minimum(t, t0) - t0) / beta) - np.exp(-t0 / beta))
    after = np.where(t > t0, (t - t0) / beta - 0.5 * (1 - np.exp(-(t - t0) / beta)), 0.0)
    return 1.0 - np.exp(-(below + after))


@pytest.mark.parametrize("beta", [0.01, 0.05])
def test_opacity_across_plane(beta):
    t0 = 0.5
    t = torch.linspace(0, 1, 200_001, dtype=torch.float64)[None]
    sigma = sdf_to_density(t0 - t, beta)
    w = render_weights(t, sigma)
    opacity = torch.cumsum(w, -1)[0].numpy()  # opacity at t[1:]
    ref = _plane_opacity(t[0, 1:].numpy(), t0, beta)
    assert np.abs(opacity - ref).max() < 2e-3
    # half the density mass before the surface: opacity there is 1 - exp(-1/2)
    k = int(np.searchsorted(t[0, 1:].numpy(), t0))
    assert abs(opacity[k] - (1 - np.exp(-0.5))) < 2e-3
    # the ray is opaque a few beta behind the surface, transparent a few beta before it
    assert opacity[-1] > 1 - 1.01 * np.exp(-(1 - t0) / beta) - 1e-12
    kb = int(np.searchsorted(t[0, 1:].numpy(), t0 - 6 * beta))
    assert opacity[kb] < 0.5 * np.exp(-6) * 1.05
    # the weights (the surface's "hit" distribution) peak within the plane's beta-neighbourhood
    peak = float(t[0, int(torch.argmax(w[0]))])
    assert t0 - beta <= peak <= t0 + beta


def test_learned_beta():
    dens = LaplaceDensity(beta_init=0.1, beta_min=1e-4)
    assert abs(float(dens.beta().detach()) - 0.1) < 1e-7
    with torch.no_grad():
        dens.beta_param.fill_(-0.3)
    assert abs(float(dens.beta().detach()) - (0.3 + 1e-4)) < 1e-7  # beta = |param| + beta_min > 0
    d = torch.tensor([-1.0, 0.0, 1.0])
    s = dens(d)
    b = float(dens.beta().detach())
    assert torch.allclose(s, torch.tensor([1 - 0.5 * np.exp(-1 / b), 0.5, 0.5 * np.exp(-1 / b)]).float() / b)
