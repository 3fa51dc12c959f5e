"""GVKF opacity -> signed distance: the binned fast path against the dense reference, analytic
single-Gaussian values, and the zero level of a solid ball of Gaussians."""

from __future__ import annotations

import math

import numpy as np
import torch

from recon.backends.gvkf import surface
from recon.backends.gvkf.gaussians import GaussianSet
from recon.backends.gvkf.surface import opacity_to_sdf, opacity_to_sdf_reference
from recon.backends.gvkf.tetra import extract_mesh



def look_at(eye: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """(4, 4) OpenCV camera-to-world at ``eye`` looking at ``target`` (origin by default)."""
    target = np.zeros(3) if target is None else target
    z = target - eye
    z = z / np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def sphere_cameras(n: int, radius: float, width: int, height: int, fov_deg: float = 40.0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """n cameras on a Fibonacci sphere looking at the origin: K (n, 3, 3), cam_to_world (n, 4, 4)."""
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    eyes = radius * np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return torch.tensor(np.stack([K] * n)), torch.tensor(np.stack([look_at(e) for e in eyes]))


def as_double(g: GaussianSet) -> GaussianSet:
    return GaussianSet(*(p.double() for p in g.parameters()))


def random_scene(seed: int = 0):
    """~300 anisotropic Gaussians of mixed opacity, 4 cameras (one with a skewed, off-centre K),
    queries everywhere: inside the cloud, outside some views' frusta, behind cameras, and at a
    camera centre; plus Gaussians that reach across a camera plane."""
    rng = np.random.default_rng(seed)
    n = 300
    means = rng.uniform(-0.5, 0.5, (n, 3))
    scales = np.exp(rng.uniform(math.log(0.01), math.log(0.15), (n, 3)))
    K, c2w = sphere_cameras(4, 2.0, 48, 40)
    K[2, 0, 1] = 3.0
    K[2, 0, 2] += 5.0
    eyes = c2w[:, :3, 3].numpy()
    # Gaussians around / across the camera planes (the fast path must give them the whole image)
    means = np.concatenate([means, eyes[:2] * 0.97, eyes[2:3] * 1.02])
    scales = np.concatenate([scales, np.full((3, 3), 0.1)])
    quats = rng.normal(size=(n + 3, 4))
    opac = np.concatenate([rng.uniform(0.002, 0.99, n), [0.9, 0.9, 0.9]])
    g = GaussianSet.from_values(means, scales, quats, opac)
    pts = np.concatenate([
        rng.uniform(-1.2, 1.2, (1500, 3)),
        means[:200] + rng.normal(scale=0.05, size=(200, 3)),
        eyes * 1.3,                     # behind the camera: that view does not vote
        eyes[:1],                       # a camera centre
        np.array([[30.0, 0.0, 0.0]]),   # seen by no view
    ])
    return g, K, c2w, torch.tensor(pts)


def test_fast_matches_reference_float64():
    g, K, c2w, pts = random_scene()
    g64 = as_double(g)
    ref = opacity_to_sdf_reference(g64, K, c2w, 48, 40, pts)
    # the scene must exercise every branch: partly visible queries, saturated and finite D
    votes = torch.stack([surface._project_queries(K[v], c2w[v], 48, 40, pts)[2] for v in range(4)])
    assert (votes.sum(0) == 0).any() and ((votes.sum(0) > 0) & (votes.sum(0) < 4)).any()
    assert (ref == 20.0).any() and (ref < 0).sum() > 50 and ((ref > -20) & (ref < 20)).sum() > 500
    assert ref[-1] == 20.0
    for chunk in (97, 1 << 20):
        fast = opacity_to_sdf(g64, K, c2w, 48, 40, pts, chunk=chunk)
        assert fast.dtype == torch.float64
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)


def test_fast_float32_close_to_reference():
    g, K, c2w, pts = random_scene(seed=1)
    ref = opacity_to_sdf_reference(as_double(g), K, c2w, 48, 40, pts)
    fast = opacity_to_sdf(g, K.float(), c2w.float(), 48, 40, pts.float())
    assert fast.dtype == torch.float32
    assert (fast.double() - ref).abs().max() < 1e-3


def test_screen_footprints_are_the_projected_ellipsoid_silhouettes():
    rng = np.random.default_rng(3)
    n = 50
    K = torch.tensor([[60.0, 2.0, 33.0], [0.0, 55.0, 30.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    mu = torch.tensor(np.c_[rng.uniform(-1, 1, (n, 2)), rng.uniform(1.5, 4, n)])
    g = as_double(GaussianSet.from_values(mu, np.exp(rng.uniform(-4, -1, (n, 3))), rng.normal(size=(n, 4))))
    lo, hi, centre, shape = surface._screen_footprints(mu, g.covariances(), K, 64, 64)
    # dense samples of the 3-sigma ellipsoid surface, projected
    u = torch.tensor(rng.normal(size=(4000, 3)))
    u = u / u.norm(dim=1, keepdim=True)
    L = torch.linalg.cholesky(g.covariances())
    surf = mu[:, None, :] + 3.0 * torch.einsum("nij,kj->nki", L, u)       # (n, k, 3)
    uv = surf[..., :2] / surf[..., 2:] * torch.diagonal(K)[:2] + K[:2, 2]
    uv[..., 0] += K[0, 1] * surf[..., 1] / surf[..., 2]
    assert (uv >= lo[:, None, :]).all() and (uv <= hi[:, None, :]).all()
    # and tight: the samples reach within 2% of the box size on every side
    size = (hi - lo)
    assert ((uv.amin(1) - lo) / size).max() < 0.02 and ((hi - uv.amax(1)) / size).max() < 0.02
    # the silhouette ellipse holds every projected point and is reached by the outermost ones
    duv = uv - centre[:, None, :]
    quad = (shape[:, None, 0] * duv[..., 0] ** 2 + 2 * shape[:, None, 1] * duv[..., 0] * duv[..., 1]
            + shape[:, None, 2] * duv[..., 1] ** 2)
    assert quad.max() <= 1.0 and quad.amax(1).min() > 0.97
    # a Gaussian reaching the camera plane covers the whole image, with a test that always passes
    lo2, hi2, _, shape2 = surface._screen_footprints(torch.tensor([[0.0, 0.0, 0.2]]), 0.01 * torch.eye(3)[None],
                                                     K, 64, 64)
    assert (lo2 < 0).all() and (hi2[0] > 64).all() and (shape2 == 0).all()


def test_ellipse_meets_boxes_matches_dense_sampling():
    rng = np.random.default_rng(4)
    b = 400
    centre = torch.tensor(rng.uniform(0, 10, (b, 2)))
    A = 2.0 * torch.tensor(rng.normal(size=(b, 2, 2)))
    W = A @ A.transpose(1, 2) + 0.05 * torch.eye(2)
    S = torch.linalg.inv(W)
    shape = torch.stack([S[:, 0, 0], S[:, 0, 1], S[:, 1, 1]], 1)
    lo = torch.tensor(rng.uniform(0, 10, (b, 2)))
    hi = lo + torch.tensor(rng.uniform(0.2, 3, (b, 2)))
    fast = surface.ellipse_meets_boxes(centre, shape, lo, hi)
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    p = lo[:, None, :] + grid[None] * (hi - lo)[:, None, :] - centre[:, None, :]
    q = torch.einsum("bki,bij,bkj->bk", p, S, p)
    dense_min = q.amin(1)
    clear = (dense_min - 1).abs() > 0.02                        # away from grazing contact
    assert clear.sum() > 350 and 50 < fast.sum() < 350
    assert torch.equal(fast[clear], (dense_min <= 1)[clear])


def test_single_gaussian_analytic_values():
    """One isotropic Gaussian on the optical axis of camera 0; camera 1 sees x from the side."""
    o, s, shift = 0.8, 0.1, 0.15
    g = GaussianSet.from_values(np.zeros((1, 3)), np.full(1, s), None, o)
    eye0 = np.array([0.0, 0.0, -2.0])
    c2w = torch.tensor(np.stack([look_at(eye0), look_at(np.array([2.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]))]),
                       dtype=torch.float32)
    K = torch.tensor([[[50.0, 0.0, 32.0], [0.0, 50.0, 32.0], [0.0, 0.0, 1.0]]] * 2)
    behind = [0.0, 0.0, 0.3]      # past the centre: the peak alpha o counts
    before = [0.0, 0.0, -0.15]    # 1.5 sigma in front of the centre: alpha = o exp(-1.125)
    side = [0.0, 0.0, 1.0]        # camera 1 sees it in free space; camera 0 through the Gaussian
    pts = torch.tensor([behind, before, side])
    d = opacity_to_sdf(g, K[:1], c2w[:1], 64, 64, pts, shift=shift)
    a_before = o * math.exp(-0.5 * 1.5 ** 2)
    expected = torch.tensor([math.log(1 / o - 1) - shift, math.log(1 / a_before - 1) - shift,
                             math.log(1 / o - 1) - shift])
    torch.testing.assert_close(d, expected, atol=1e-5, rtol=0)
    view1 = opacity_to_sdf(g, K[1:], c2w[1:], 64, 64, pts, shift=shift)
    assert view1[2] == 20.0 and (view1[:2] < 20.0).all()
    both = opacity_to_sdf(g, K, c2w, 64, 64, pts, shift=shift)
    torch.testing.assert_close(both, torch.maximum(d, view1))    # the least opaque view wins


def ball_of_gaussians(radius: float = 0.5, spacing: float = 0.05, scale: float = 0.03, seed: int = 0):
    rng = np.random.default_rng(seed)
    axis = np.arange(-radius, radius + 1e-9, spacing)
    c = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    c = c + rng.uniform(-0.3 * spacing, 0.3 * spacing, c.shape)
    c = c[np.linalg.norm(c, axis=1) <= radius - scale]
    return GaussianSet.from_values(c, np.full(len(c), scale), None, 0.95)


def test_solid_ball_zero_level_near_sphere(monkeypatch):
    g = ball_of_gaussians()
    assert len(g) > 2000
    K, c2w = sphere_cameras(12, 2.5, 64, 64)
    K, c2w = K.float(), c2w.float()
    evaluated = []
    pair_fn = surface._pair_log_transmittance
    monkeypatch.setattr(surface, "_pair_log_transmittance",
                        lambda cols, d: evaluated.append(cols[0].numel()) or pair_fn(cols, d))
    rng = np.random.default_rng(5)
    dirs = rng.normal(size=(24, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    radii = np.linspace(0.0, 0.9, 181)
    pts = torch.tensor((dirs[:, None, :] * radii[None, :, None]).reshape(-1, 3), dtype=torch.float32)
    progress = []
    D = opacity_to_sdf(g, K, c2w, 64, 64, pts, progress=progress.append).reshape(24, -1).numpy()
    assert len(progress) == 12 and progress[-1] == 1.0
    assert sum(evaluated) < 0.05 * len(pts) * len(g) * 12          # binning, not all pairs
    assert (D[:, radii >= 0.8] > 0).all()
    assert (D[:, radii <= 0.35] < -2).all()
    last_inside = np.array([radii[np.nonzero(row < 0)[0].max()] for row in D])
    assert np.abs(last_inside - 0.5).max() < 0.05          # within ~1.5 Gaussian scales
    # D is monotone enough across the surface: no negative values outside r = 0.56
    assert (D[:, radii > 0.56] > 0).all()


def test_mesh_of_ball_from_opacity_field():
    g = ball_of_gaussians(spacing=0.07, scale=0.04)
    K, c2w = sphere_cameras(12, 2.5, 64, 64)
    K, c2w = K.float(), c2w.float()
    sdf = lambda x: opacity_to_sdf(g, K, c2w, 64, 64, x)  # noqa: E731
    V, F = extract_mesh(sdf, g, bisection_steps=3)
    r = np.linalg.norm(V, axis=1)
    assert F.shape[0] > 500
    assert np.abs(r - 0.5).max() < 0.07 and abs(np.median(r) - 0.5) < 0.03
