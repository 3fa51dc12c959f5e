"""VolSDFField: world units through to_world, gradients, bounds, and marching cubes of a sphere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.volsdf.field import VolSDFField
from recon.backends.volsdf.networks import SDFNetwork, fit_sphere
from recon.field import Field
from recon.meshing.cleanup import face_components, mesh_volume

R_N = 0.5  # radius in the normalised frame
SCALE = 2.0
CENTRE = np.array([10.0, -3.0, 0.5])


@pytest.fixture(scope="module")
def field() -> VolSDFField:
    cfg = VolSDFConfig(grid_levels=2, grid_min_res=8, grid_max_res=16, sdf_width=32, feature_dim=4)
    g = torch.Generator().manual_seed(0)
    net = SDFNetwork(cfg, g)
    fit_sphere(net, R_N, 400, g)
    T = np.eye(4)
    T[:3, :3] *= SCALE
    T[:3, 3] = CENTRE
    return VolSDFField(net, T, mesh_resolution=48)


def test_protocol_and_bounds(field):
    assert isinstance(field, Field)
    b = field.bounds()
    assert np.allclose(b, [CENTRE - SCALE, CENTRE + SCALE])


def test_evaluate_world_units(field):
    rng = np.random.default_rng(0)
    u = rng.normal(size=(200, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    r = rng.uniform(0.3, 0.7, size=(200, 1))
    x_n = u * r
    x_w = CENTRE + SCALE * x_n
    f = field.evaluate(x_w)
    assert f.dtype == np.float64 and f.shape == (200,)
    assert np.abs(f - SCALE * (r[:, 0] - R_N)).max() < SCALE * 0.03  # a sphere of radius 1 (world)
    # torch in, torch out, same values
    ft = field.evaluate(torch.from_numpy(x_w).float())
    assert isinstance(ft, torch.Tensor) and np.allclose(ft.numpy(), f, atol=1e-5)
    # outside the unit sphere the field is positive whatever the network says
    far = CENTRE + SCALE * 1.5 * u[:5]
    assert np.all(field.evaluate(far) >= SCALE * 0.5 - 1e-6)


def test_world_gradient_matches_finite_differences(field):
    rng = np.random.default_rng(1)
    x = CENTRE + SCALE * rng.uniform(-0.5, 0.5, size=(20, 3))
    f, g = field.evaluate(x, grad=True)
    h = 1e-3
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd = (field.evaluate(x + e) - field.evaluate(x - e)) / (2 * h)
        assert np.allclose(g[:, k], fd, atol=2e-3)
    assert np.allclose(np.linalg.norm(g, axis=1), 1.0, atol=0.15)  # eikonal in world units too


def test_extract_mesh_world_units(field):
    mesh = field.extract_mesh()
    assert not mesh.is_empty()
    n, _ = face_components(mesh)
    assert n == 1
    rad = np.linalg.norm(mesh.vertices - CENTRE, axis=1)
    assert abs(rad.mean() - SCALE * R_N) < 0.02 * SCALE and rad.std() < 0.02 * SCALE
    assert mesh_volume(mesh) > 0  # outward faces
    assert abs(mesh_volume(mesh) - 4 / 3 * np.pi * (SCALE * R_N) ** 3) < 0.06 * 4 / 3 * np.pi * (SCALE * R_N) ** 3
    # a coarse grid gives the same surface, a finer one too
    fine = field.extract_mesh(resolution=96)
    assert fine.n_faces > mesh.n_faces
    assert abs(np.linalg.norm(fine.vertices - CENTRE, axis=1).mean() - rad.mean()) < 0.01


def test_mirror_transform_keeps_faces_outward(field):
    T = np.diag([-SCALE, SCALE, SCALE, 1.0])
    mirrored = VolSDFField(field.sdf_net, T, mesh_resolution=32)
    mesh = mirrored.extract_mesh()
    assert mesh_volume(mesh) > 0
