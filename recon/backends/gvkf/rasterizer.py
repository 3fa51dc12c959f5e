"""Differentiable tile rasteriser for 3D Gaussians with the ray ("GOF-style") alpha, pure PyTorch.

For the pixel ray ``t -> o + t d`` (camera frame ``d = (x, y, 1)``, ``x, y`` normalised image
coordinates) and Gaussian i with camera-frame mean ``mu``, rotation ``R`` and scales ``s``, let
``M = S^-1 R^T`` (the whitening map), ``o' = -M mu`` and ``d' = M d``. Along the ray the Mahalanobis
distance is ``q(t) = A t^2 + B t + C`` with ``A = |d'|^2``, ``B = 2 o'.d'``, ``C = |o'|^2``;

- alpha: ``alpha_i = min(0.99, o_i exp(-q_min / 2))`` with ``q_min = C - B^2/4A``, evaluated in the
  cancellation-free form ``q_min = |o' x d'|^2 / |d'|^2``; skipped (alpha = 0) below 1/255 or when
  the maximum lies at camera z <= ``near``;
- depth: the ray maximum is at ``t* = -(o'.d') / |d'|^2`` and, since ``d_z = 1``, its camera z is ``t*``;
- normal: GOF's ``-Sigma^-1 d / |Sigma^-1 d|`` (world frame; the normal of the plane holding the
  maxima of all rays parallel to d, always facing the camera), taken per Gaussian for d through its
  mean (across a footprint of a few pixels it changes by ~ pixels / focal length). The gradient of
  the Gaussian at the ray maximum itself is perpendicular to the ray, so it cannot serve.

The per-pixel quantities are functions of seven linear forms in ``(x, y, 1)`` whose coefficients
are precomputed per Gaussian (``M``, ``[o']_x M / sqrt 2``, ``-o'^T M``), so each chunk evaluates
them with one batched matmul of [tiles, 7 K, 3] by [tiles, 3, pixels].

Compositing is front to back over each tile's depth-sorted list (tiles.py), ``chunk`` Gaussians
at a time, carrying transmittance T between chunks; a tile leaves the loop once all its pixels
have ``T < min_transmittance`` (0 disables this; the output then equals the brute-force reference
in raster_reference.py). Weights ``w_i = alpha_i T_i``: ``rgb = sum w_i c_i + T_final bg``,
``alpha = 1 - T_final``, ``depth = sum w_i z_i``, ``normal = sum w_i n_i``, and the distortion
``D = 2 sum_i w_i (m_i sum_{j<i} w_j - sum_{j<i} w_j m_j)`` with ``m = f (z - n) / ((f - n) z)``
(2DGS NDC depth, n = 0.2, f = 100 by default). D equals ``sum_{i,j} w_i w_j |m_i - m_j|`` whenever
the m_i increase in compositing order (the sort is by mean depth, so nearly always). It is
accumulated in O(K) without prefix sums through ``sum_{j<i} w_j = 1 - T_before_i`` and
``sum_{i>j} w_i = T_after_j - T_final``: ``D = 2 (sum_i w_i m_i (1 - T_before_i - T_after_i)
+ T_final sum_i w_i m_i)``.
Gradients reach every GaussianSet tensor through autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from recon.backends.gvkf.gaussians import GaussianSet
from recon.backends.gvkf.projection import ALPHA_MIN, Projection, alpha_cutoff_k2, project_gaussians
from recon.backends.gvkf.tiles import TileTable, bin_gaussians, tile_rects

#: Largest alpha of one Gaussian (3DGS).
ALPHA_MAX = 0.99
#: Linear forms per Gaussian: direction d' (3), cross product o' x d' / sqrt(2) (3), camera z numerator (1).
N_FORMS = 7


@dataclass
class RasterOutput:
    """One rendered view; images are (H, W[, C]) on the Gaussians' device and dtype.

    rgb (H, W, 3) colour incl. ``background * T_final``; alpha (H, W) ``1 - T_final``; depth (H, W)
    ``sum w_i z_i`` (camera z of each ray maximum, not divided by alpha); normal (H, W, 3)
    ``sum w_i n_i`` (world frame, unit n_i facing the camera, not renormalised); distortion (H, W)
    2DGS distortion in NDC depth; visible (N,) bool: some pixel got alpha >= 1/255 from it;
    radii (N,) EWA 3-sigma screen radius in px, 0 when culled.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    distortion: torch.Tensor
    visible: torch.Tensor
    radii: torch.Tensor


