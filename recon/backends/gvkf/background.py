"""The far field of a capture without masks: a learned colour per view direction behind the Gaussians.

Real photos show more than the object (a table, a cloth, a room). Without a model of it the Gaussians
explain the background themselves, as flakes in front of the cameras. :class:`FarField` is a small
equirectangular map (``rows`` x ``2 rows`` texels over the sphere of directions of the normalised
frame, poles on its z axis), bilinearly interpolated and wrapped around in longitude; a pixel's colour
is ``rgb_gaussians + T_final * far(d)`` with ``d`` its ray direction. A few texels (45 degrees each at
4 rows) hold a smooth backdrop but not an object's detail, which stays with the Gaussians.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pixel_directions(K: torch.Tensor, cam_to_world: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(H, W, 3) unit ray directions (world frame) through the pixel centres of a pinhole camera.

    Args:
        K: (3, 3) intrinsics in pixels; cam_to_world: (4, 4) OpenCV camera-to-world.
    """
    dev, dt = K.device, K.dtype
    v, u = torch.meshgrid(torch.arange(height, device=dev, dtype=dt) + 0.5,
                          torch.arange(width, device=dev, dtype=dt) + 0.5, indexing="ij")
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y) / K[0, 0]
    d = torch.stack([x, y, torch.ones_like(x)], -1) @ cam_to_world[:3, :3].T
    return d / d.norm(dim=-1, keepdim=True)


def border_colour(images: torch.Tensor) -> torch.Tensor:
    """(3,) per-channel median of the border pixels of (C, H, W, 3) images: a first guess of the backdrop."""
    b = torch.cat([images[:, 0].reshape(-1, 3), images[:, -1].reshape(-1, 3),
                   images[:, :, 0].reshape(-1, 3), images[:, :, -1].reshape(-1, 3)])
    return b.median(0).values


class FarField:
    """A learned background colour per direction.

    Args:
        colour: (3,) initial colour in [0, 1] (every texel starts at it).
        rows: texel rows (latitude); columns are ``2 * rows``. 1 row = one colour everywhere.
        device: torch device.

    Attributes:
        logits: (3, rows, 2 rows) trainable texels; colour = ``sigmoid(logits)``.
    """

    def __init__(self, colour: torch.Tensor, rows: int, device: torch.device | str = "cpu"):
        c = torch.as_tensor(colour, dtype=torch.float32, device=device).clamp(0.02, 0.98)
        self.logits = torch.logit(c).view(3, 1, 1).expand(3, int(rows), 2 * int(rows)).clone().requires_grad_(True)

    def __call__(self, dirs: torch.Tensor) -> torch.Tensor:
        """(..., 3) colours in [0, 1] of (..., 3) unit directions."""
        shape = dirs.shape[:-1]
        d = dirs.reshape(-1, 3)
        lon = torch.atan2(d[:, 1], d[:, 0]) / math.pi                       # [-1, 1]
        lat = torch.asin(d[:, 2].clamp(-1.0, 1.0)) / (0.5 * math.pi)        # [-1, 1]
        tex = torch.sigmoid(self.logits)
        w = tex.shape[-1]
        tex = torch.cat([tex[..., -1:], tex, tex[..., :1]], -1)             # wrap in longitude
        u = ((lon + 1.0) * w + 2.0) / (w + 2.0) - 1.0                       # texel centres kept in place
        grid = torch.stack([u, lat], -1).view(1, -1, 1, 2).to(tex.dtype)
        out = F.grid_sample(tex[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out[0, :, :, 0].T.reshape(*shape, 3)

    def image(self, K: torch.Tensor, cam_to_world: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """(H, W, 3) the far field seen by a camera (see :func:`pixel_directions`)."""
        return self(pixel_directions(K, cam_to_world, width, height))


__all__ = ["FarField", "border_colour", "pixel_directions"]
