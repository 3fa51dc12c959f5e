"""The VolSDF model (geometry, colour, density) and volume rendering of rays inside the unit sphere.

Rays are restricted to the unit sphere: each ray is integrated from where it enters the sphere (or its
origin, if inside) to where it leaves; the transmittance left at the exit multiplies a constant
background colour. All positions are in the normalised frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.volsdf.density import LaplaceDensity
from recon.backends.volsdf.networks import ColorNetwork, SDFNetwork
from recon.backends.volsdf.sampler import SamplerOutput, error_bounded_sample, render_weights
from recon.ops.rays import pixel_rays


def sphere_intersection(rays_o: torch.Tensor, rays_d: torch.Tensor, radius: float = 1.0,
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through a sphere centred at the origin.

    Args:
        rays_o: (R, 3) origins; rays_d: (R, 3) unit directions.
        radius: sphere radius.

    Returns:
        near (R,), far (R,) distances (near clamped at 0 for origins inside), and hit (R,) bool
        (the ray meets the sphere ahead of its origin with a chord longer than 1e-6).
    """
    b = (rays_o * rays_d).sum(-1)
    c = (rays_o * rays_o).sum(-1) - radius * radius
    disc = b * b - c
    root = torch.sqrt(disc.clamp_min(0.0))
    near = (-b - root).clamp_min(0.0)
    far = -b + root
    hit = (disc > 0) & (far > near + 1e-6)
    far = torch.where(hit, far, near + 1e-6)
    return near, far, hit


@dataclass
class RenderOutput:
    """Rendered rays.

    Attributes:
        rgb: (R, 3) colour composited over the background.
        acc: (R,) accumulated opacity (1 - transmittance at the sphere exit).
        depth: (R,) expected distance along the ray (weights normalised by acc).
        normal: (R, 3) weight-averaged SDF gradient (unnormalised).
        grad_eik: (K, 3) SDF gradients at the eikonal points (train only), else None.
        grad_smooth: (2, R, 3) SDF gradients at the likely surface point of each ray and at a jittered copy of
            it (train with ``smooth_std`` > 0 only), else None.
        samples: the sampler's output.
    """

    rgb: torch.Tensor
    acc: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    grad_eik: torch.Tensor | None
    samples: SamplerOutput
    grad_smooth: torch.Tensor | None = None


