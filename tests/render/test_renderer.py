"""The test renderer: determinism, camera placement, exact depth/normals on a sphere, texture rules."""

from __future__ import annotations

import os

import numpy as np
import pytest
import trimesh

os.environ.setdefault("OMP_NUM_THREADS", "1")

from recon.ops.rays import pixel_rays  # noqa: E402
from recon.render import fibonacci_directions, render_views  # noqa: E402
from recon.render.texture import surface_colour  # noqa: E402
from recon.types import Mesh  # noqa: E402

CENTRE = np.array([1.0, 2.0, -0.5])
RADIUS = 0.8


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    tm = trimesh.creation.icosphere(5, radius=RADIUS)
    return Mesh.from_trimesh(tm).transformed(offset=CENTRE)


@pytest.fixture(scope="module")
def sphere_render(sphere):
    return render_views(sphere, n_views=12, size=32, seed=1)


def test_same_seed_same_images_other_seed_other_views(sphere, sphere_render):
    again = render_views(sphere, n_views=12, size=32, seed=1)
    for a, b in ((again.rgb, sphere_render.rgb), (again.alpha, sphere_render.alpha), (again.depth, sphere_render.depth),
                 (again.normals, sphere_render.normals), (again.cameras.cam_to_world, sphere_render.cameras.cam_to_world)):
        np.testing.assert_array_equal(a, b)
    other = render_views(sphere, n_views=12, size=32, seed=2)
    assert not np.allclose(other.cameras.cam_to_world, sphere_render.cameras.cam_to_world)


def test_fibonacci_directions_cover_the_sphere_evenly():
    d = fibonacci_directions(48, seed=0)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    assert np.linalg.norm(d.mean(0)) < 0.05  # balanced: both hemispheres, all sides
    for axis in np.eye(3):
        assert (d @ axis > 0.2).sum() > 12 and (d @ axis < -0.2).sum() > 12
    # nearest-neighbour angles are nearly uniform
    cos = np.clip(d @ d.T, -1, 1) - 2 * np.eye(48)
    nn = np.degrees(np.arccos(cos.max(1)))
    assert nn.min() > 0.6 * nn.mean()


def test_cameras_look_at_the_centre_and_frame_the_object(sphere_render):
    r = sphere_render
    cams = r.cameras
    np.testing.assert_allclose(r.centre, CENTRE, atol=1e-3)
    for c in range(len(cams)):
        o, d, _ = pixel_rays(cams.K[c], cams.cam_to_world[c], np.array([[16.0, 16.0]]))
        to_c = CENTRE - o[0]
        np.testing.assert_allclose(d[0], to_c / np.linalg.norm(to_c), atol=1e-3)
        R = cams.cam_to_world[c, :3, :3]
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) > 0
    # the whole object is in view: the image border is background, the centre is covered
    a = r.alpha
    assert a[:, 0].max() == 0 and a[:, -1].max() == 0 and a[:, :, 0].max() == 0 and a[:, :, -1].max() == 0
    assert np.all(a[:, 14:18, 14:18] == 1.0)
    # cameras above and below the object
    heights = cams.cam_to_world[:, 1, 3] - CENTRE[1]
    assert (heights > 0).any() and (heights < 0).any()


def test_depth_and_normals_are_exact_on_a_sphere(sphere_render):
    r = sphere_render
    cams = r.cameras
    for c in range(len(cams)):
        rows, cols = np.nonzero(r.depth[c] > 0)
        uv = np.stack([cols + 0.5, rows + 0.5], -1).astype(np.float64)
        o, d, cos = pixel_rays(cams.K[c], cams.cam_to_world[c], uv)
        # analytic first hit of each ray with the true sphere
        oc = o - CENTRE
        b = (oc * d).sum(1)
        disc = b * b - ((oc * oc).sum(1) - RADIUS ** 2)
        assert np.all(disc > 0)
        t = -b - np.sqrt(disc)
        z_true = t * cos
        # the mesh is a polyhedron inscribed in the sphere: hits lie just inside the true sphere
        hit = o + d * (r.depth[c][rows, cols] / cos)[:, None]
        radial = np.linalg.norm(hit - CENTRE, axis=1) / RADIUS
        assert np.all(radial < 1 + 1e-6) and np.all(radial > 1 - 5e-4), (radial.min(), radial.max())
        err = r.depth[c][rows, cols] - z_true
        facing = -(d * (o + t[:, None] * d - CENTRE)).sum(1) / RADIUS > 0.5
        assert np.all(err > -1e-5) and np.all(np.abs(err[facing]) < 1e-3 * RADIUS), (err.min(), err.max())
        n = r.normals[c][rows, cols]
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
        n_true = (o + t[:, None] * d - CENTRE) / RADIUS
        assert np.degrees(np.arccos(np.clip((n * n_true).sum(1), -1, 1))).max() < 1.0
        assert np.all(r.normals[c][r.depth[c] == 0] == 0)


def test_colour_is_the_texture_of_the_hit_point(sphere):
    """Without supersampling each pixel's colour is the texture at the surface point it sees:
    a function of position and normal only, so every view agrees about a point."""
    r = render_views(sphere, n_views=4, size=24, seed=3, supersample=1)
    cams = r.cameras
    for c in range(len(cams)):
        rows, cols = np.nonzero(r.alpha[c] == 1)
        uv = np.stack([cols + 0.5, rows + 0.5], -1).astype(np.float64)
        o, d, cos = pixel_rays(cams.K[c], cams.cam_to_world[c], uv)
        pts = o + d * (r.depth[c][rows, cols] / cos)[:, None]
        expect = surface_colour(pts, r.normals[c][rows, cols].astype(np.float64), r.centre, r.radius)
        np.testing.assert_allclose(r.rgb[c][rows, cols], expect, atol=2e-5)
    assert r.rgb[r.alpha == 1].std(axis=0).min() > 0.05  # textured, not flat


def test_texture_is_smooth_and_colourful(sphere_render):
    rgb, a = sphere_render.rgb, sphere_render.alpha
    inside = a == 1
    # neighbouring covered pixels differ little (a few cycles over the object, no noise)
    both = inside[:, 1:, :] & inside[:, :-1, :]
    step = np.abs(rgb[:, 1:] - rgb[:, :-1])[both]
    assert np.percentile(step, 95) < 0.12
    assert rgb[inside].min() >= 0.0 and rgb[inside].max() <= 1.0
    assert rgb[inside].max(axis=0).min() > 0.5  # every channel is used


def test_alpha_is_fractional_only_at_the_silhouette(sphere_render):
    a = sphere_render.alpha
    frac = (a > 0) & (a < 1)
    assert frac.any()
    assert set(np.unique(a * 4).astype(int)) <= {0, 1, 2, 3, 4}  # 2x2 supersampling: quarter steps
    # the fractional pixels border the covered region
    covered = a == 1
    grown = np.zeros_like(covered)
    grown[:, 1:] |= covered[:, :-1]
    grown[:, :-1] |= covered[:, 1:]
    grown[:, :, 1:] |= covered[:, :, :-1]
    grown[:, :, :-1] |= covered[:, :, 1:]
    assert np.mean(grown[frac]) > 0.9
