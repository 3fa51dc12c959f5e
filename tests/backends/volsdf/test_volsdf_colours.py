"""VolSDF vertex colours: a sphere of one colour gives a mesh of that colour; directions and frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon.backends.volsdf.field import (
    COLOUR_MODES,
    VolSDFField,
    hemisphere_directions,
    tangent_frames,
)
from recon.backends.volsdf.trainer import VolSDFTrainer
from tests.backends.volsdf.helpers import orbit_cameras, render_sphere
from tests.backends.volsdf.test_volsdf_trainer import TINY

RADIUS = 0.5
COLOUR = np.array([0.80, 0.45, 0.20])


@pytest.fixture(scope="module")
def one_colour_field() -> VolSDFField:
    cams = orbit_cameras(12, 32)
    _, masks = render_sphere(cams, RADIUS)
    m = masks[..., None]
    images = (m * COLOUR + (1.0 - m) * 1.0).astype(np.float32)           # white background
    tr = VolSDFTrainer(dataclasses.replace(TINY, steps=700), images, masks, cams)
    tr.train()
    return tr.field()


def test_one_colour_sphere_gives_that_colour(one_colour_field):
    mesh = one_colour_field.extract_mesh(resolution=32)                  # colours on by default ("hemisphere")
    assert mesh.vertex_colors is not None and mesh.vertex_colors.shape == (mesh.n_vertices, 3)
    assert mesh.vertex_colors.dtype == np.float32
    err = np.abs(mesh.vertex_colors - COLOUR).max(1)
    q99 = np.quantile(err, 0.99)
    print(f"volsdf one-colour sphere: error mean {err.mean() * 255:.2f}/255, 99 % {q99 * 255:.2f}/255, "
          f"max {err.max() * 255:.2f}/255 over {mesh.n_vertices} vertices")
    assert err.mean() <= 2 / 255 and q99 <= 3 / 255 and err.max() <= 5 / 255, (err * 255).round(2)
    normal = one_colour_field.vertex_colours(mesh.vertices, "normal")     # one head-on view: noisier
    assert np.abs(normal - COLOUR).max(1).mean() < 6 / 255
    with pytest.raises(ValueError, match="unknown colour mode"):
        one_colour_field.vertex_colours(mesh.vertices, "sh")
    assert set(COLOUR_MODES) == {"hemisphere", "normal"}


def test_colours_off_and_without_a_colour_network(one_colour_field):
    assert one_colour_field.extract_mesh(resolution=24, colors=False).vertex_colors is None
    bare = VolSDFField(one_colour_field.sdf_net, one_colour_field.to_world, mesh_resolution=24)
    assert bare.extract_mesh().vertex_colors is None
    with pytest.raises(ValueError, match="no colour network"):
        bare.vertex_colours(np.zeros((1, 3)))


def test_hemisphere_directions_and_tangent_frames():
    d, w = hemisphere_directions()
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    assert (d[:, 2] > 0.4).all() and abs(w.sum() - 1.0) < 1e-12  # within 65 degrees of the inward normal
    np.testing.assert_allclose(d[:, :2].T @ w, 0.0, atol=1e-12)  # symmetric about the normal
    n = torch.nn.functional.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    n[0] = torch.tensor([1.0, 0.0, 0.0])
    n[1] = torch.tensor([0.0, 0.0, -1.0])
    t1, t2 = tangent_frames(n)
    for a, b in ((t1, n), (t2, n), (t1, t2)):
        assert float((a * b).sum(-1).abs().max()) < 1e-6
    assert float((t1.norm(dim=-1) - 1).abs().max()) < 1e-6 and float((t2.norm(dim=-1) - 1).abs().max()) < 1e-6


def test_view_directions_reach_the_network_around_the_inward_normal(one_colour_field):
    seen = []

    def spy(x, v, g, z):
        seen.append((x.clone(), v.clone(), g.clone()))
        return torch.full((x.shape[0], 3), 0.25)

    f = VolSDFField(one_colour_field.sdf_net, one_colour_field.to_world, color_fn=spy)
    p = np.array([[0.5, 0.0, 0.0], [0.0, -0.5, 0.0]])
    c = f.vertex_colours(p, "hemisphere")
    np.testing.assert_allclose(c, 0.25, atol=1e-6)
    _, v, g = seen[0]
    n = torch.nn.functional.normalize(g, dim=-1)
    cos = (v * -n).sum(-1).reshape(2, -1)                                 # every direction looks into the surface
    assert float(cos.min()) > np.cos(np.radians(66)) and float(cos.max()) > 0.999
    seen.clear()
    f.vertex_colours(p, "normal")
    _, v, g = seen[0]
    np.testing.assert_allclose((v * -torch.nn.functional.normalize(g, dim=-1)).sum(-1).numpy(), 1.0, atol=1e-5)