def ndc_depth(z: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """2DGS NDC depth ``far (z - near) / ((far - near) z)``: 0 at ``near``, 1 at ``far``."""
    return (far / (far - near)) * (1.0 - near / z)


def gaussian_forms(proj: Projection, scales: torch.Tensor) -> torch.Tensor:
    """Per-Gaussian coefficients (N, 7, 3) of the linear forms in ``(x, y, 1)`` (module docstring).

    Rows 0-2 give ``d' = M d``; rows 3-5 ``(o' x d') / sqrt(2)`` (so ``q_min / 2 = |rows 3-5|^2 / A``);
    row 6 ``-o'.d'`` (so the camera z of the ray maximum is ``row 6 / A``).
    """
    M = proj.rot_cam.transpose(1, 2) / scales[:, :, None]            # S^-1 R_c^T
    o = -(M @ proj.means_cam[:, :, None])[:, :, 0]                    # o' = M (0 - mu_c)
    z = torch.zeros_like(o[:, 0])
    o_x = torch.stack([z, -o[:, 2], o[:, 1], o[:, 2], z, -o[:, 0], -o[:, 1], o[:, 0], z], -1).view(-1, 3, 3)
    return torch.cat([M, (o_x @ M) * math.sqrt(0.5), -(o[:, None, :] @ M)], 1)


def gaussian_normals(proj: Projection, scales: torch.Tensor, cam_to_world: torch.Tensor) -> torch.Tensor:
    """(N, 3) world unit normals ``-Sigma^-1 d / |Sigma^-1 d|`` for d the ray through the mean.

    The per-pixel normal ``-Sigma^-1 d_pixel`` (GOF) changes across a Gaussian's footprint only
    by the footprint's angular size (a few pixels / focal length), so it is taken per Gaussian.
    """
    M = proj.rot_cam.transpose(1, 2) / scales[:, :, None]
    g = (M.transpose(1, 2) @ (M @ proj.means_cam[:, :, None]))[:, :, 0]   # Sigma_c^-1 mu_c
    n = -(g @ cam_to_world[:3, :3].T)
    return n / n.norm(dim=-1, keepdim=True)


def _tile_pixels(tile_ids: torch.Tensor, n_tiles_x: int, tile_size: int, K: torch.Tensor, width: int,
                 height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray coordinates of each tile's pixels.

    Returns:
        pix (T, 3, P) rows (x, y, 1) with ``d = (x, y, 1)`` the camera-frame ray through each pixel
        centre (P = tile_size^2, row-major in the tile), and inside (T, P) bool (pixel in image).
    """
    dev, dt = tile_ids.device, K.dtype
    py, px = torch.meshgrid(torch.arange(tile_size, device=dev), torch.arange(tile_size, device=dev),
                            indexing="ij")
    ty = torch.div(tile_ids, n_tiles_x, rounding_mode="floor")
    tx = tile_ids - ty * n_tiles_x
    i = tx[:, None] * tile_size + px.reshape(1, -1)
    j = ty[:, None] * tile_size + py.reshape(1, -1)
    inside = (i < width) & (j < height)
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    y = (j.to(dt) + 0.5 - cy) / fy
    x = (i.to(dt) + 0.5 - cx - skew * y) / fx
    return torch.stack([x, y, torch.ones_like(x)], 1), inside


def _composite_chunk(feat: torch.Tensor, pix: torch.Tensor, T0: torch.Tensor, near: float | None,
                     extras: bool, dist_near: float, dist_far: float) -> dict:
    """Composite one chunk of K Gaussians over T tiles of P pixels.

    Args:
        feat: (T, K, 22 + C) gathered features: 21 form coefficients, opacity, C attributes
            (colour, then the normal when ``extras``).
        pix: (T, 3, P) pixel ray coordinates; T0 (T, P) transmittance before the chunk.
        near: test the ray maximum's camera z against it (None: known to pass).

    Returns:
        dict with attr (T, C, P) = sum w_i attr_i, T (T, P) after the chunk, valid (T, K, P) bool
        (alpha >= 1/255), and when ``extras``: depth (T, P) = sum w_i z_i, wm (T, P) = sum w_i m_i
        and wmt (T, P) = sum w_i m_i (1 - T_before_i - T_after_i) (see :func:`rasterize`).
    """
    nt, k, _ = feat.shape
    coef = feat[:, :, :21].reshape(nt, k, N_FORMS, 3).transpose(1, 2).reshape(nt, N_FORMS * k, 3)
    f = torch.bmm(coef, pix).view(nt, N_FORMS, k, -1).unbind(1)       # 7 x (T, K, P)
    A = torch.addcmul(torch.addcmul(f[0] * f[0], f[1], f[1]), f[2], f[2])
    half_q = torch.addcmul(torch.addcmul(f[3] * f[3], f[4], f[4]), f[5], f[5]) / A
    raw = torch.exp(-half_q) * feat[:, :, 21, None]
    valid = raw >= ALPHA_MIN
    z = f[6] / A if (extras or near is not None) else None
    if near is not None:
        valid &= z > near
    alpha = torch.where(valid, raw.clamp_max(ALPHA_MAX), torch.zeros_like(raw))
    t_after = torch.cumprod(1.0 - alpha, 1) * T0[:, None, :]
    t_before = torch.cat([T0[:, None, :], t_after[:, :-1]], 1)
    w = t_before - t_after                                            # alpha_i T_i
    out = {"attr": torch.bmm(feat[:, :, 22:].transpose(1, 2), w), "T": t_after[:, -1], "valid": valid}
    if extras:
        z = torch.where(valid, z, torch.ones_like(z))
        out["depth"] = (w * z).sum(1)
        c = dist_far / (dist_far - dist_near)
        wm = w * (c - (c * dist_near) / z)
        out["wm"] = wm.sum(1)
        out["wmt"] = (wm * (1.0 - t_before - t_after)).sum(1)
    return out


def _gather_features(forms: torch.Tensor, opac: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """(N + 1, 22 + C) feature rows [form coefficients, opacity, attributes]; row N is a null
    Gaussian (alpha 0, everything finite) that pads the tile table."""
    n = forms.shape[0]
    feat = torch.cat([forms.reshape(n, -1), opac[:, None], attrs], 1)
    null = torch.zeros(1, feat.shape[1], dtype=feat.dtype, device=feat.device)
    null[0, 8] = 1.0                                                    # d' = (0, 0, 1): A = 1
    return torch.cat([feat, null], 0)


def rasterize(gaussians: GaussianSet, K: torch.Tensor, cam_to_world: torch.Tensor, width: int, height: int, *,
              background: torch.Tensor | None = None, tile_size: int = 8, near: float = 0.01,
              chunk: int = 32, max_per_tile: int | None = None, compute_extras: bool = True,
              min_transmittance: float = 1e-4, dist_near: float = 0.2, dist_far: float = 100.0) -> RasterOutput:
    """Render ``gaussians`` into a ``width`` x ``height`` pinhole camera (module docstring).

    Args:
        gaussians: N Gaussians; K (3, 3) intrinsics in px; cam_to_world (4, 4) OpenCV.
        background: (3,) colour behind everything (default black).
        tile_size: tile side in px; chunk: Gaussians composited per step and tile.
        near: camera-z cut for means and for ray maxima.
        max_per_tile: cap on each tile's front-to-back list (None: exact).
        compute_extras: False skips depth, normal and distortion (returned as zeros).
        min_transmittance: a tile stops once all its pixels have T below this (0: never stop).
        dist_near, dist_far: NDC mapping of the distortion term.

    Returns:
        :class:`RasterOutput`; differentiable w.r.t. all GaussianSet tensors.
    """
    dev, dt = gaussians.means.device, gaussians.means.dtype
    K = torch.as_tensor(K, dtype=dt, device=dev)
    cam_to_world = torch.as_tensor(cam_to_world, dtype=dt, device=dev)
    bg = (torch.zeros(3, dtype=dt, device=dev) if background is None
          else torch.as_tensor(background, dtype=dt, device=dev).reshape(3))
    n = len(gaussians)
    scales, opac = gaussians.scales(), gaussians.opacities()
    proj = project_gaussians(gaussians.means, gaussians.rotations(), scales, opac, K, cam_to_world,
                             width, height, near)
    ntx, nty = math.ceil(width / tile_size), math.ceil(height / tile_size)
    rect, n_tiles = tile_rects(proj.bbox, proj.valid, width, height, tile_size)
    tt = bin_gaussians(rect, n_tiles, proj.depths, ntx, nty, max_per_tile)
    attrs = gaussians.colours()
    if compute_extras:
        attrs = torch.cat([attrs, gaussian_normals(proj, scales, cam_to_world)], 1)
    feat = _gather_features(gaussian_forms(proj, scales), opac, attrs)
    with torch.no_grad():   # can any alpha >= 1/255 sit at camera z <= near? (else skip the test)
        sig_zz = ((proj.rot_cam[:, 2, :] * scales) ** 2).sum(-1)
        reach = proj.depths - (alpha_cutoff_k2(opac).clamp_min(0) * sig_zz).sqrt()
        test_near = bool((proj.valid & (reach <= near)).any())
    planes, visible = _composite_tiles(feat, tt, K, width, height, tile_size, chunk,
                                       near if test_near else None, min_transmittance, compute_extras,
                                       dist_near, dist_far)
    img = _untile(planes, tt, ntx, nty, tile_size, width, height)    # (H, W, C + 4)
    T = img[..., -1]
    zeros = torch.zeros_like(T)
    return RasterOutput(
        rgb=img[..., 0:3] + T[..., None] * bg,
        alpha=1.0 - T,
        depth=img[..., 6] if compute_extras else zeros,
        normal=img[..., 3:6] if compute_extras else torch.zeros_like(img[..., 0:3]),
        distortion=2.0 * (img[..., 8] + T * img[..., 7]) if compute_extras else zeros,
        visible=visible[:n],
        radii=proj.radii,
    )


def _composite_tiles(feat: torch.Tensor, tt: TileTable, K: torch.Tensor, width: int, height: int,
                     tile_size: int, chunk: int, near: float | None, min_transmittance: float, extras: bool,
                     dist_near: float, dist_far: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked front-to-back compositing of every non-empty tile.

    Returns:
        planes (T, C + 4, P) per tile: attributes (C: rgb without background, then the normal when
        ``extras``), then with ``extras`` depth, sum w m, sum w m (1 - T_b - T_a), and last the
        final transmittance; visible (N + 1,) bool.
    """
    dev, dt = feat.device, feat.dtype
    nat = tt.tile_ids.shape[0]
    visible = torch.zeros(feat.shape[0], dtype=torch.bool, device=dev)
    P = tile_size * tile_size
    n_attr = feat.shape[1] - 22
    n_planes = n_attr + (3 if extras else 0)
    if nat == 0:
        return torch.zeros(0, n_planes + 1, P, dtype=dt, device=dev), visible
    pix, inside = _tile_pixels(tt.tile_ids, tt.n_tiles_x, tile_size, K, width, height)
    T = inside.to(dt)                                    # padding pixels start "finished"
    acc = torch.zeros(nat, n_planes, P, dtype=dt, device=dev)
    alive = torch.ones(nat, dtype=torch.bool, device=dev)
    grad = torch.is_grad_enabled() and feat.requires_grad
    kmax = tt.table.shape[1]
    for k0 in range(0, kmax, chunk):
        alive &= tt.counts > k0
        sel = torch.nonzero(alive).squeeze(1)
        if sel.numel() == 0:
            break
        every = sel.numel() == nat
        ids = tt.table[sel, k0:k0 + chunk]
        f = feat.index_select(0, ids.reshape(-1)).view(ids.shape[0], ids.shape[1], -1)
        out = _composite_chunk(f, pix if every else pix[sel], T if every else T[sel], near, extras,
                               dist_near, dist_far)
        hit = (out["valid"] & (inside if every else inside[sel])[:, None, :]).any(2)
        visible[ids[hit]] = True
        parts = [out["attr"]]
        if extras:
            parts += [out["depth"][:, None], out["wm"][:, None], out["wmt"][:, None]]
        contrib = torch.cat(parts, 1)
        if grad:   # out-of-place updates keep the autograd graph intact
            T = T.index_copy(0, sel, out["T"])
            acc = acc.index_add(0, sel, contrib)
        else:
            T.index_copy_(0, sel, out["T"])
            acc.index_add_(0, sel, contrib)
        if min_transmittance > 0:
            alive[sel] &= ~(out["T"] < min_transmittance).all(1)
    return torch.cat([acc, T[:, None]], 1), visible


def _untile(planes: torch.Tensor, tt: TileTable, ntx: int, nty: int, tile_size: int, width: int,
            height: int) -> torch.Tensor:
    """Per-tile planes (T, C, P) -> image (H, W, C); tiles without Gaussians get zeros and T = 1."""
    c = planes.shape[1]
    full = torch.zeros(ntx * nty, c, tile_size * tile_size, dtype=planes.dtype, device=planes.device)
    full[:, c - 1] = 1.0
    full = full.index_copy(0, tt.tile_ids, planes)
    img = full.view(nty, ntx, c, tile_size, tile_size).permute(0, 3, 1, 4, 2)
    return img.reshape(nty * tile_size, ntx * tile_size, c)[:height, :width]


__all__ = ["RasterOutput", "gaussian_forms", "gaussian_normals", "ndc_depth", "rasterize"]
