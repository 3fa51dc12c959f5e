"""recon.ops.sampling: area weighting, on-surface points, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from recon.errors import InputError
from recon.ops.sampling import face_areas_normals, sample_surface
from recon.types import Mesh


def test_points_on_box_surface_with_axis_normals():
    box = Mesh.from_trimesh(trimesh.creation.box(extents=(1.0, 2.0, 4.0)))
    pts, nrm = sample_surface(box, 20_000, seed=3)
    assert pts.shape == (20_000, 3) and pts.dtype == np.float64
    assert nrm.shape == (20_000, 3) and nrm.dtype == np.float32
    half = np.array([0.5, 1.0, 2.0])
    # every point lies on one of the faces: some |coordinate| equals the half extent
    on_face = np.isclose(np.abs(pts), half, atol=1e-12).any(axis=1)
    assert on_face.all()
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-6)
    # area weighting: faces normal to z have area 2 x (1*2) of total 2*(2+4+8) = 28
    frac_z = np.mean(np.abs(nrm[:, 2]) > 0.5)
    assert abs(frac_z - 4.0 / 28.0) < 0.01


def test_area_weights_two_triangles():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 1], [0, 1, 1]], dtype=float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    areas, _ = face_areas_normals(v, f)
    np.testing.assert_allclose(areas, [0.5, 1.5])
    _, _, fid = sample_surface(Mesh(v, f), 40_000, seed=0, return_faces=True)
    assert abs(np.mean(fid == 1) - 0.75) < 0.01


def test_seeded_and_degenerate_faces_skipped():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 2, 2]], dtype=float)
    f = np.array([[0, 1, 2], [3, 3, 3], [0, 0, 1]])  # two zero-area faces
    m = Mesh(v, f)
    a = sample_surface(m, 1000, seed=5, return_faces=True)
    b = sample_surface(m, 1000, seed=5, return_faces=True)
    c = sample_surface(m, 1000, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert np.all(a[2] == 0)
    # barycentric samples stay inside the triangle
    assert np.all(a[0][:, :2] >= -1e-12) and np.all(a[0][:, 0] + a[0][:, 1] <= 1 + 1e-12)
    with pytest.raises(InputError):
        sample_surface(Mesh(np.zeros((0, 3)), np.zeros((0, 3))), 10)
