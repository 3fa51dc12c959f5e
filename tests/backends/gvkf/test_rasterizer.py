"""Tile rasteriser against closed forms and the brute-force per-pixel reference (values, gradients)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.backends.gvkf.gaussians import GaussianSet, quat_to_rotmat
from recon.backends.gvkf.raster_reference import rasterize_reference
from recon.backends.gvkf.rasterizer import rasterize
from recon.ops.rays import image_rays

OUTPUTS = ("rgb", "alpha", "depth", "normal", "distortion")



def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """(4, 4) float64 OpenCV camera-to-world at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    y = -(up - (up @ z) * z)
    y /= np.linalg.norm(y)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = np.cross(y, z), y, z, eye
    return torch.as_tensor(T)


def intrinsics(f: float, cx: float, cy: float, skew: float = 0.0) -> torch.Tensor:
    return torch.tensor([[f, skew, cx], [0.0, f * 1.1, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def random_scene(n: int, seed: int, c2w: torch.Tensor) -> GaussianSet:
    """n Gaussians (float64): small and large, anisotropic, some behind the camera and a few
    straddling the near plane; raw parameters drawn so that nothing sits on a clamp."""
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    means = torch.randn(n, 3, generator=g, dtype=d) * 0.45
    log_scales = torch.empty(n, 3, dtype=d).uniform_(-4.5, -1.8, generator=g)
    big = torch.rand(n, generator=g) < 0.05
    log_scales[big] += 1.2                                   # a few Gaussians spanning many tiles
    nb = max(n // 30, 2)
    eye, fwd = c2w[:3, 3], c2w[:3, 2]
    means[:nb] = eye - (0.2 + torch.rand(nb, 1, generator=g, dtype=d)) * fwd   # behind the camera
    near = slice(nb, nb + 2)                                 # two straddling the near plane
    means[near] = eye + 0.03 * fwd + 0.02 * torch.randn(2, 3, generator=g, dtype=d)
    log_scales[near] = math.log(0.01)
    quats = torch.randn(n, 4, generator=g, dtype=d)
    opac = torch.randn(n, generator=g, dtype=d) * 1.5 + 0.5
    opac[near] = -2.5
    col = torch.randn(n, 3, generator=g, dtype=d)
    return GaussianSet(means, log_scales, quats, opac, col)


def scene_32x24(seed: int = 0, n: int = 300):
    c2w = look_at((0.3, -2.6, 0.6))
    K = intrinsics(30.0, 15.3, 12.4, skew=0.7)
    return random_scene(n, seed, c2w), K, c2w


# --------------------------------------------------------------------------- closed forms


def closed_form_alpha(gs: GaussianSet, K: torch.Tensor, c2w: torch.Tensor, W: int, H: int) -> np.ndarray:
    """alpha of a single Gaussian per pixel in numpy float64, straight from the definition."""
    o, d = image_rays(K.numpy(), c2w.numpy(), W, H)
    R = quat_to_rotmat(gs.quats.detach()).numpy()[0]
    s = gs.scales().detach().numpy()[0]
    mu = gs.means.detach().numpy()[0]
    op = gs.opacities().detach().numpy()[0]
    o_l = ((o - mu) @ R) / s
    d_l = (d @ R) / s
    A, B, C = (d_l * d_l).sum(1), 2 * (o_l * d_l).sum(1), (o_l * o_l).sum(1)
    a = op * np.exp(-0.5 * (C - B * B / (4 * A)))
    a = np.where(a >= 1 / 255, np.minimum(a, 0.99), 0.0)
    return a.reshape(H, W)


def test_single_gaussian_matches_closed_form():
    c2w = look_at((0.4, -2.0, 0.3))
    K = intrinsics(40.0, 20.0, 15.0)
    q = torch.tensor([[0.8, 0.3, -0.4, 0.2]], dtype=torch.float64)
    gs = GaussianSet.from_values(torch.tensor([[0.05, 0.1, -0.05]]), torch.tensor([[0.25, 0.08, 0.02]]), q, 0.9, 0.5)
    gs = GaussianSet(*(p.double() for p in gs.parameters()))
    out = rasterize(gs, K, c2w, 40, 30)
    ref = closed_form_alpha(gs, K, c2w, 40, 30)
    assert (ref > 0.1).sum() > 20 and (ref == 0).sum() > 100          # a real, bounded footprint
    np.testing.assert_allclose(out.alpha.numpy(), ref, atol=1e-10)
    # single Gaussian: colour = alpha * colour (black background), depth = alpha * z
    np.testing.assert_allclose(out.rgb[..., 1].numpy(), 0.5 * ref, atol=1e-10)


def test_isotropic_contour_radius_is_f_s_over_z():
    f, z, s, W = 1000.0, 20.0, 0.06, 41       # small angles: f tan(asin(s / z)) ~ f s / z
    K = torch.tensor([[f, 0, W / 2], [0, f, W / 2], [0, 0, 1]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)                      # camera at origin looking along +z
    gs = GaussianSet.from_values(torch.tensor([[0.0, 0.0, z]]), torch.tensor([s]), None, 0.9, 0.5)
    gs = GaussianSet(*(p.double() for p in gs.parameters()))
    alpha = rasterize(gs, K, c2w, W, W).alpha[W // 2].numpy()    # central row, centre at pixel 20
    r = np.arange(W) + 0.5 - W / 2
    keep = alpha > 0.05
    slope = np.polyfit(r[keep] ** 2, np.log(alpha[keep] / 0.9), 1)[0]
    sigma_px = math.sqrt(-0.5 / slope)                           # 1-sigma contour radius in px
    assert sigma_px == pytest.approx(f * s / z, rel=1e-3)
    assert alpha[W // 2] == pytest.approx(float(gs.opacities()[0]), abs=1e-12)


# --------------------------------------------------------------------------- reference


@pytest.mark.parametrize("tile_size,chunk", [(8, 32), (4, 7), (5, 3), (16, 64)])
def test_matches_bruteforce_reference(tile_size, chunk):
    gs, K, c2w = scene_32x24(seed=tile_size)
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    out = rasterize(gs, K, c2w, 32, 24, background=bg, tile_size=tile_size, chunk=chunk, min_transmittance=0.0)
    ref = rasterize_reference(gs, K, c2w, 32, 24, background=bg)
    for name in OUTPUTS:
        a, b = getattr(out, name), getattr(ref, name)
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0, msg=name)
    assert torch.equal(out.visible, ref.visible)
    assert torch.equal(out.radii, ref.radii)
    # The scene exercises what it should: occlusion, culling, near plane, blank pixels.
    assert ref.alpha.max() > 0.99 and ref.alpha.min() < 0.05 and ref.distortion.max() > 1e-3
    assert (~ref.visible).sum() >= 10 and ref.visible.sum() > 100
    assert ref.visible[10:12].any()                                   # a Gaussian at the near plane shows


def test_float32_matches_float64_reference():
    gs, K, c2w = scene_32x24(seed=3)
    ref = rasterize_reference(gs, K, c2w, 32, 24)
    g32 = GaussianSet(*(p.float() for p in gs.parameters()))
    out = rasterize(g32, K.float(), c2w.float(), 32, 24, min_transmittance=0.0)
    for name in OUTPUTS:
        torch.testing.assert_close(getattr(out, name).double(), getattr(ref, name), atol=2e-4, rtol=0, msg=name)


def test_small_far_gaussian_float32_is_accurate():
    """z / s = 2000: the textbook C - B^2/4A loses everything in float32; the cross form does not."""
    f, z, s, W = 4000.0, 20.0, 0.01, 24
    K = torch.tensor([[f, 0, W / 2 + 0.2], [0, f, W / 2 - 0.3], [0, 0, 1]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)
    gs = GaussianSet.from_values(torch.tensor([[0.0, 0.0, z]]), torch.tensor([[s, 0.5 * s, 0.2 * s]]),
                                 torch.tensor([[0.9, 0.1, 0.3, -0.2]]), 0.8, 0.5)
    ref = closed_form_alpha(GaussianSet(*(p.double() for p in gs.parameters())), K, c2w, W, W)
    out = rasterize(gs, K.float(), c2w.float(), W, W).alpha.double().numpy()
    assert (ref > 0.05).sum() > 10
    np.testing.assert_allclose(out, ref, atol=2e-5)


def _weighted_loss(out, weights) -> torch.Tensor:
    return sum((getattr(out, k) * w).sum() for k, w in weights.items())


def test_gradients_match_reference():
    g = torch.Generator().manual_seed(7)
    H, W = 24, 32
    weights = {k: torch.randn(*s, generator=g, dtype=torch.float64)
               for k, s in zip(OUTPUTS, [(H, W, 3), (H, W), (H, W), (H, W, 3), (H, W)])}
    weights["distortion"] *= 30.0
    grads = []
    for fn in (lambda s, K, c: rasterize(s, K, c, W, H, tile_size=8, chunk=5, min_transmittance=0.0),
               lambda s, K, c: rasterize_reference(s, K, c, W, H)):
        gs, K, c2w = scene_32x24(seed=11, n=200)
        for p in gs.parameters():
            p.requires_grad_(True)
        _weighted_loss(fn(gs, K, c2w), weights).backward()
        grads.append([p.grad for p in gs.parameters()])
    for name, a, b in zip(("means", "log_scales", "quats", "opacity_logits", "colour_logits"), *grads):
        assert b.abs().max() > 1e-3, name                                # gradient actually reaches it
        torch.testing.assert_close(a, b, atol=1e-8 * float(b.abs().max()), rtol=0, msg=name)


@pytest.mark.parametrize("output", OUTPUTS)
def test_each_output_has_gradients_to_geometry(output):
    gs, K, c2w = scene_32x24(seed=5, n=120)
    for p in gs.parameters():
        p.requires_grad_(True)
    getattr(rasterize(gs, K, c2w, 32, 24), output).sum().backward()
    for name in ("means", "log_scales", "quats", "opacity_logits"):
        assert getattr(gs, name).grad.abs().max() > 0, (output, name)


def test_gradcheck_tiny():
    c2w = look_at((0.2, -2.0, 0.4))
    K = torch.tensor([[6.0, 0.3, 3.1], [0.0, 6.5, 2.4], [0.0, 0.0, 1.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    n = 4
    params = [torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.3,
              torch.empty(n, 3, dtype=torch.float64).uniform_(-1.2, -0.6, generator=g),
              torch.randn(n, 4, generator=g, dtype=torch.float64),
              torch.randn(n, generator=g, dtype=torch.float64) * 0.5 - 0.5,
              torch.randn(n, 3, generator=g, dtype=torch.float64)]
    params = [p.requires_grad_(True) for p in params]
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)

    def render(*ps):
        out = rasterize(GaussianSet(*ps), K, c2w, 6, 5, background=bg, tile_size=4, chunk=2)
        return tuple(getattr(out, k) for k in OUTPUTS)

    ref = rasterize_reference(GaussianSet(*(p.detach() for p in params)), K, c2w, 6, 5)
    assert ref.alpha.min() > 0.05                                   # no pixel sits at the 1/255 cut
    assert torch.autograd.gradcheck(render, params, eps=1e-6, atol=1e-6, rtol=1e-4)


# --------------------------------------------------------------------------- behaviour


def dense_wall(n: int = 1500, seed: int = 0) -> tuple[GaussianSet, torch.Tensor, torch.Tensor]:
    """Many opaque Gaussians in a slab wider than the view (tiles saturate quickly)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    means = (torch.rand(n, 3, generator=g, dtype=d) - 0.5) * torch.tensor([3.2, 2.6, 0.8], dtype=d)
    means[:, 2] += 2.4
    gs = GaussianSet(means, torch.full((n, 3), math.log(0.12), dtype=d), torch.randn(n, 4, generator=g, dtype=d),
                     torch.full((n,), 3.0, dtype=d), torch.randn(n, 3, generator=g, dtype=d))
    K = torch.tensor([[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]], dtype=d)
    return gs, K, torch.eye(4, dtype=d)


def test_early_termination_changes_little():
    gs, K, c2w = dense_wall()
    exact = rasterize(gs, K, c2w, 32, 24, min_transmittance=0.0, chunk=8)
    early = rasterize(gs, K, c2w, 32, 24, chunk=8)
    assert early.visible.sum() < exact.visible.sum()                # tiles really stopped early
    assert (exact.rgb - early.rgb).abs().max() <= 1e-4
    assert (exact.alpha - early.alpha).abs().max() <= 1e-4
    assert (exact.depth - early.depth).abs().max() <= 1e-4 * 3.0     # depths are below 3
    assert (exact.normal - early.normal).abs().max() <= 1e-4


def test_max_per_tile():
    gs, K, c2w = dense_wall()
    exact = rasterize(gs, K, c2w, 32, 24, min_transmittance=0.0)
    roomy = rasterize(gs, K, c2w, 32, 24, min_transmittance=0.0, max_per_tile=10_000)
    capped = rasterize(gs, K, c2w, 32, 24, min_transmittance=0.0, max_per_tile=3)
    assert torch.equal(exact.rgb, roomy.rgb)
    assert (exact.alpha - capped.alpha).abs().max() > 0.05


def test_front_opaque_gaussian_hides_the_one_behind():
    c2w = torch.eye(4, dtype=torch.float64)
    K = torch.tensor([[20.0, 0, 8.5], [0, 20.0, 8.5], [0, 0, 1]], dtype=torch.float64)   # pixel (8, 8) on axis
    # The far green one is listed first: order must come from depth, not from the index.
    gs = GaussianSet.from_values(torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 2.0]]),
                                 torch.tensor([[0.5, 0.5, 0.05], [0.5, 0.5, 0.05]]), None,
                                 torch.tensor([0.999, 0.999]), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    gs = GaussianSet(*(p.double() for p in gs.parameters()))
    out = rasterize(gs, K, c2w, 16, 16)
    c = out.rgb[8, 8]
    red, green = gs.colours()[1], gs.colours()[0]
    a1 = min(0.99, float(gs.opacities()[1]))
    a0 = min(0.99, float(gs.opacities()[0]))
    torch.testing.assert_close(c, a1 * red + (1 - a1) * a0 * green, atol=1e-12, rtol=0)
    assert c[0] > 0.98 and c[1] < 0.011
    assert float(out.depth[8, 8]) == pytest.approx(a1 * 2.0 + (1 - a1) * a0 * 3.0, abs=1e-9)
    # normal of a disc facing the camera: -z (towards the camera), weighted by alpha
    torch.testing.assert_close(out.normal[8, 8], torch.tensor([0, 0, -float(out.alpha[8, 8])], dtype=torch.float64),
                               atol=1e-9, rtol=0)


def test_compute_extras_false_and_empty_scene():
    gs, K, c2w = scene_32x24(seed=1)
    full = rasterize(gs, K, c2w, 32, 24)
    lean = rasterize(gs, K, c2w, 32, 24, compute_extras=False)
    torch.testing.assert_close(lean.rgb, full.rgb, atol=1e-12, rtol=0)
    torch.testing.assert_close(lean.alpha, full.alpha, atol=1e-12, rtol=0)
    assert lean.depth.abs().max() == 0 and lean.normal.abs().max() == 0 and lean.distortion.abs().max() == 0
    behind = GaussianSet(gs.means - 10 * c2w[:3, 2], gs.log_scales, gs.quats, gs.opacity_logits, gs.colour_logits)
    bg = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    out = rasterize(behind, K, c2w, 32, 24, background=bg)
    assert torch.equal(out.rgb, bg.expand(24, 32, 3)) and out.alpha.abs().max() == 0
    assert not out.visible.any() and out.radii.abs().max() == 0
