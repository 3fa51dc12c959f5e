"""VolSDF density: sigma(x) = alpha * Psi_beta(-d(x)) with alpha = 1 / beta (paper Sec. 3.1).

Psi_beta is the CDF of the zero-mean Laplace distribution with scale beta. Distances d are in the
normalised frame (unit sphere), so beta has length units and sigma has 1 / length units.
"""

from __future__ import annotations

import torch
from torch import nn


def laplace_cdf(s: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """Psi_beta(s): 0.5 exp(s / beta) for s <= 0, 1 - 0.5 exp(-s / beta) for s > 0 (never overflows)."""
    e = 0.5 * torch.exp(-s.abs() / beta)
    return torch.where(s <= 0, e, 1.0 - e)


def sdf_to_density(d: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """sigma = (1 / beta) Psi_beta(-d); ``beta`` broadcasts against ``d`` (e.g. (R, 1) per ray)."""
    return laplace_cdf(-d, beta) / beta


class LaplaceDensity(nn.Module):
    """The learned scalar beta = |beta_param| + beta_min (paper: beta_init 0.1, beta_min 1e-4).

    Attributes:
        beta_param: (1,) parameter.
        beta_min: lower bound of beta (length units of the normalised frame).
        beta_cap: () buffer, an upper bound the trainer lowers over time (inf: none); where it binds,
            beta = beta_cap and beta_param gets no gradient.
    """

    def __init__(self, beta_init: float = 0.1, beta_min: float = 1e-4):
        super().__init__()
        self.beta_min = float(beta_min)
        self.beta_param = nn.Parameter(torch.tensor([beta_init - beta_min]))
        self.register_buffer("beta_cap", torch.tensor(float("inf")))

    def beta(self) -> torch.Tensor:
        """() tensor beta = min(|beta_param| + beta_min, beta_cap) (differentiable)."""
        return torch.minimum(self.beta_param.abs()[0] + self.beta_min, self.beta_cap)

    def forward(self, d: torch.Tensor, beta: torch.Tensor | None = None) -> torch.Tensor:
        """Density at signed distances ``d`` (any shape); ``beta`` overrides the learned value."""
        return sdf_to_density(d, self.beta() if beta is None else beta)
