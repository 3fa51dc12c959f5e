"""Captures without masks: the learned far field, the scene bound, the crop and the small-piece removal.

The end-to-end case trains GVKF on a textured sphere rendered by recon.render in front of a constant
coloured backdrop, without masks: the object must come out intact (its largest piece holds >= 95 % of
the mesh area, before any piece is removed) and close to the sphere.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from recon.backends.gvkf import GVKFConfig
from recon.backends.gvkf.background import FarField, border_colour, pixel_directions
from recon.backends.gvkf.trainer import GVKFTrainer
from recon.backends.scene_bound import SceneBound, clean_to_bound, scene_bound
from recon.io.cameras.normalize import normalize_views, robust_points_box
from recon.meshing.cleanup import crop_to_box, largest_piece_share, remove_small_pieces
from recon.types import Mesh, Views
from tests.backends.gvkf.helpers import ring_cameras

RADIUS = 0.5
BACKDROP = (0.1, 0.2, 0.7)
VIEWS = 16


def _sphere(centre=(0.0, 0.0, 0.0), r: float = 1.0, level: int = 2) -> Mesh:
    s = trimesh.creation.icosphere(level, radius=r)
    return Mesh(np.asarray(s.vertices) + np.asarray(centre), np.asarray(s.faces))


@pytest.fixture(scope="module")
def backdrop_views():
    from recon.render import render_views
    from recon.render.rig import sphere_rig

    cams = sphere_rig(np.zeros(3), RADIUS, VIEWS, 40, fov_deg=21.0, seed=0)
    return render_views(_sphere(r=RADIUS, level=3), supersample=1, cameras=cams, background=BACKDROP)


def test_far_field_starts_at_its_colour_wraps_around_and_learns():
    ff = FarField(torch.tensor([0.2, 0.4, 0.6]), rows=4)
    d = torch.nn.functional.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert torch.allclose(ff(d), torch.tensor([0.2, 0.4, 0.6]).expand(500, 3), atol=1e-5)
    with torch.no_grad():
        ff.logits.normal_(generator=torch.Generator().manual_seed(1))
    a = torch.tensor([[math.cos(math.pi - 1e-4), math.sin(math.pi - 1e-4), 0.1]])
    b = torch.tensor([[math.cos(math.pi - 1e-4), -math.sin(math.pi - 1e-4), 0.1]])  # across the seam
    assert torch.allclose(ff(torch.nn.functional.normalize(a, dim=-1)), ff(torch.nn.functional.normalize(b, dim=-1)),
                          atol=1e-3)
    ff(d).sum().backward()
    assert ff.logits.grad is not None and float(ff.logits.grad.abs().sum()) > 0


def test_pixel_directions_are_unit_and_the_centre_looks_down_the_optical_axis():
    cams = ring_cameras(4, size=32)
    K, c2w = torch.as_tensor(cams.K[1], dtype=torch.float32), torch.as_tensor(cams.cam_to_world[1], dtype=torch.float32)
    d = pixel_directions(K, c2w, 32, 32)
    assert d.shape == (32, 32, 3) and torch.allclose(d.norm(dim=-1), torch.ones(32, 32), atol=1e-5)
    centre = 0.25 * (d[15, 15] + d[15, 16] + d[16, 15] + d[16, 16])
    assert float(torch.dot(torch.nn.functional.normalize(centre, dim=0), c2w[:3, 2])) > 0.9999
    img = torch.zeros(2, 8, 8, 3)
    img[:, 0] = img[:, -1] = img[:, :, 0] = img[:, :, -1] = torch.tensor([0.3, 0.5, 0.1])
    assert torch.allclose(border_colour(img), torch.tensor([0.3, 0.5, 0.1]))


def test_robust_box_ignores_stray_points_and_the_bound_prefers_points():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-0.3, 0.3, (990, 3)), rng.uniform(5, 9, (10, 3))])  # 1 % strays
    lo, hi = robust_points_box(pts)
    assert np.all(lo > -0.45) and np.all(hi < 0.45) and np.all(lo < -0.25) and np.all(hi > 0.25)
    cams = ring_cameras(8)
    b = scene_bound(cams, pts)
    assert b.source == "points" and np.allclose(b.lo, lo) and np.allclose(b.hi, hi)
    c = scene_bound(cams, pts[:5])  # too few points: what every camera sees
    assert c.source == "cameras" and np.all(c.lo < -0.3) and np.all(c.hi > 0.3) and np.all(c.hi - c.lo < 2.01)


def test_normalize_views_centres_the_sparse_points():
    cams = ring_cameras(8, radius=6.0)
    cams.cam_to_world[:, :3, 3] += np.array([3.0, -2.0, 1.0])
    views = Views(cams, [f"/nonexistent/{i}.png" for i in range(8)], None, None)
    pts = np.random.default_rng(1).uniform(-0.2, 0.2, (200, 3)) + np.array([3.2, -2.0, 1.0])
    _, to_world = normalize_views(views, points=pts)
    lo, hi = robust_points_box(pts)
    assert np.allclose(to_world[:3, 3], 0.5 * (lo + hi))
    assert to_world[0, 0] == pytest.approx(1.1 * 0.5 * np.linalg.norm(hi - lo))


def test_crop_and_small_piece_removal():
    big, small = _sphere(r=1.0, level=3), _sphere((3.0, 0.0, 0.0), r=0.08, level=1)
    both = Mesh(np.concatenate([big.vertices, small.vertices]),
                np.concatenate([big.faces, small.faces + big.n_vertices]))
    assert 0.99 < largest_piece_share(both) < 1.0
    assert largest_piece_share(remove_small_pieces(both, 0.01)) == 1.0
    assert remove_small_pieces(both, 0.01).n_faces == big.n_faces
    half = crop_to_box(big, np.array([-2.0, -2.0, 0.0]), np.array([2.0, 2.0, 2.0]))
    assert 0 < half.n_faces < big.n_faces and half.vertices[:, 2].min() >= 0.0
    bound = SceneBound(np.full(3, -1.0), np.full(3, 1.0), "points")
    assert clean_to_bound(both, bound).n_faces == big.n_faces            # the far piece is cropped
    away = SceneBound(np.full(3, 10.0), np.full(3, 11.0), "points")
    assert clean_to_bound(both, away).n_faces == big.n_faces             # a bound that misses empties nothing


def test_gaussians_leaving_the_bound_are_pruned(backdrop_views):
    r = backdrop_views
    cfg = GVKFConfig(steps=4, init="random", init_count=500, densify_from=2, densify_every=2, threads=1,
                     opacity_reset_every=0, checkpoint_every=1e9)
    tr = GVKFTrainer(cfg, r.rgb, None, r.cameras)
    with torch.no_grad():
        tr.gaussians.means[:50] = torch.tensor([0.0, 0.0, 3.0])          # far outside the bound
    box = tr.bound.grown(cfg.bound_margin)
    assert (~box.contains(tr.gaussians.means.detach().numpy())).sum() >= 50
    tr.train(max_steps=2)
    assert np.all(box.contains(tr.gaussians.means.detach().numpy()))
    assert tr.field().scene_bound.source == "cameras"


def test_background_model_keeps_a_constant_background_object_intact(backdrop_views):
    r = backdrop_views
    # every view in the surface query: a point no query view sees unoccluded would count as inside
    cfg = GVKFConfig(steps=500, init="random", init_count=1500, max_gaussians=4000, densify_from=50,
                     densify_every=50, opacity_reset_every=0, sdf_views=VIEWS, mesh_resolution=32, threads=1,
                     checkpoint_every=1e9)
    tr = GVKFTrainer(cfg, r.rgb, None, r.cameras)                       # no masks: the far field is learned
    assert tr.far is not None
    tr.train()
    mesh = tr.field().extract_mesh(resolution=32, colors=False, keep_largest=False)
    share = largest_piece_share(mesh)
    dist = np.abs(np.linalg.norm(mesh.vertices, axis=1) - RADIUS)
    C, H, W = tr.image_shape
    with torch.no_grad():                                               # the far field where the backdrop shows
        far = torch.stack([tr.far.image(tr.K[i], tr.c2w[i], W, H)[[0, 0, -1, -1], [0, -1, 0, -1]] for i in range(C)])
    assert np.abs(np.median(far.reshape(-1, 3).numpy(), 0) - np.array(BACKDROP)).max() < 0.03, far.mean((0, 1))
    assert share >= 0.95 and mesh.n_faces > 1000, (share, mesh.n_faces)
    assert np.median(dist) < 0.03 and np.quantile(dist, 0.9) < 0.1, (np.median(dist), np.quantile(dist, 0.9))
