"""Error-bounded sampler: d* lower bound, inverse CDF, weights, and the opacity bound on a sphere SDF."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.backends.volsdf.density import sdf_to_density
from recon.backends.volsdf.renderer import sphere_intersection
from recon.backends.volsdf.sampler import (error_bounded_sample, interval_dstar, opacity_error_bound, render_weights,
                                           sample_pdf)


def _dstar_brute(a: float, b: float, c: float, n: int = 20001) -> float:
    """Distance from the segment [0, a] (on the x axis) to the complement of the union of the balls
    B((0, 0), b) and B((a, 0), c), by sampling the union's boundary (the problem is axially symmetric)."""
    th = np.linspace(0, np.pi, n)
    p1 = np.stack([b * np.cos(th), b * np.sin(th)], -1)
    p2 = np.stack([a + c * np.cos(th), c * np.sin(th)], -1)
    p1 = p1[np.linalg.norm(p1 - [a, 0], axis=1) >= c]
    p2 = p2[np.linalg.norm(p2, axis=1) >= b]
    pts = np.concatenate([p1, p2])
    x = np.clip(pts[:, 0], 0, a)
    return float(np.min(np.hypot(pts[:, 0] - x, pts[:, 1]))) if len(pts) else 0.0


def test_dstar_is_a_lower_bound_and_tight_in_the_triangle_case():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.05, 1.0, 300)
    b = rng.uniform(0.0, 1.0, 300)
    c = rng.uniform(0.0, 1.0, 300)
    t = torch.tensor(np.stack([np.zeros_like(a), a], -1))
    d = torch.tensor(np.stack([b, c], -1))
    got = interval_dstar(t, d)[:, 0].numpy()
    brute = np.array([_dstar_brute(*abc) for abc in zip(a, b, c)])
    assert np.all(got <= brute + 1e-6)  # a valid lower bound everywhere
    triangle = (a * a + b * b > c * c) & (a * a + c * c > b * b) & (b + c > a)
    assert triangle.sum() > 30
    assert np.allclose(got[triangle], brute[triangle], atol=2e-4)  # exact where the balls' rims meet
    # a sign change inside the interval means the surface may be on it
    d_sign = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    assert float(interval_dstar(torch.tensor([[0.0, 0.6]], dtype=torch.float64), d_sign)[0, 0]) == 0.0


def test_sample_pdf_matches_interp_reference():
    g = torch.Generator().manual_seed(0)
    bins = torch.sort(torch.rand(5, 9, generator=g, dtype=torch.float64), -1).values
    w = torch.rand(5, 8, generator=g, dtype=torch.float64)
    w[2] = 0.0  # all-zero row: uniform in t-index space
    w[3, 2:5] = 0.0  # empty intervals get no samples
    for det in (True, False):
        gen = torch.Generator().manual_seed(1)
        s = sample_pdf(bins, w, 50, deterministic=det, generator=gen)
        gen = torch.Generator().manual_seed(1)
        u = torch.linspace(0, 1, 50, dtype=torch.float64).expand(5, 50) if det else \
            torch.rand(5, 50, dtype=torch.float64, generator=gen)
        for r in range(5):  # slow reference: one ray at a time
            ww = w[r].numpy() + 1e-12
            cdf = np.concatenate([[0.0], np.cumsum(ww / ww.sum())])
            ref = np.interp(u[r].numpy(), cdf, bins[r].numpy())
            assert np.allclose(s[r].numpy(), ref, atol=1e-9)
    s = sample_pdf(bins, w, 200, deterministic=True)
    lo, hi = bins[3, 2], bins[3, 5]
    assert not bool(((s[3] > lo + 1e-9) & (s[3] < hi - 1e-9)).any())


def test_render_weights_match_loop():
    g = torch.Generator().manual_seed(0)
    t = torch.sort(torch.rand(4, 12, generator=g, dtype=torch.float64), -1).values
    sigma = torch.rand(4, 12, generator=g, dtype=torch.float64) * 20
    w = render_weights(t, sigma)
    for r in range(4):
        T = 1.0
        for i in range(11):
            a = 1 - np.exp(-float(sigma[r, i]) * float(t[r, i + 1] - t[r, i]))
            assert abs(float(w[r, i]) - T * a) < 1e-12
            T *= 1 - a


