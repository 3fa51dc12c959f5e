"""VolSDF's error-bounded sampler (paper Alg. 1), vectorised over rays.

Notation (per ray, samples t_0 < ... < t_{N-1}, signed distances d_k, intervals delta_i = t_{i+1} - t_i):

* left Riemann sum of the density: R_k = sum_{j<k} sigma_j delta_j;
* per-interval error term (Theorem 1 with alpha = 1 / beta): e_i = delta_i^2 / (4 beta^2) exp(-d*_i / beta),
  where d*_i lower-bounds the distance from the segment to the surface (:func:`interval_dstar`);
* E_{k+1} = sum_{i<=k} e_i; the opacity error bound B = max_k exp(-R_k) (exp(E_{k+1}) - 1).

The sampler starts from n uniform samples and beta+ from Lemma 2, then repeatedly (a) evaluates d at
new samples, (b) finds per ray the smallest beta+ in [beta, beta+] with B(beta+) <= eps (bisection),
(c) if some ray still needs beta+ > beta, adds n samples drawn from the per-interval bound. Finally
m samples are drawn by inverse CDF from the weights rendered with beta+, and merged with the ray's
near and far points and a few random members of the evaluation set. Everything runs without gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from recon.backends.volsdf.density import sdf_to_density


@dataclass
class SamplerOutput:
    """Result of :func:`error_bounded_sample` for R rays.

    Attributes:
        t: (R, S) sorted final sample distances along the rays (S = m + 2 + n_extra).
        t_eval: (R, N) the last evaluation set (sorted) on which the bound was computed.
        d_eval: (R, N) signed distances at ``t_eval``.
        beta_plus: (R,) the beta used for sampling (>= beta; == beta where converged).
        bound: (R,) opacity error bound B(beta_plus) on ``t_eval``.
        eikonal_index: (R,) int64 index into ``t`` of one random sample per ray (near-surface eikonal point).
        t_surface: (R,) midpoint of the evaluation interval of largest weight under beta+ (the likely surface hit).
        iterations: number of evaluation rounds run.
    """

    t: torch.Tensor
    t_eval: torch.Tensor
    d_eval: torch.Tensor
    beta_plus: torch.Tensor
    bound: torch.Tensor
    eikonal_index: torch.Tensor
    t_surface: torch.Tensor
    iterations: int


def interval_dstar(t: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Lower bound d* on the distance from each interval to the surface (paper Theorem 1).

    With a = delta_i, b = |d_i|, c = |d_{i+1}|: d* = b if a^2 + b^2 <= c^2; c if a^2 + c^2 <= b^2; else the
    height of the triangle (a, b, c) over side a when b + c > a; else 0. d* = 0 where d changes sign.

    Args:
        t: (R, N) sorted sample distances; d: (R, N) signed distances.

    Returns:
        (R, N - 1) non-negative d*.
    """
    a = t[:, 1:] - t[:, :-1]
    b = d[:, :-1].abs()
    c = d[:, 1:].abs()
    s = 0.5 * (a + b + c)
    area2 = (s * (s - a) * (s - b) * (s - c)).clamp_min(0.0)
    height = 2.0 * torch.sqrt(area2) / a.clamp_min(1e-12)
    first = a * a + b * b <= c * c
    second = a * a + c * c <= b * b
    third = b + c > a
    zero = torch.zeros_like(a)
    dstar = torch.where(first, b, torch.where(second, c, torch.where(third, height, zero)))
    same_sign = (d[:, :-1] > 0) == (d[:, 1:] > 0)
    return torch.where(same_sign, dstar, zero)


