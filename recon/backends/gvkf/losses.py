"""Image losses of GVKF training: L1 + SSIM, depth-normal consistency, distortion, mask.

Images are (H, W, C) tensors in [0, 1]; every loss returns a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recon.ops.rays import pixel_rays


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity of two (H, W, C) images in [0, 1] (Gaussian window, valid region)."""
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    C = x.shape[1]
    w = _gaussian_window(min(window, x.shape[-1], x.shape[-2]) | 1, sigma, C, x)
    mu_x, mu_y = F.conv2d(x, w, groups=C), F.conv2d(y, w, groups=C)
    sxx = F.conv2d(x * x, w, groups=C) - mu_x ** 2
    syy = F.conv2d(y * y, w, groups=C) - mu_y ** 2
    sxy = F.conv2d(x * y, w, groups=C) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.mean()


def photometric_loss(render: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.2) -> torch.Tensor:
    """(1 - w) * L1 + w * (1 - SSIM) of two (H, W, 3) images."""
    l1 = (render - target).abs().mean()
    if ssim_weight <= 0:
        return l1
    return (1.0 - ssim_weight) * l1 + ssim_weight * (1.0 - ssim(render, target))


def depth_to_points(depth: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor) -> torch.Tensor:
    """Back-project a (H, W) z-depth map to (H, W, 3) world points through the pixel centres."""
    H, W = depth.shape
    j, i = torch.meshgrid(torch.arange(H, device=depth.device), torch.arange(W, device=depth.device), indexing="ij")
    uv = torch.stack([i, j], -1).reshape(-1, 2).to(depth.dtype) + 0.5
    o, d, cos = pixel_rays(K.to(depth.dtype), cam_to_world.to(depth.dtype), uv)
    t = depth.reshape(-1) / cos
    return (o + d * t[:, None]).reshape(H, W, 3)


def normals_from_depth(depth: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor) -> torch.Tensor:
    """(H-2, W-2, 3) unit world normals of the back-projected depth map by central differences,
    oriented towards the camera (interior pixels only)."""
    p = depth_to_points(depth, K, cam_to_world)
    dx = p[1:-1, 2:] - p[1:-1, :-2]
    dy = p[2:, 1:-1] - p[:-2, 1:-1]
    n = torch.cross(dx, dy, dim=-1)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    view = p[1:-1, 1:-1] - cam_to_world[:3, 3].to(p.dtype)
    return torch.where(((n * view).sum(-1, keepdim=True) > 0), -n, n)


def depth_normal_loss(depth: torch.Tensor, normal: torch.Tensor, alpha: torch.Tensor, K: torch.Tensor,
                      cam_to_world: torch.Tensor, min_alpha: float = 0.5) -> torch.Tensor:
    """Mean of 1 - <rendered normal, normal of the rendered depth> over interior pixels with
    alpha > ``min_alpha``. ``depth`` (H, W) and ``normal`` (H, W, 3) are alpha-weighted sums as the
    rasteriser returns them; both are divided by alpha here. The depth-derived normal is detached
    (the rendered normals follow the depth, as in 2DGS and GOF)."""
    a = alpha.clamp_min(1e-6)
    n_r = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    n_d = normals_from_depth((depth / a).detach(), K, cam_to_world)
    valid = (alpha[1:-1, 1:-1] > min_alpha)
    if not bool(valid.any()):
        return normal.sum() * 0.0
    cos = (n_r[1:-1, 1:-1] * n_d).sum(-1)
    return (1.0 - cos)[valid].mean()


def mask_loss(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the (H, W) accumulated opacity against a (H, W) mask in [0, 1]."""
    return F.binary_cross_entropy(alpha.clamp(1e-4, 1 - 1e-4), mask)
