"""Project 3D Gaussians into one pinhole camera: camera frame, EWA footprint, exact screen box.

Conventions (see recon/ops/rays.py): OpenCV camera (x right, y down, z forward), ``cam_to_world``
(4, 4), intrinsics ``K`` (3, 3) in pixels (a skew ``K[0, 1]`` is honoured), pixel (i, j) has its
centre at image coordinates (i + 0.5, j + 0.5).

Two screen footprints are computed per Gaussian:

- the EWA footprint of 3DGS: ``cov2d = J W Sigma W^T J^T + 0.3 px^2`` with the perspective
  Jacobian ``J`` at the mean (x/z, y/z clamped to 1.3x the image's field of view), its conic
  (inverse) and its 3-sigma radius ``3 sqrt(lambda_max)``: this is the ``radii`` the rasteriser
  reports (densification statistics use it);
- the exact pixel box used for tile binning: the image of the ellipsoid
  ``(x - mu)^T Sigma^-1 (x - mu) <= k^2`` with ``k^2 = 2 ln(255 o)``, the largest Mahalanobis
  distance at which the ray alpha ``o exp(-k^2 / 2)`` still reaches 1/255. A ray whose alpha
  passes the 1/255 test meets that ellipsoid, so binning by this box is conservative by
  construction: the tile rasteriser equals the brute-force per-pixel rasteriser exactly. (The
  EWA 3-sigma box is an affine approximation and can miss pixels of the exact 3D alpha.)
  The image of an ellipsoid is a conic with dual ``C* = K (k^2 Sigma_c - mu_c mu_c^T) K^T``; its
  vertical tangents ``u`` solve ``C*_22 u^2 - 2 C*_02 u + C*_00 = 0`` (horizontal ones alike).
  When the ellipsoid crosses the camera plane (``C*_22 >= 0``) the image is unbounded and the
  box is the whole image.

All functions are dtype- and device-generic (the box is solved in float64, without gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: EWA low-pass dilation added to the 2D covariance, px^2 (3DGS).
EPS2D = 0.3
#: Smallest alpha that counts as a contribution (3DGS).
ALPHA_MIN = 1.0 / 255.0


@dataclass
class Projection:
    """Per-Gaussian projection of N Gaussians into one camera (all tensors on the input device).

    means_cam (N, 3) camera-frame means; rot_cam (N, 3, 3) local-to-camera rotations;
    depths (N,) mean camera z; means2d (N, 2) pixel coordinates of the means; cov2d (N, 2, 2)
    EWA covariance in px^2 (with the 0.3 dilation); conics (N, 3) its inverse (a, b, c) with
    ``power = a du^2 + 2 b du dv + c dv^2``; radii (N,) 3-sigma EWA radius in px, 0 when culled;
    bbox (N, 4) float64 conservative pixel box (u_min, v_min, u_max, v_max) of the region where
    the ray alpha can reach 1/255; valid (N,) bool: kept (in front of ``near``, opacity >= 1/255,
    box overlapping the image).
    """

    means_cam: torch.Tensor
    rot_cam: torch.Tensor
    depths: torch.Tensor
    means2d: torch.Tensor
    cov2d: torch.Tensor
    conics: torch.Tensor
    radii: torch.Tensor
    bbox: torch.Tensor
    valid: torch.Tensor


def world_to_camera(means: torch.Tensor, rotations: torch.Tensor,
                    cam_to_world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means (N, 3) and local-to-world rotations (N, 3, 3) -> camera-frame means (N, 3) and
    local-to-camera rotations (N, 3, 3). ``cam_to_world`` (4, 4) must be rigid."""
    R_cw = cam_to_world[:3, :3]
    origin = cam_to_world[:3, 3]
    means_cam = (means - origin) @ R_cw            # row-vector form of R_cw^T (mu - o)
    rot_cam = R_cw.T @ rotations                   # broadcast (3, 3) @ (N, 3, 3)
    return means_cam, rot_cam


def ewa_covariance(means_cam: torch.Tensor, cov_cam: torch.Tensor, K: torch.Tensor,
                   width: int, height: int, eps2d: float = EPS2D) -> tuple[torch.Tensor, torch.Tensor]:
    """EWA screen covariance.

    Args:
        means_cam: (N, 3) camera-frame means (z > 0 expected; others give garbage, mask them).
        cov_cam: (N, 3, 3) camera-frame covariances.
        K: (3, 3) intrinsics (fx, fy, cx, cy, skew).

    Returns:
        means2d (N, 2) pixel coordinates and cov2d (N, 2, 2) = J Sigma_c J^T + eps2d I, px^2.
    """
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    x, y, z = means_cam.unbind(-1)
    z = z.clamp_min(1e-6)
    # Clamp the Jacobian's evaluation point to 1.3x the field of view (far off-screen means
    # otherwise give huge footprints); means2d itself is not clamped.
    ty = (y / z).clamp((-cy / fy) - 0.3 * height / fy, (height - cy) / fy + 0.3 * height / fy)
    tx = (x / z).clamp((-(cx + skew * ty)) / fx - 0.3 * width / fx,
                       (width - cx - skew * ty) / fx + 0.3 * width / fx)
    zero = torch.zeros_like(z)
    J = torch.stack([
        fx / z, skew / z, -(fx * tx + skew * ty) / z,
        zero, fy / z, -fy * ty / z,
    ], -1).reshape(-1, 2, 3)
    cov2d = J @ cov_cam @ J.transpose(1, 2)
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    u = fx * x / z + skew * y / z + cx
    v = fy * y / z + cy
    return torch.stack([u, v], -1), cov2d


