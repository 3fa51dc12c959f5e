"""The pipeline: local frame round trip, normal estimation hook, warnings, empty results."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest

from recon import registry
from recon.errors import EmptyResultError, InputError
from recon.pipeline import ReconstructConfig, prepare, reconstruct
from recon.registry import BackendSpec
from recon.types import Mesh, PointCloud


@dataclass
class EchoConfig:
    empty: bool = False
    warn: bool = False


class EchoBackend:
    """Returns a tetrahedron on the first four local points, so the world mapping is checkable."""

    seen: PointCloud | None = None

    def __init__(self, cfg: EchoConfig):
        self.cfg = cfg

    def fit(self, cloud, *, device="cpu", progress=None):
        EchoBackend.seen = cloud
        if self.cfg.warn:
            warnings.warn("solver did not converge")
        faces = np.zeros((0, 3)) if self.cfg.empty else np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])
        return Mesh(cloud.points[:4], faces)


@pytest.fixture
def echo(monkeypatch):
    spec = BackendSpec("echo", f"{__name__}:EchoConfig", f"{__name__}:EchoBackend", frozenset({"points", "normals"}), "t")
    original = registry.backends

    def with_echo():
        table = original()
        table["echo"] = spec
        return table

    monkeypatch.setattr(registry, "backends", with_echo)
    return spec


def _sphere(n, rng, offset):
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return PointCloud(v + offset)


def test_world_offset_round_trip_is_exact_to_a_millimetre(echo, rng):
    offset = np.array([636000.123, 5_000_000.456, 99.0])
    cloud = _sphere(500, rng, offset)
    res = reconstruct(cloud, "echo")
    # the backend saw float32-representable local coordinates near the origin
    assert np.abs(EchoBackend.seen.points).max() < 2.0
    assert np.abs(res.mesh.vertices - cloud.points[:4]).max() < 1e-3
    assert res.frame.offset.dtype == np.float64


def test_normals_estimated_only_when_missing(echo, rng):
    cloud = _sphere(2000, rng, np.zeros(3))
    res = reconstruct(cloud, "echo")
    assert any("normals estimated" in n for n in res.notes)
    n = EchoBackend.seen.normals
    cos = np.einsum("ij,ij->i", n, EchoBackend.seen.points / np.linalg.norm(EchoBackend.seen.points, axis=1, keepdims=True))
    assert (cos > 0.95).mean() > 0.99  # outward
    with_normals = cloud.with_normals(cloud.points.astype(np.float32))
    res = reconstruct(with_normals, "echo")
    assert not any("normals estimated" in n for n in res.notes)


def test_warnings_become_notes_and_empty_mesh_is_refused(echo, rng):
    cloud = _sphere(200, rng, np.zeros(3)).with_normals(np.tile([0, 0, 1.0], (200, 1)))
    res = reconstruct(cloud, "echo", backend_config=EchoConfig(warn=True))
    assert any("did not converge" in n for n in res.notes)
    with pytest.raises(EmptyResultError, match="empty mesh"):
        reconstruct(cloud, "echo", backend_config=EchoConfig(empty=True))


def test_sensor_orientation_needs_sensors(rng):
    cloud = _sphere(200, rng, np.zeros(3))
    cfg = ReconstructConfig()
    cfg.normals.orient = "sensor"
    with pytest.raises(InputError, match="sensor"):
        prepare(cloud, needs_normals=True, normals=cfg.normals)
