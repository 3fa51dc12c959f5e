import numpy as np

from recon.backends.kernel import KernelConfig, KernelField, KernelReconstructor
from recon.config import from_dict, load_yaml
from recon.registry import get_backend
from recon.types import PointCloud
from tests.backends.kernel.helpers import sphere_points


def test_registry_builds_and_fits(repo_root):
    spec = get_backend("kernel")
    cfg = from_dict(spec.config_class(), load_yaml(repo_root / "configs" / "kernel.yaml")["kernel"])
    assert isinstance(cfg, KernelConfig)
    cfg.voxel_size = 0.05
    p, n = sphere_points(3000, 0.5, seed=3)
    field = spec.build(cfg).fit(PointCloud(p, n), device="cpu")
    assert isinstance(field, KernelField)
    assert abs(field.evaluate(np.array([[0.0, 0, 0.6]]))[0] - 0.1) < 0.01


def test_missing_normals_are_estimated():
    p, _ = sphere_points(1500, 0.5, seed=4)
    f = KernelReconstructor(KernelConfig(voxel_size=0.05, device="cpu")).reconstruct(p)
    assert f.evaluate(np.zeros((1, 3)))[0] < 0 or f.evaluate(np.array([[0, 0, 0.4]]))[0] < 0
    assert f.evaluate(np.array([[0, 0, 0.6]]))[0] > 0
    fs = KernelReconstructor(KernelConfig(voxel_size=0.05, device="cpu")).reconstruct(p, sensor=np.zeros(3) + 5.0)
    assert fs.evaluate(np.array([[0, 0, 0.4]]))[0] < 0