def opacity_error_bound(t: torch.Tensor, d: torch.Tensor, dstar: torch.Tensor, beta: torch.Tensor | float,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Opacity error bound of the left Riemann sum (paper Eq. 13-14) for a given beta.

    Args:
        t: (R, N) sorted samples; d: (R, N) distances; dstar: (R, N - 1) from :func:`interval_dstar`.
        beta: scalar or (R, 1).

    Returns:
        (B (R,), per-interval bounds (R, N - 1)) with bound_k = exp(-R_k) (exp(E_{k+1}) - 1).
    """
    delta = t[:, 1:] - t[:, :-1]
    sigma = sdf_to_density(d[:, :-1], beta)
    riemann = torch.cumsum(sigma * delta, -1)
    riemann = torch.cat([torch.zeros_like(riemann[:, :1]), riemann[:, :-1]], -1)  # R_k, k = 0..N-2
    err = delta * delta / (4.0 * beta * beta) * torch.exp(-dstar / beta)
    e_cum = torch.cumsum(err, -1).clamp(max=60.0)  # E_{k+1}; exp(60) keeps products finite
    per = torch.exp(-riemann) * torch.expm1(e_cum)
    return per.max(-1).values, per


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int, deterministic: bool,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-CDF samples of a piecewise-constant density over sorted bins.

    Args:
        bins: (R, N) sorted interval edges.
        weights: (R, N - 1) non-negative interval weights (need not be normalised; all-zero rows are uniform).
        n: samples per ray.
        deterministic: use u = linspace(0, 1, n) instead of uniform random u.
        generator: random source when not deterministic.

    Returns:
        (R, n) samples in [bins[:, 0], bins[:, -1]], sorted when deterministic.
    """
    R, N = bins.shape
    w = weights + 1e-12
    cdf = torch.cumsum(w / w.sum(-1, keepdim=True), -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1).contiguous()  # (R, N)
    if deterministic:
        u = torch.linspace(0.0, 1.0, n, device=bins.device, dtype=bins.dtype).expand(R, n).contiguous()
    else:
        u = torch.rand(R, n, device=bins.device, dtype=bins.dtype, generator=generator)
    idx = torch.searchsorted(cdf, u, right=True)
    lo = (idx - 1).clamp(0, N - 1)
    hi = idx.clamp(0, N - 1)
    c_lo, c_hi = cdf.gather(1, lo), cdf.gather(1, hi)
    b_lo, b_hi = bins.gather(1, lo), bins.gather(1, hi)
    den = c_hi - c_lo
    frac = torch.where(den > 1e-12, (u - c_lo) / den.clamp_min(1e-12), torch.zeros_like(den))
    return b_lo + frac.clamp(0.0, 1.0) * (b_hi - b_lo)


def render_weights(t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Volume-rendering weights w_i = (1 - exp(-sigma_i delta_i)) exp(-sum_{j<i} sigma_j delta_j).

    Args:
        t: (R, N) sorted samples; sigma: (R, N) densities (the last sample only closes the ray).

    Returns:
        (R, N - 1) weights of the intervals [t_i, t_{i+1}] (left-endpoint rule).
    """
    sd = sigma[:, :-1] * (t[:, 1:] - t[:, :-1])
    acc = torch.cumsum(sd, -1)
    trans = torch.exp(-torch.cat([torch.zeros_like(acc[:, :1]), acc[:, :-1]], -1))
    return (1.0 - torch.exp(-sd)) * trans


def _stratified(near: torch.Tensor, far: torch.Tensor, n: int, jitter: bool,
                generator: torch.Generator | None) -> torch.Tensor:
    """(R, n) samples from near to far: uniform, or jittered within the cells around each sample."""
    u = torch.linspace(0.0, 1.0, n, device=near.device, dtype=near.dtype)
    t = near[:, None] + (far - near)[:, None] * u
    if jitter:
        mid = 0.5 * (t[:, 1:] + t[:, :-1])
        lower = torch.cat([t[:, :1], mid], -1)
        upper = torch.cat([mid, t[:, -1:]], -1)
        t = lower + (upper - lower) * torch.rand(t.shape, device=t.device, dtype=t.dtype, generator=generator)
    return t


def _merge(t: torch.Tensor, d: torch.Tensor, t_new: torch.Tensor, d_new: torch.Tensor,
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge new samples (R, M) and their distances into sorted (R, N) samples."""
    t_all, order = torch.sort(torch.cat([t, t_new], -1), -1)
    return t_all, torch.cat([d, d_new], -1).gather(1, order)


@torch.no_grad()
def error_bounded_sample(
    sdf: Callable[[torch.Tensor], torch.Tensor],
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    beta: torch.Tensor | float,
    *,
    eps: float = 0.1,
    n_eval: int = 64,
    n_samples: int = 32,
    n_extra: int = 16,
    max_iters: int = 3,
    bisection_steps: int = 10,
    train: bool = True,
    generator: torch.Generator | None = None,
) -> SamplerOutput:
    """Sample R rays so that the opacity computed with beta+ is within ``eps`` of the true one.

    Args:
        sdf: (K, 3) positions -> (K,) signed distances (called without gradient).
        rays_o, rays_d: (R, 3) origins and unit directions.
        near, far: (R,) the interval of each ray to render (far > near).
        beta: the density's current beta (scalar).
        eps: target bound of the opacity error.
        n_eval: uniform samples at start and samples added per iteration.
        n_samples: final inverse-CDF samples m.
        n_extra: random members of the evaluation set added to the final samples.
        max_iters: evaluation rounds.
        bisection_steps: bisection steps for beta+ per round.
        train: jitter the initial samples, random u for the final draw, random extra members;
            otherwise everything is deterministic.
        generator: random source.

    Returns:
        A :class:`SamplerOutput`.
    """
    beta_t = torch.as_tensor(beta, dtype=rays_o.dtype, device=rays_o.device).reshape(())
    R = rays_o.shape[0]

    def eval_d(t: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        o, v = (rays_o, rays_d) if rows is None else (rays_o[rows], rays_d[rows])
        x = o[:, None, :] + t[..., None] * v[:, None, :]
        return sdf(x.reshape(-1, 3)).reshape(t.shape)

    t = _stratified(near, far, n_eval, train, generator)
    d = eval_d(t)
    delta = t[:, 1:] - t[:, :-1]
    # Lemma 2 with alpha = 1 / beta: beta+ = sqrt(sum delta^2 / (4 log(1 + eps))) bounds B <= eps for any d.
    beta_plus = torch.sqrt((delta * delta).sum(-1) / (4.0 * math.log1p(eps)))
    beta_plus = torch.maximum(beta_plus, beta_t)
    iterations = 0
    for it in range(max_iters):
        iterations = it + 1
        dstar = interval_dstar(t, d)
        b_true, _ = opacity_error_bound(t, d, dstar, beta_t)
        ok = b_true <= eps
        lo = beta_t.expand(R).clone()
        hi = beta_plus.clone()
        for _ in range(bisection_steps):
            mid = 0.5 * (lo + hi)
            good = opacity_error_bound(t, d, dstar, mid[:, None])[0] <= eps
            hi = torch.where(good, mid, hi)
            lo = torch.where(good, lo, mid)
        beta_plus = torch.where(ok, beta_t.expand(R), hi)
        converged = bool((beta_plus <= beta_t).all())
        if converged or it == max_iters - 1:
            break
        _, per = opacity_error_bound(t, d, dstar, beta_plus[:, None])
        t_new = sample_pdf(t, per + 1e-6, n_eval, deterministic=True)
        # Only rays that still need beta+ > beta get new samples; the others repeat existing samples
        # (zero-length intervals change neither the bound nor the weights) and cost no evaluation.
        todo = beta_plus > beta_t
        keep = torch.linspace(0, t.shape[1] - 1, n_eval, device=t.device).round().long().expand(R, n_eval)
        d_new = d.gather(1, keep)
        t_new = torch.where(todo[:, None], t_new, t.gather(1, keep))
        if bool(todo.any()):
            d_new = d_new.clone()
            d_new[todo] = eval_d(t_new[todo], todo)
        t, d = _merge(t, d, t_new, d_new)

    dstar = interval_dstar(t, d)
    bound, _ = opacity_error_bound(t, d, dstar, beta_plus[:, None])
    w = render_weights(t, sdf_to_density(d, beta_plus[:, None]))
    t_fine = sample_pdf(t, w + 1e-5, n_samples, deterministic=not train, generator=generator)
    N = t.shape[1]
    if n_extra > 0:
        if train:
            pick = torch.argsort(torch.rand(R, N, device=t.device, generator=generator), -1)[:, :n_extra]
        else:
            pick = torch.linspace(0, N - 1, n_extra, device=t.device).round().long().expand(R, n_extra)
        extra = t.gather(1, pick)
    else:
        extra = t[:, :0]
    t_final, _ = torch.sort(torch.cat([t_fine, near[:, None], far[:, None], extra], -1), -1)
    S = t_final.shape[1]
    if train:
        eik = torch.randint(0, S, (R,), device=t.device, generator=generator)
    else:
        eik = torch.full((R,), S // 2, device=t.device, dtype=torch.long)
    k = w.argmax(-1, keepdim=True)
    t_surf = 0.5 * (t.gather(1, k) + t.gather(1, k + 1))[:, 0]
    return SamplerOutput(t_final, t, d, beta_plus, bound, eik, t_surf, iterations)
