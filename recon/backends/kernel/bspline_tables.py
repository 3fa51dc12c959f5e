"""Constant B-spline tables of the cell-moment assembly (exact, built in float64).

Inside one finest cell (local coordinate tau in [0,1)^3) every basis function of every
level is a triquadratic polynomial. The 27 finest-level functions of the cell's
neighbour voxels (the "cell basis" phi, per axis ``axis_weights(tau)``) span all
triquadratics, so any coarser function restricted to the cell is ``R @ phi``.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from recon.backends.kernel.basis import axis_weights, bspline, tensor27
from recon.backends.kernel.svh import OFFSETS125

_SAMPLES = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)


@lru_cache(maxsize=None)
def product_poly() -> torch.Tensor:
    """(3, 3, 5) float64: coefficients of tau^a in phi_i(tau) * phi_j(tau) (one axis)."""
    t = torch.linspace(0.0, 0.8, 5, dtype=torch.float64)
    w, _ = axis_weights(t[:, None].expand(5, 3))  # (5, 3 axes, 3)
    w = w[:, 0]
    prod = w[:, :, None] * w[:, None, :]  # (5, 3, 3)
    vander = t[:, None] ** torch.arange(5, dtype=torch.float64)[None]  # (5, 5)
    coef = torch.linalg.solve(vander, prod.reshape(5, 9))  # (5 powers, 9)
    return coef.T.reshape(3, 3, 5).contiguous()


@lru_cache(maxsize=None)
def coarse_transform(k: int) -> torch.Tensor:
    """(2**k, 3, 3) float64 R[r, b, a]: level-(d+k) function ``P + b`` restricted to a level-d cell.

    The cell ``C`` (level d) has ``r = C mod 2**k`` and parent ``P = C >> k``; per axis
    ``psi_b(tau) = sum_a R[r, b, a] phi_a(tau)`` where ``phi_a`` is the level-d function of
    voxel ``C + a`` (offsets b, a in -1, 0, 1).
    """
    phi, _ = axis_weights(_SAMPLES[:, None].expand(3, 3))
    phi = phi[:, 0]  # (3 samples, 3 a)
    out = []
    for r in range(2**k):
        tp = (r + _SAMPLES) / 2**k
        psi, _ = axis_weights(tp[:, None].expand(3, 3))
        psi = psi[:, 0]  # (3 samples, 3 b)
        rt = torch.linalg.solve(phi, psi)  # phi @ R^T = psi
        out.append(rt.T)
    return torch.stack(out)


@lru_cache(maxsize=None)
def centre_gradients(tau: float) -> torch.Tensor:
    """(3, 27) float64: gradients (finest units) of the 27 cell-basis functions at (tau, tau, tau)."""
    w, dw = axis_weights(torch.full((1, 3), tau, dtype=torch.float64))
    w, dw = w[0], dw[0]
    return torch.stack([tensor27(dw[0], w[1], w[2]), tensor27(w[0], dw[1], w[2]), tensor27(w[0], w[1], dw[2])])


@lru_cache(maxsize=None)
def gram_stencil() -> torch.Tensor:
    """(125,) float64: B(o) of the regulariser K at each 5x5x5 stencil offset o (zero beyond +-1)."""
    b = bspline(OFFSETS125.to(torch.float64))
    return b.prod(-1)


TWO_SCALE = (0.25, 0.75, 0.75, 0.25)
"""Per-axis two-scale coefficients: b(y/2 - W - 1/2) = sum_t c_t b(y - (2W + t) - 1/2), t = -1..2."""


@lru_cache(maxsize=None)
def two_scale_axis() -> torch.Tensor:
    """(2, 5, 5) float64 per-axis maps M_s[o + 2, O + 2] = c_{o - 2 O + s} (see :func:`two_scale_stencil`)."""
    per_axis = torch.zeros(2, 5, 5, dtype=torch.float64)
    for s in range(2):
        for o in range(-2, 3):
            for O in range(-2, 3):
                t = o - 2 * O + s
                if -1 <= t <= 2:
                    per_axis[s, o + 2, O + 2] = TWO_SCALE[t + 1]
    return per_axis


@lru_cache(maxsize=None)
def two_scale_stencil() -> torch.Tensor:
    """(8, 125, 125) float64 maps of a stencil row from level e-1 to level e columns.

    A row's columns at level e-1 are ``a + o`` (o in [-2, 2]^3, ``a`` the row's level-(e-1)
    ancestor); at level e they are ``(a >> 1) + O``. With ``s = a & 1`` per axis, the
    level-e function ``(a >> 1) + O`` is ``sum_o M_s[o, O] * (level-(e-1) function a + o)``
    with ``M_s[o, O] = c_{o - 2 O + s}`` (:data:`TWO_SCALE`). Index ``sx*4 + sy*2 + sz``;
    entry ``[o-slot, O-slot]`` is the Kronecker product of the per-axis maps. Taps outside
    o in [-2, 2] only touch functions disjoint from the row's support, so the map is exact.
    """
    per_axis = two_scale_axis()
    out = []
    for k in range(8):
        sx, sy, sz = (k >> 2) & 1, (k >> 1) & 1, k & 1
        out.append(torch.kron(torch.kron(per_axis[sx], per_axis[sy]), per_axis[sz]))
    return torch.stack(out)