def conic_and_radius(cov2d: torch.Tensor, n_sigma: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2, 2) screen covariance -> conic (N, 3) = (a, b, c) of its inverse and the radius
    ``n_sigma * sqrt(lambda_max)`` (N,) in px."""
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = (a * c - b * b).clamp_min(1e-12)
    conic = torch.stack([c / det, -b / det, a / det], -1)
    mid = 0.5 * (a + c)
    lam = mid + (mid * mid - det).clamp_min(0.0).sqrt()
    return conic, n_sigma * lam.sqrt()


def alpha_cutoff_k2(opacities: torch.Tensor) -> torch.Tensor:
    """(N,) squared Mahalanobis distance beyond which ``o exp(-k^2/2) < 1/255``: ``2 ln(255 o)``
    (negative when the Gaussian can never reach 1/255)."""
    return 2.0 * torch.log(opacities / ALPHA_MIN)


@torch.no_grad()
def ellipsoid_bbox(means_cam: torch.Tensor, cov_cam: torch.Tensor, K: torch.Tensor, k2: torch.Tensor,
                   width: int, height: int, margin: float = 0.5) -> torch.Tensor:
    """Exact pixel box of the perspective image of the ellipsoids ``(x-mu)^T Sigma^-1 (x-mu) <= k2``.

    Args:
        means_cam (N, 3), cov_cam (N, 3, 3): camera frame; K (3, 3); k2 (N,) >= 0.
        margin: px added on every side (guards rounding at the 1/255 boundary).

    Returns:
        (N, 4) float64 (u_min, v_min, u_max, v_max) in image coordinates; the whole image
        (plus margin) where the ellipsoid reaches the camera plane z = 0.
    """
    mu = means_cam.double()
    Kd = K.double()
    Q = k2.double().clamp_min(0.0)[:, None, None] * cov_cam.double() - mu[:, :, None] * mu[:, None, :]
    C = Kd @ Q @ Kd.T                                              # (N, 3, 3) dual conic
    c22 = C[:, 2, 2]
    bounded = c22 < 0
    safe = torch.where(bounded, c22, torch.full_like(c22, -1.0))
    out = []
    for r in (0, 1):
        disc = (C[:, r, 2] ** 2 - C[:, r, r] * C[:, 2, 2]).clamp_min(0.0).sqrt()
        centre = C[:, r, 2] / safe
        half = disc / safe.abs()
        out.append((centre - half, centre + half))
    box = torch.stack([out[0][0], out[1][0], out[0][1], out[1][1]], -1)
    full = torch.tensor([0.0, 0.0, float(width), float(height)], dtype=box.dtype, device=box.device)
    box = torch.where(bounded[:, None], box, full)
    return box + torch.tensor([-margin, -margin, margin, margin], dtype=box.dtype, device=box.device)


def project_gaussians(means: torch.Tensor, rotations: torch.Tensor, scales: torch.Tensor,
                      opacities: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor,
                      width: int, height: int, near: float = 0.01) -> Projection:
    """Project N Gaussians (means (N, 3), rotations (N, 3, 3), scales (N, 3), opacities (N,))
    into a ``width`` x ``height`` camera; see :class:`Projection`. Culls means with camera
    z <= ``near``, opacities below 1/255 and boxes that miss the image."""
    means_cam, rot_cam = world_to_camera(means, rotations, cam_to_world)
    cov_cam = (rot_cam * scales[:, None, :] ** 2) @ rot_cam.transpose(1, 2)
    means2d, cov2d = ewa_covariance(means_cam, cov_cam, K, width, height)
    conics, radius = conic_and_radius(cov2d)
    with torch.no_grad():
        k2 = alpha_cutoff_k2(opacities.detach())
        bbox = ellipsoid_bbox(means_cam.detach(), cov_cam.detach(), K, k2, width, height)
        # Some pixel centre (i + 0.5, j + 0.5) must fall inside the box.
        on_image = (bbox[:, 2] >= 0.5) & (bbox[:, 0] <= width - 0.5) & \
                   (bbox[:, 3] >= 0.5) & (bbox[:, 1] <= height - 0.5)
        valid = (means_cam[:, 2].detach() > near) & (k2 > 0) & on_image
    radii = torch.where(valid, radius, torch.zeros_like(radius))
    return Projection(means_cam, rot_cam, means_cam[:, 2], means2d, cov2d, conics, radii, bbox, valid)


__all__ = ["ALPHA_MIN", "EPS2D", "Projection", "alpha_cutoff_k2", "conic_and_radius", "ellipsoid_bbox",
           "ewa_covariance", "project_gaussians", "world_to_camera"]
