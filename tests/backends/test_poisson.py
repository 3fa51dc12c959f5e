"""The Open3D Poisson backend on analytic shapes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from recon.config import from_dict
from recon.errors import ConfigError, InputError
from recon.eval.metrics import evaluate_meshes
from recon.types import Mesh, PointCloud

pytest.importorskip("open3d")
from recon.backends.poisson import PoissonBackend, PoissonConfig  # noqa: E402


def unit_sphere_points(n: int, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def test_sphere_reconstruction_accuracy():
    pts = unit_sphere_points(60_000)
    mesh = PoissonBackend(PoissonConfig(depth=7)).fit(PointCloud(pts, pts))
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
    assert mesh.n_faces > 10_000
    # analytic: vertex radii
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(r - 1.0).mean() < 0.005
    # metrics against a fine sphere mesh: Chamfer < 1 % of the radius
    gt = Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=6, radius=1.0))
    m = evaluate_meshes(mesh, gt, n_samples=50_000)
    assert m.chamfer_l1 < 0.01
    assert m.f_at(0.01) > 0.98
    assert m.normal_consistency > 0.99
    # every vertex is referenced
    assert np.unique(mesh.faces).size == mesh.n_vertices


def test_density_trimming_on_open_hemisphere():
    pts = unit_sphere_points(30_000, seed=1)
    pts = pts[pts[:, 2] > 0]
    cloud = PointCloud(pts, pts)
    full = PoissonBackend(PoissonConfig(depth=6, density_quantile=0.0)).fit(cloud)
    trimmed_backend = PoissonBackend(PoissonConfig(depth=6, density_quantile=0.1))
    trimmed = trimmed_backend.fit(cloud)
    assert trimmed.n_faces < 0.95 * full.n_faces
    # untrimmed Poisson closes the hemisphere far below the samples; trimming removes most of that
    assert full.vertices[:, 2].min() < -0.3
    assert np.mean(trimmed.vertices[:, 2] < -0.1) < 0.5 * np.mean(full.vertices[:, 2] < -0.1)
    assert np.unique(trimmed.faces).size == trimmed.n_vertices
    assert trimmed_backend.last_densities is not None
    assert trimmed_backend.last_densities.shape == (trimmed.n_vertices,)


def test_errors_and_config():
    pts = unit_sphere_points(100)
    with pytest.raises(InputError):
        PoissonBackend(PoissonConfig()).fit(PointCloud(pts))
    with pytest.raises(InputError):
        bad = pts.copy()
        bad[0, 0] = np.nan
        PoissonBackend(PoissonConfig()).fit(PointCloud(bad, pts))
    with pytest.raises(ConfigError):
        PoissonConfig(density_quantile=1.5)
    with pytest.raises(ConfigError):
        from_dict(PoissonConfig, {"depht": 9})
    cfg = from_dict(PoissonConfig, {"depth": 9, "scale": 1})
    assert cfg.depth == 9 and cfg.scale == 1.0


def test_registry_builds_backend():
    from recon.registry import get_backend

    spec = get_backend("poisson")
    cfg = spec.config_class()()
    assert isinstance(spec.build(cfg), PoissonBackend)
