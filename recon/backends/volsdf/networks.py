"""Geometry network f(x) -> (d, z) with geometric (sphere) initialisation, and the colour network.

Positions are in the normalised frame (scene inside the unit sphere). The geometry network is
IDR/VolSDF's: Softplus(beta=100) MLP, optional skip connection, geometric initialisation so that
d(x) ~ |x| - r at start (the weights on encoded channels start at zero, so the encoding only adds
detail as it is learned). The colour network is VolSDF's "idr" mode: it sees the position, the
encoded view direction, the SDF gradient (normal) and the feature vector z.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.volsdf.encoding import GridEncoding, frequency_dim, frequency_encoding


def _apply_weight_norm(layers: nn.ModuleList) -> None:
    from torch.nn.utils.parametrizations import weight_norm

    for i in range(len(layers)):
        layers[i] = weight_norm(layers[i])


class SDFNetwork(nn.Module):
    """MLP from an encoded position to the signed distance d and a feature vector z.

    Args:
        cfg: the backend config (encoding, widths, init radius).
        generator: seeds the initialisation.

    Shapes: ``forward`` maps (N, 3) positions to (N,) distances and (N, feature_dim) features.
    """

    def __init__(self, cfg: VolSDFConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.encoding_kind = cfg.encoding
        self.pe_levels = cfg.pe_levels
        if cfg.encoding == "grid":
            self.grid: GridEncoding | None = GridEncoding(cfg.grid_resolutions(), cfg.grid_features, cfg.grid_log2_size,
                                                          generator=generator)
            d_enc = 3 + self.grid.out_dim
        else:
            self.grid = None
            d_enc = frequency_dim(3, cfg.pe_levels)
        self.d_enc = d_enc
        width, n_hidden = cfg.sdf_width, cfg.sdf_layers
        self.skip = n_hidden // 2 if n_hidden >= 4 else None  # the paper concatenates the input at layer 4 of 8
        dims = [d_enc] + [width] * n_hidden + [1 + cfg.feature_dim]
        layers = []
        for i in range(len(dims) - 1):
            d_out = dims[i + 1]
            if self.skip is not None and i + 1 == self.skip:
                d_out = dims[i + 1] - d_enc
            layers.append(nn.Linear(dims[i], d_out))
        self.layers = nn.ModuleList(layers)
        self.act = nn.Softplus(beta=100)
        self._geometric_init(cfg.init_radius, generator)
        if cfg.weight_norm:
            _apply_weight_norm(self.layers)

    @torch.no_grad()
    def _geometric_init(self, radius: float, gen: torch.Generator | None) -> None:
        """SAL/IDR geometric initialisation: d(x) ~ |x| - radius."""
        n = len(self.layers)
        for i, lin in enumerate(self.layers):
            d_out, d_in = lin.weight.shape
            if i == n - 1:
                w = torch.randn(d_out, d_in, generator=gen) * 1e-4 + math.sqrt(math.pi) / math.sqrt(d_in)
                lin.weight.copy_(w)
                lin.bias.zero_()
                lin.bias[0] = -radius
                # feature rows: small random, so z carries information from the start
                lin.weight[1:] = torch.randn(d_out - 1, d_in, generator=gen) * math.sqrt(1.0 / d_in)
                continue
            lin.weight.copy_(torch.randn(d_out, d_in, generator=gen) * (math.sqrt(2.0) / math.sqrt(d_out)))
            lin.bias.zero_()
        self.zero_encoded_inputs()

    @torch.no_grad()
    def zero_encoded_inputs(self) -> None:
        """Zero the weights that read encoded channels (first layer and skip layer), keeping raw x."""
        if not isinstance(getattr(self.layers[0], "weight", None), nn.Parameter):
            return  # weight-normalised: nothing to project
        self.layers[0].weight[:, 3:] = 0.0
        if self.skip is not None:
            self.layers[self.skip].weight[:, -(self.d_enc - 3):] = 0.0

    def encode(self, x: torch.Tensor, raw_only: bool = False) -> torch.Tensor:
        """(N, 3) -> (N, d_enc) network input ([x, grid features] or the frequency encoding).

        ``raw_only`` zeroes every encoded channel but x (used by :func:`fit_sphere`)."""
        if raw_only:
            return torch.cat([x, x.new_zeros(x.shape[0], self.d_enc - 3)], -1)
        if self.grid is not None:
            return torch.cat([x, self.grid(x)], -1)
        return frequency_encoding(x, self.pe_levels)

    def forward(self, x: torch.Tensor, raw_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) -> (d (N,), z (N, feature_dim))."""
        e = self.encode(x, raw_only)
        h = e
        n = len(self.layers)
        for i, lin in enumerate(self.layers):
            if self.skip is not None and i == self.skip:
                h = torch.cat([h, e], -1) / math.sqrt(2.0)
            h = lin(h)
            if i < n - 1:
                h = self.act(h)
        return h[:, 0], h[:, 1:]

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) -> (N,) signed distances."""
        return self.forward(x)[0]

    def with_gradient(self, x: torch.Tensor, create_graph: bool = True,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Distances, features and the spatial gradient grad_x d.

        Args:
            x: (N, 3) positions.
            create_graph: keep the graph of the gradient (needed to train through normals / eikonal).

        Returns:
            d (N,), z (N, F), g (N, 3).
        """
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            d, z = self.forward(x)
            (g,) = torch.autograd.grad(d.sum(), x, create_graph=create_graph)
        return d, z, g