class VolSDFModel(nn.Module):
    """Geometry network + colour network + Laplace density, with a constant background colour.

    Attributes:
        sdf_net, color_net, density: the three learned parts.
        background: (3,) buffer, the colour behind the unit sphere.
    """

    def __init__(self, cfg: VolSDFConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.sdf_net = SDFNetwork(cfg, generator)
        self.color_net = ColorNetwork(cfg)
        self.density = LaplaceDensity(cfg.beta_init, cfg.beta_min)
        self.register_buffer("background", torch.zeros(3))

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(K, 3) -> (K,) signed distances (normalised frame)."""
        return self.sdf_net.sdf(x)

    def render(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, train: bool = True,
               generator: torch.Generator | None = None, n_uniform_eikonal: int | None = None,
               smooth_std: float = 0.0) -> RenderOutput:
        """Render R rays (origins (R, 3), unit directions (R, 3)) through the unit sphere.

        In training the graph is kept through the normals (colour and eikonal losses can backpropagate
        into the geometry); ``n_uniform_eikonal`` extra points uniform in the unit ball (default R) are
        evaluated with the render points and their gradients returned in ``grad_eik`` after the
        near-surface point of each ray. With ``smooth_std`` > 0, the likely surface point of each ray and a
        copy jittered by N(0, smooth_std^2) are evaluated too (``grad_smooth``, for a normal-smoothness loss).
        """
        cfg = self.cfg
        near, far, hit = sphere_intersection(rays_o, rays_d)
        beta = self.density.beta()
        smp = error_bounded_sample(self.sdf, rays_o, rays_d, near, far, beta.detach(), eps=cfg.sampler_eps,
                                   n_eval=cfg.n_eval, n_samples=cfg.n_samples, n_extra=cfg.n_extra,
                                   max_iters=cfg.sampler_iters, bisection_steps=cfg.bisection_steps, train=train,
                                   generator=generator)
        t = smp.t
        R, S = t.shape
        x = (rays_o[:, None, :] + t[..., None] * rays_d[:, None, :]).reshape(-1, 3)
        n_uni = 0
        if train:
            n_uni = R if n_uniform_eikonal is None else int(n_uniform_eikonal)
            u = torch.randn(n_uni, 3, device=x.device, dtype=x.dtype, generator=generator)
            r = torch.rand(n_uni, 1, device=x.device, dtype=x.dtype, generator=generator) ** (1.0 / 3.0)
            x = torch.cat([x, u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12) * r], 0)
            if smooth_std > 0:
                xs = rays_o + smp.t_surface[:, None] * rays_d
                jit = torch.randn(xs.shape, device=x.device, dtype=x.dtype, generator=generator) * smooth_std
                x = torch.cat([x, xs, xs + jit], 0)
        d, z, g = self.sdf_net.with_gradient(x, create_graph=train)
        grad_eik = grad_smooth = None
        if train:
            g_near = g[: R * S].reshape(R, S, 3)[torch.arange(R, device=x.device), smp.eikonal_index]
            grad_eik = torch.cat([g_near, g[R * S: R * S + n_uni]], 0)
            if smooth_std > 0:
                grad_smooth = g[R * S + n_uni:].reshape(2, R, 3)
            d, z, g, x = d[: R * S], z[: R * S], g[: R * S], x[: R * S]
        dirs = rays_d[:, None, :].expand(R, S, 3).reshape(-1, 3)
        rgb_s = self.color_net(x, dirs, g, z).reshape(R, S, 3)
        sigma = self.density(d.reshape(R, S), beta)
        w = render_weights(t, sigma)  # (R, S - 1)
        w = torch.where(hit[:, None], w, torch.zeros_like(w))
        acc = w.sum(-1)
        rgb = (w[..., None] * rgb_s[:, :-1]).sum(1) + (1.0 - acc)[:, None] * self.background
        depth = (w * t[:, :-1]).sum(-1) / acc.clamp_min(1e-6)
        normal = (w[..., None] * g.reshape(R, S, 3)[:, :-1]).sum(1)
        if not train:
            rgb, acc, depth, normal = rgb.detach(), acc.detach(), depth.detach(), normal.detach()
        return RenderOutput(rgb, acc, depth, normal, grad_eik, smp, grad_smooth)

    @torch.no_grad()
    def render_image(self, K: torch.Tensor, cam_to_world: torch.Tensor, width: int, height: int,
                     chunk: int = 4096) -> dict[str, torch.Tensor]:
        """Render one camera (deterministic sampling).

        Args:
            K: (3, 3) intrinsics; cam_to_world: (4, 4), normalised frame; width, height in pixels.
            chunk: rays per batch.

        Returns:
            {"rgb": (H, W, 3), "acc": (H, W), "depth": (H, W)} on the model's device.
        """

        dev = self.background.device
        j, i = torch.meshgrid(torch.arange(height, device=dev), torch.arange(width, device=dev), indexing="ij")
        uv = torch.stack([i.reshape(-1) + 0.5, j.reshape(-1) + 0.5], -1).double()
        o, dirs, _ = pixel_rays(K.to(dev).double(), cam_to_world.to(dev).double(), uv)
        o, dirs = o.float(), dirs.float()
        outs = {"rgb": [], "acc": [], "depth": []}
        for s in range(0, o.shape[0], chunk):
            r = self.render(o[s:s + chunk], dirs[s:s + chunk], train=False)
            outs["rgb"].append(r.rgb)
            outs["acc"].append(r.acc)
            outs["depth"].append(r.depth)
        return {"rgb": torch.cat(outs["rgb"]).reshape(height, width, 3),
                "acc": torch.cat(outs["acc"]).reshape(height, width),
                "depth": torch.cat(outs["depth"]).reshape(height, width)}
