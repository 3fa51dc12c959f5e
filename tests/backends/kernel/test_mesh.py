import numpy as np
import pytest
from scipy.spatial import cKDTree

from recon.backends.kernel import FusedField, KernelConfig, KernelReconstructor
from recon.backends.kernel.chunked import blend_weights
from tests.backends.kernel.helpers import sphere_points


def _chamfer_to_sphere(mesh, centre, radius):
    r = np.linalg.norm(mesh.vertices - centre, axis=1)
    return np.abs(r - radius)


def test_sphere_mesh_close_to_analytic():
    c = np.array([1.0, 2.0, -0.5])
    p, n = sphere_points(6000, 0.5, seed=0, centre=c)
    h = 0.05
    f = KernelReconstructor(KernelConfig(voxel_size=h, device="cpu")).reconstruct(p, n)
    mesh = f.extract_mesh()
    assert mesh.n_faces > 1000
    err = _chamfer_to_sphere(mesh, c, 0.5)
    assert err.mean() < 0.05 * h and err.max() < 0.2 * h
    # watertight closed sphere: Euler characteristic 2
    assert mesh.n_vertices - len({tuple(sorted(e)) for t in mesh.faces for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2]))}) + mesh.n_faces == 2
    fine = f.extract_mesh(upsample=2)
    assert fine.n_faces > 3 * mesh.n_faces
    # outward orientation: face normals point away from the centre
    v = mesh.vertices[mesh.faces]
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    assert ((fn * (v.mean(1) - c)).sum(1) > 0).mean() > 0.99


def test_trimming_removes_far_faces():
    p, n = sphere_points(4000, 0.5, seed=1)
    keep = p[:, 2] < 0.2  # open the sphere: a cap is missing
    f = KernelReconstructor(KernelConfig(voxel_size=0.05, device="cpu")).reconstruct(p[keep], n[keep])
    full = f.extract_mesh(trim=False)
    d_full, _ = cKDTree(p[keep]).query(full.vertices)
    assert d_full.max() > 1.0 * 0.05  # the open rim extends beyond the data
    trimmed = f.extract_mesh(trim=True, trim_distance=1.0)
    assert 0.8 * full.n_faces < trimmed.n_faces < full.n_faces
    d, _ = cKDTree(p[keep]).query(trimmed.vertices)
    assert d.max() <= 1.0 * 0.05 + 1e-9


def test_blend_weights_partition_of_unity():
    import torch

    x = torch.linspace(-0.5, 2.5, 301, dtype=torch.float64)[:, None].repeat(1, 3) * torch.tensor([1.0, 0, 0])
    x[:, 1:] = 0.5
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    w0 = blend_weights(x, t([0.0, 0, 0]), t([1.0, 1, 1]), 0.1)
    w1 = blend_weights(x, t([1.0, 0, 0]), t([2.0, 1, 1]), 0.1)
    inside = (x[:, 0] > -0.1 + 0.2) & (x[:, 0] < 2.1 - 0.2)
    np.testing.assert_allclose((w0 + w1)[inside].numpy(), 1.0, atol=1e-12)


def test_chunked_matches_unchunked_and_meshes():
    p, n = sphere_points(5000, 0.5, seed=2)
    h = 0.05
    single = KernelReconstructor(KernelConfig(voxel_size=h, device="cpu")).reconstruct(p, n)
    fused = KernelReconstructor(KernelConfig(voxel_size=h, chunk_size=0.5, overlap=0.1,
                                             device="cpu")).reconstruct(p, n)
    assert isinstance(fused, FusedField) and len(fused.fields) == 8
    q = p + np.random.default_rng(1).normal(scale=0.3 * h, size=p.shape)
    a, b = single.evaluate(q), fused.evaluate(q)
    assert np.abs(a - b).mean() < 0.02 * h and np.abs(a - b).max() < 0.2 * h
    _, g = fused.evaluate(q[:100], grad=True)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, atol=0.1)
    mesh = fused.extract_mesh()
    err = _chamfer_to_sphere(mesh, np.zeros(3), 0.5)
    assert mesh.n_faces > 2000 and err.mean() < 0.05 * h and err.max() < 0.3 * h
