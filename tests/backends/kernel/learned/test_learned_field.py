"""LearnedKernelField on the shared field base: save / load round trip and wrong files."""

import numpy as np
import pytest

from recon.backends.kernel import KernelConfig, KernelField, KernelReconstructor
from recon.backends.kernel.learned.field import LearnedKernelField
from recon.errors import InputError
from tests.backends.kernel.helpers import sphere_points


@pytest.fixture(scope="module")
def learned_field():
    p, n = sphere_points(3000, 0.5, seed=5)
    return KernelReconstructor(KernelConfig(model="learned", device="cpu")).reconstruct(p, n)


def test_save_load_round_trip_is_exact(learned_field, tmp_path):
    f = learned_field
    path = f.save(tmp_path / "learned.npz")
    with np.load(path) as z:  # the layout of the format (files written before keep loading)
        assert str(z["format"]) == "recon.learned-kernel-field.v1"
        assert {"voxel_size", "offset", "points", "meshing", "trim", "n_levels", "spec", "level0_keys",
                "level0_alpha", "level0_udf"} <= set(z.files)
        assert any(k.startswith("model/") for k in z.files)
    g = LearnedKernelField.load(path)
    assert g.voxel_size == f.voxel_size and np.array_equal(g.offset, f.offset) and g.trim == f.trim
    q = np.random.default_rng(0).uniform(-0.6, 0.6, (500, 3)) + f.offset
    np.testing.assert_array_equal(g.evaluate(q), f.evaluate(q))
    np.testing.assert_array_equal(g.udf(q), f.udf(q))
    m0, m1 = f.extract_mesh(), g.extract_mesh()
    assert m0.n_faces > 1000 and np.array_equal(m0.vertices, m1.vertices) and np.array_equal(m0.faces, m1.faces)
    np.testing.assert_array_equal(g.bounds(), f.bounds())


def test_field_kinds_refuse_each_other(learned_field, tmp_path):
    path = learned_field.save(tmp_path / "learned.npz")
    with pytest.raises(InputError, match="not a saved kernel field"):
        KernelField.load(path)
    p, n = sphere_points(2000, 0.5, seed=6)
    other = KernelReconstructor(KernelConfig(voxel_size=0.05)).reconstruct(p, n).save(tmp_path / "kernel.npz")
    with pytest.raises(InputError, match="not a saved learned-kernel field"):
        LearnedKernelField.load(other)
