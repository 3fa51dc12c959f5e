"""Brute-force reference for the Gaussian rasteriser: every pixel against every Gaussian, no tiles.

Slow and obviously correct, for tests only. Written from the textbook formulas with unit rays from
:func:`recon.ops.rays.pixel_rays` (independent of the linear-form tricks in rasterizer.py):

- Gaussians whose mean has camera z <= ``near`` are dropped; the rest are sorted by mean camera z;
- per pixel ray (o, d), ``o' = S^-1 R^T (o - mu)``, ``d' = S^-1 R^T d``, ``A = d'.d'``,
  ``B = 2 o'.d'``, ``C = o'.o'``, ``t* = -B / 2A``, ``alpha = min(0.99, o_i exp(-(C - B^2/4A)/2))``,
  skipped below 1/255 or where the camera z of ``o + t* d`` is <= ``near``;
- ``w_i = alpha_i prod_{j<i} (1 - alpha_j)`` over all Gaussians (no early termination);
- normal ``n_i = -Sigma^-1 (mu - o) / |Sigma^-1 (mu - o)|`` (GOF's ``-Sigma^-1 d`` for the ray
  through the mean); distortion as the explicit double sum
  ``sum_{i<j} 2 w_i w_j (m_j - m_i)`` over compositing order (|m_i - m_j| when m is sorted).
"""

from __future__ import annotations

import torch

from recon.backends.gvkf.gaussians import GaussianSet
from recon.backends.gvkf.projection import ALPHA_MIN, project_gaussians
from recon.backends.gvkf.rasterizer import ALPHA_MAX, RasterOutput, ndc_depth
from recon.ops.rays import pixel_rays


def rasterize_reference(gaussians: GaussianSet, K: torch.Tensor, cam_to_world: torch.Tensor, width: int,
                        height: int, *, background: torch.Tensor | None = None, near: float = 0.01,
                        dist_near: float = 0.2, dist_far: float = 100.0, pixel_chunk: int = 32) -> RasterOutput:
    """Same outputs as :func:`recon.backends.gvkf.rasterizer.rasterize` (exact, no early stop).

    Loops over blocks of ``pixel_chunk`` pixels (the distortion double sum is (pixels, N, N)).
    """
    dev, dt = gaussians.means.device, gaussians.means.dtype
    K = torch.as_tensor(K, dtype=dt, device=dev)
    c2w = torch.as_tensor(cam_to_world, dtype=dt, device=dev)
    bg = (torch.zeros(3, dtype=dt, device=dev) if background is None
          else torch.as_tensor(background, dtype=dt, device=dev).reshape(3))
    n = len(gaussians)
    mu, R, s = gaussians.means, gaussians.rotations(), gaussians.scales()
    op, col = gaussians.opacities(), gaussians.colours()
    radii = project_gaussians(mu, R, s, op, K, c2w, width, height, near).radii

    z_mean = (mu - c2w[:3, 3]) @ c2w[:3, 2]
    keep = torch.nonzero(z_mean.detach() > near).squeeze(1)
    keep = keep[torch.sort(z_mean.detach()[keep], stable=True).indices]
    mu, R, s, op, col = mu[keep], R[keep], s[keep], op[keep], col[keep]
    Minv = R.transpose(1, 2) / s[:, :, None]                          # S^-1 R^T, (G, 3, 3)
    sigma_inv = Minv.transpose(1, 2) @ Minv                           # R S^-2 R^T
    g = (sigma_inv @ (mu - c2w[:3, 3])[:, :, None])[:, :, 0]         # Sigma^-1 (mu - o)
    nrm = -g / g.norm(dim=-1, keepdim=True)                           # (G, 3)

    jj, ii = torch.meshgrid(torch.arange(height, device=dev), torch.arange(width, device=dev), indexing="ij")
    uv = torch.stack([ii.reshape(-1), jj.reshape(-1)], -1).to(dt) + 0.5
    origins, dirs, cosine = pixel_rays(K, c2w, uv)

    outs = {k: [] for k in ("rgb", "T", "depth", "normal", "dist")}
    vis = torch.zeros(keep.shape[0], dtype=torch.bool, device=dev)
    for p0 in range(0, uv.shape[0], pixel_chunk):
        o, d, cs = origins[p0:p0 + pixel_chunk], dirs[p0:p0 + pixel_chunk], cosine[p0:p0 + pixel_chunk]
        o_loc = torch.einsum("gij,pgj->pgi", Minv, o[:, None, :] - mu[None])     # (p, G, 3)
        d_loc = torch.einsum("gij,pj->pgi", Minv, d)
        A = (d_loc * d_loc).sum(-1)
        B = 2.0 * (o_loc * d_loc).sum(-1)
        C = (o_loc * o_loc).sum(-1)
        t_star = -B / (2.0 * A)
        z = t_star * cs[:, None]
        raw = op * torch.exp(-0.5 * (C - B * B / (4.0 * A)))
        valid = (raw >= ALPHA_MIN) & (z > near)
        vis |= valid.any(0)
        alpha = torch.where(valid, raw.clamp_max(ALPHA_MAX), torch.zeros_like(raw))
        ones = torch.ones_like(alpha[:, :1])
        T = torch.cumprod(torch.cat([ones, 1.0 - alpha], 1), 1)            # (p, G + 1)
        w = alpha * T[:, :-1]
        z = torch.where(valid, z, torch.ones_like(z))
        m = ndc_depth(z, dist_near, dist_far)
        later = torch.triu(torch.ones(m.shape[1], m.shape[1], dtype=torch.bool, device=dev), diagonal=1)
        pair = w[:, :, None] * w[:, None, :] * (m[:, None, :] - m[:, :, None])  # [p, i, j]: w_i w_j (m_j - m_i)
        outs["rgb"].append(w @ col + T[:, -1:] * bg)
        outs["T"].append(T[:, -1])
        outs["depth"].append((w * z).sum(1))
        outs["normal"].append(w @ nrm)
        outs["dist"].append(2.0 * (pair * later).sum((1, 2)))
    img = {k: torch.cat(v, 0) for k, v in outs.items()}
    visible = torch.zeros(n, dtype=torch.bool, device=dev)
    visible[keep] = vis
    return RasterOutput(
        rgb=img["rgb"].view(height, width, 3),
        alpha=1.0 - img["T"].view(height, width),
        depth=img["depth"].view(height, width),
        normal=img["normal"].view(height, width, 3),
        distortion=img["dist"].view(height, width),
        visible=visible,
        radii=radii,
    )


__all__ = ["rasterize_reference"]