class ColorNetwork(nn.Module):
    """Radiance L(x, v, n, z) in [0, 1]^3: ReLU MLP with a sigmoid output (VolSDF "idr" mode).

    Shapes: x (N, 3), view directions v (N, 3) unit, normals n (N, 3), features z (N, F) -> (N, 3).
    """

    def __init__(self, cfg: VolSDFConfig):
        super().__init__()
        self.view_levels = cfg.view_pe_levels
        d_in = 3 + frequency_dim(3, cfg.view_pe_levels) + 3 + cfg.feature_dim
        dims = [d_in] + [cfg.color_width] * cfg.color_layers + [3]
        self.layers = nn.ModuleList([nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1)])
        if cfg.weight_norm:
            _apply_weight_norm(self.layers)

    def forward(self, x: torch.Tensor, v: torch.Tensor, n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, frequency_encoding(v, self.view_levels), n, z], -1)
        for i, lin in enumerate(self.layers):
            h = lin(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return torch.sigmoid(h)


def fit_sphere(net: SDFNetwork, radius: float, steps: int, generator: torch.Generator | None = None,
               batch: int = 2048, lr: float = 1e-3) -> float:
    """Polish the geometric initialisation: fit d(x) = |x| - radius with the encoded channels off.

    A narrow network's geometric init is only roughly a sphere (width 64: the zero level wanders by
    about 0.1); a few hundred Adam steps on the MLP alone, with the weights on encoded channels kept at
    zero, make it a sphere to about 1e-2 while keeping the paper's starting point.

    Args:
        net: the geometry network (CPU or GPU); its grid is not touched.
        radius: sphere radius (normalised units).
        steps: Adam steps.
        generator: random source of the sample points (CPU generator).
        batch: points per step (uniform in the unit ball, half of them near the sphere).
        lr: Adam learning rate.

    Returns:
        The final mean absolute error (normalised units).
    """
    dev = next(net.parameters()).device
    params = [p for name, p in net.named_parameters() if not name.startswith("grid.")]
    opt = torch.optim.Adam(params, lr=lr)
    err = float("nan")
    for _ in range(steps):
        u = torch.randn(batch, 3, generator=generator)
        u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        r = torch.rand(batch, 1, generator=generator) ** (1.0 / 3.0)
        r[: batch // 2] = radius + 0.1 * torch.randn(batch // 2, 1, generator=generator)
        x = (u * r).to(dev)
        d = net.forward(x, raw_only=True)[0]
        loss = (d - (x.norm(dim=-1) - radius)).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        net.zero_encoded_inputs()
        err = float(loss.detach())
    return err