def _sphere_rays(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays from a distance of 2.5 aimed at random points of the radius-0.8 ball (hits and grazes)."""
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, 3, generator=g, dtype=torch.float64)
    o = 2.5 * o / o.norm(dim=-1, keepdim=True)
    tgt = torch.randn(n, 3, generator=g, dtype=torch.float64)
    tgt = 0.8 * tgt / tgt.norm(dim=-1, keepdim=True) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    d = tgt - o
    return o, d / d.norm(dim=-1, keepdim=True)


def _reference_opacity(o, d, near, far, t_query, beta, radius, n=200_001):
    """Opacity 1 - exp(-int_near^t sigma) at t_query (R, K), by a dense trapezoid quadrature."""
    u = torch.linspace(0, 1, n, dtype=torch.float64)
    out = torch.empty_like(t_query)
    for r in range(o.shape[0]):  # reference: one ray at a time
        t = near[r] + (far[r] - near[r]) * u
        x = o[r] + t[:, None] * d[r]
        s = sdf_to_density(x.norm(dim=-1) - radius, beta[r])
        trapezoids = 0.5 * (s[1:] + s[:-1]) * (t[1:] - t[:-1])
        cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(trapezoids, 0)])
        out[r] = 1 - torch.exp(-torch.from_numpy(np.interp(t_query[r].numpy(), t.numpy(), cum.numpy())))
    return out


@pytest.mark.parametrize("beta", [0.01, 0.002])
def test_opacity_error_bound_holds_on_sphere(beta):
    radius, eps = 0.5, 0.1
    o, d = _sphere_rays(24)
    near, far, hit = sphere_intersection(o, d)
    assert bool(hit.all())
    sdf = lambda x: x.norm(dim=-1) - radius  # noqa: E731 - the exact sphere SDF
    out = error_bounded_sample(sdf, o, d, near, far, beta, eps=eps, n_eval=64, n_samples=32, n_extra=8,
                               max_iters=5, train=False)
    t = out.t_eval
    bp = out.beta_plus
    assert bool((out.bound <= eps + 1e-9).all())
    assert bool((bp >= beta - 1e-12).all())
    assert float((bp <= beta).double().mean()) >= 0.5  # most rays converge to the true beta
    # the rectangle-rule opacity with beta+ versus the dense reference, at every evaluation sample
    sigma = sdf_to_density(out.d_eval, bp[:, None])
    riemann = torch.cumsum(sigma[:, :-1] * (t[:, 1:] - t[:, :-1]), -1)
    approx = 1 - torch.exp(-riemann)  # at t_1 .. t_{N-1}
    ref = _reference_opacity(o, d, near, far, t[:, 1:], bp, radius)
    err = (approx - ref).abs()
    dstar = interval_dstar(t, out.d_eval)
    _, per = opacity_error_bound(t, out.d_eval, dstar, bp[:, None])
    assert bool((err <= per + 2e-4).all())  # Theorem: |O - O_hat| <= bound on each interval
    assert float(err.max()) <= eps + 2e-4
    # the final samples lie in [near, far], sorted
    assert bool((out.t[:, 1:] >= out.t[:, :-1]).all())
    assert bool((out.t >= near[:, None] - 1e-9).all() and (out.t <= far[:, None] + 1e-9).all())


def test_uniform_sampling_alone_violates_the_bound():
    """The same budget of uniform samples misses eps at small beta: the bound test above can fail."""
    radius, beta, eps = 0.5, 0.002, 0.1
    o, d = _sphere_rays(24)
    near, far, _ = sphere_intersection(o, d)
    t = near[:, None] + (far - near)[:, None] * torch.linspace(0, 1, 64, dtype=torch.float64)
    dist = (o[:, None] + t[..., None] * d[:, None]).norm(dim=-1) - radius
    sigma = sdf_to_density(dist, beta)
    approx = 1 - torch.exp(-torch.cumsum(sigma[:, :-1] * (t[:, 1:] - t[:, :-1]), -1))
    ref = _reference_opacity(o, d, near, far, t[:, 1:], torch.full((24,), beta, dtype=torch.float64), radius)
    assert float((approx - ref).abs().max()) > eps


def test_sampler_is_deterministic_in_eval_and_seeded_in_train():
    o, d = _sphere_rays(16, seed=3)
    o, d = o.float(), d.float()
    near, far, _ = sphere_intersection(o, d)
    sdf = lambda x: x.norm(dim=-1) - 0.5  # noqa: E731
    a = error_bounded_sample(sdf, o, d, near, far, 0.01, train=False)
    b = error_bounded_sample(sdf, o, d, near, far, 0.01, train=False)
    assert torch.equal(a.t, b.t)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    c = error_bounded_sample(sdf, o, d, near, far, 0.01, train=True, generator=g1)
    e = error_bounded_sample(sdf, o, d, near, far, 0.01, train=True, generator=g2)
    assert torch.equal(c.t, e.t) and torch.equal(c.eikonal_index, e.eikonal_index)
    assert a.t.shape == (16, 32 + 2 + 16)
