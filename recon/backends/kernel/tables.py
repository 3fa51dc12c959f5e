"""Small constant tables for the cell-moment assembly (exact, built in float64).

Inside one finest cell (local coordinate tau in [0,1)^3) every basis function of every
level is a triquadratic polynomial. The 27 finest-level functions of the cell's
neighbour voxels (the "cell basis" phi, per axis ``axis_weights(tau)``) span all
triquadratics, so any coarser function restricted to the cell is ``R @ phi``.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from recon.backends.kernel.basis import axis_weights, tensor27
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
def diag_slots() -> torch.Tensor:
    """(27, 27) int64: slot (0..124) of neighbour offset ``o_b - o_a`` in the 5x5x5 stencil."""
    from recon.backends.kernel.svh import OFFSETS27

    e = OFFSETS27[None, :, :] - OFFSETS27[:, None, :] + 2
    return e[..., 0] * 25 + e[..., 1] * 5 + e[..., 2]


@lru_cache(maxsize=None)
def gram_stencil() -> torch.Tensor:
    """(125,) float64: B(o) of the regulariser K at each 5x5x5 stencil offset o (zero beyond +-1)."""
    from recon.backends.kernel.basis import bspline

    b = bspline(OFFSETS125.to(torch.float64))
    return b.prod(-1)
