"""Quadratic B-spline basis (2x the uniform quadratic B-spline, support +-1.5 voxels).

1D profile ``b(t)``: ``(t+1.5)^2`` on [-1.5,-0.5), ``1.5-2t^2`` on [-0.5,0.5),
``(t-1.5)^2`` on [0.5,1.5), 0 elsewhere; ``sum_i b(t - i) = 2`` for every t.
The 3D basis of a level-d voxel ``v`` is ``B(u) = b(u_x) b(u_y) b(u_z)`` with
``u = x / 2**d - (v + 1/2)`` (x in finest-voxel units); its gradient w.r.t. x is
``grad B / 2**d``.

A point in voxel ``p`` of a level (``p = floor(x / 2**d)``) touches exactly the 27
voxels ``p + o``, ``o`` in {-1,0,1}^3. Per axis the three weights depend only on
the fraction ``tau = x / 2**d - p`` in [0, 1): voxel ``p + o`` has ``t = tau - 1/2 - o``.
"""

from __future__ import annotations

import numpy as np
import torch

AXIS_OFFSETS = (-1, 0, 1)


def bspline(t: torch.Tensor | np.ndarray):
    """b(t), elementwise, same array kind as ``t``."""
    a = abs(t)
    if isinstance(t, torch.Tensor):
        return torch.where(a < 0.5, 1.5 - 2 * t * t, torch.where(a < 1.5, (a - 1.5) ** 2, torch.zeros_like(t)))
    return np.where(a < 0.5, 1.5 - 2 * t * t, np.where(a < 1.5, (a - 1.5) ** 2, 0.0))


def bspline_deriv(t: torch.Tensor | np.ndarray):
    """b'(t), elementwise."""
    a = abs(t)
    if isinstance(t, torch.Tensor):
        sgn = torch.sign(t)
        return torch.where(a < 0.5, -4 * t, torch.where(a < 1.5, 2 * (a - 1.5) * sgn, torch.zeros_like(t)))
    return np.where(a < 0.5, -4 * t, np.where(a < 1.5, 2 * (a - 1.5) * np.sign(t), 0.0))


def axis_weights(tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis weights of the three voxels p-1, p, p+1 around a fraction ``tau``.

    Args:
        tau: (..., 3) fractions in [0, 1).

    Returns:
        w, dw: (..., 3 axes, 3 offsets) values b(t) and derivatives b'(t) (per level-voxel unit),
        with offsets ordered -1, 0, 1. Closed forms of the three quadratic pieces.
    """
    t = tau[..., None]
    w = torch.cat([(t - 1.0) ** 2 * 1.0, 1.5 - 2 * (t - 0.5) ** 2, t * t], -1)
    # offset -1: t_b = tau + 0.5 in [0.5, 1.5): (t_b - 1.5)^2 = (tau - 1)^2
    # offset  0: t_b = tau - 0.5:                1.5 - 2 (tau - 0.5)^2
    # offset +1: t_b = tau - 1.5 in [-1.5,-0.5): (t_b + 1.5)^2 = tau^2
    dw = torch.cat([2 * (t - 1.0), -4 * (t - 0.5), 2 * t], -1)
    return w, dw


def tensor27(wx: torch.Tensor, wy: torch.Tensor, wz: torch.Tensor) -> torch.Tensor:
    """Outer product of per-axis (..., 3) weights -> (..., 27), index ox*9 + oy*3 + oz."""
    return (wx[..., :, None, None] * wy[..., None, :, None] * wz[..., None, None, :]).flatten(-3)


def level_stencil(u: torch.Tensor, level: int, grad: bool = False):
    """Basis values (and gradients) of the 27 level-d voxels around each point.

    Args:
        u: (K, 3) float positions in finest-voxel units.
        level: level d.
        grad: also return gradients.

    Returns:
        base: (K, 3) int64 voxel containing each point (neighbours are base + OFFSETS27);
        w: (K, 27) basis values; and with ``grad``: (K, 27, 3) gradients w.r.t. u
        (finest-voxel units).
    """
    s = float(2**level)
    g = u / s
    base = torch.floor(g)
    tau = g - base
    w, dw = axis_weights(tau)
    vals = tensor27(w[:, 0], w[:, 1], w[:, 2])
    if not grad:
        return base.to(torch.int64), vals
    gx = tensor27(dw[:, 0], w[:, 1], w[:, 2])
    gy = tensor27(w[:, 0], dw[:, 1], w[:, 2])
    gz = tensor27(w[:, 0], w[:, 1], dw[:, 2])
    return base.to(torch.int64), vals, torch.stack([gx, gy, gz], -1) / s


def basis_reference(u: np.ndarray, centres: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Slow dense reference: every basis function of the given level centres at every point.

    Args:
        u: (K, 3) positions, finest-voxel units.
        centres: (V, 3) integer voxel coordinates of level d.
        level: level d.

    Returns:
        (K, V) values and (K, V, 3) gradients (finest-voxel units), float64.
    """
    s = 2.0**level
    t = u[:, None, :] / s - (centres[None, :, :] + 0.5)
    b = bspline(t)
    db = bspline_deriv(t)
    val = b[..., 0] * b[..., 1] * b[..., 2]
    gr = np.stack([db[..., 0] * b[..., 1] * b[..., 2], b[..., 0] * db[..., 1] * b[..., 2],
                   b[..., 0] * b[..., 1] * db[..., 2]], -1) / s
    return val, gr
