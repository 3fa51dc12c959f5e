"""Geometric initialisation: the SDF network starts as a sphere of the configured radius."""

from __future__ import annotations

import pytest
import torch

from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.volsdf.networks import ColorNetwork, SDFNetwork, fit_sphere


def _zero_radius(net: SDFNetwork, n_dirs: int = 300, seed: int = 0, n_t: int = 1001) -> torch.Tensor:
    """(n_dirs,) radius of the first zero crossing from the origin outwards along random directions."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n_dirs, 3, generator=g)
    u = u / u.norm(dim=-1, keepdim=True)
    t = torch.linspace(0, 1, n_t)
    with torch.no_grad():
        d = net.sdf((u[:, None, :] * t[None, :, None]).reshape(-1, 3)).reshape(n_dirs, -1)
    first_out = (d < 0).float().argmin(1)  # first sample outside
    i = first_out.clamp(min=1)
    d0, d1 = d.gather(1, (i - 1)[:, None])[:, 0], d.gather(1, i[:, None])[:, 0]
    return t[i - 1] + (t[i] - t[i - 1]) * d0 / (d0 - d1)


@pytest.mark.parametrize("encoding", ["grid", "frequency"])
def test_geometric_init_is_sphere(encoding):
    cfg = VolSDFConfig(encoding=encoding, init_radius=0.45)
    g = torch.Generator().manual_seed(0)
    net = SDFNetwork(cfg, g)
    r0 = _zero_radius(net)
    # the paper's geometric init alone: a lumpy sphere of about the right size for a narrow network
    assert abs(float(r0.mean()) - 0.45) < 0.1
    fit_sphere(net, 0.45, 300, g)
    r = _zero_radius(net)
    assert float((r - 0.45).abs().max()) < 0.03
    # a distance function near the surface, negative inside
    u = torch.randn(200, 3, generator=g)
    x = 0.45 * u / u.norm(dim=-1, keepdim=True) * (1 + 0.2 * torch.rand(200, 1, generator=g))
    d, z, grad = net.with_gradient(x, create_graph=False)
    assert float((grad.norm(dim=-1) - 1).abs().mean()) < 0.1
    assert float(net.sdf(torch.zeros(1, 3)).detach()) < -0.3
    assert z.shape == (200, cfg.feature_dim)
    # encoded channels are still silent: the encoding starts from zero influence
    assert float(net.layers[0].weight.detach()[:, 3:].abs().max()) == 0.0


def test_paper_sized_geometric_init_is_roughly_a_sphere():
    """8 x 256 with the skip at layer 4 (the paper's network): the geometric init alone is a sphere to
    about 10 %; the polishing fit (init_fit_steps) is what makes it one to 1e-2."""
    cfg = VolSDFConfig(encoding="frequency", sdf_layers=8, sdf_width=256, init_radius=0.6, init_fit_steps=0)
    net = SDFNetwork(cfg, torch.Generator().manual_seed(0))
    assert net.skip == 4
    r = _zero_radius(net, n_dirs=100, n_t=201)
    assert abs(float(r.mean()) - 0.6) < 0.1 and float(r.std()) < 0.1


def test_color_network_shapes_and_range():
    cfg = VolSDFConfig()
    net = ColorNetwork(cfg)
    n = 7
    with torch.no_grad():
        c = net(torch.randn(n, 3), torch.randn(n, 3), torch.randn(n, 3), torch.randn(n, cfg.feature_dim))
    assert c.shape == (n, 3) and float(c.min()) >= 0 and float(c.max()) <= 1
