"""The kernel front end: device choice, the detail rule, the coincident-point check, chunk progress."""

import math

import numpy as np
import pytest
import torch

from recon.backends.kernel import KernelConfig, KernelReconstructor
from recon.backends.kernel.chunked import ChunkProgress
from recon.backends.kernel.frontend import check_spread, kernel_device, prepare_points
from recon.backends.kernel.scale import (OCCUPANCY, surface_area, target_density, voxel_size_for_area,
                                         voxel_size_from_detail)
from recon.errors import InputError
from tests.backends.kernel.helpers import sphere_points


class Recorder:
    """A Progress that keeps every update."""

    def __init__(self):
        self.calls: list[tuple[str, float | None, str | None]] = []

    def update(self, stage, fraction=None, info=None):
        self.calls.append((stage, fraction, info))


def test_device_config_wins_unless_auto():
    pts = np.zeros((3, 3))
    assert kernel_device("cpu", pts, "cuda") == torch.device("cpu")  # the config's device wins
    assert kernel_device("auto", pts, "cpu") == torch.device("cpu")  # the caller's when auto
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert kernel_device("auto", pts, None).type == expected
    assert kernel_device("auto", torch.zeros(3, 3), "auto").type == expected


def test_detail_rule_formula_and_cap():
    # h = sqrt(OCCUPANCY * target * A / N): 10k points on 2.0 units^2 at detail 0.6 (target 8.6)
    h = voxel_size_for_area(10_000, 2.0, 0.6)
    assert target_density(0.6) == pytest.approx(8.6)
    assert h == pytest.approx(math.sqrt(OCCUPANCY * 8.6 * 2.0 / 10_000))
    # the cap sqrt(A) / R, measured on cap_area when given
    assert voxel_size_for_area(100, 2.0, 0.6, min_resolution=100) == pytest.approx(math.sqrt(2.0) / 100)
    assert voxel_size_for_area(100, 2.0, 0.6, min_resolution=100, cap_area=0.5) == pytest.approx(math.sqrt(0.5) / 100)
    assert voxel_size_for_area(0, 2.0, 0.6) == 1.0 and voxel_size_for_area(10, 0.0, 0.6) == 1.0


def test_points_rule_is_the_area_rule_on_the_knn_area():
    p, _ = sphere_points(20_000, 0.5, seed=2)
    t = torch.from_numpy(p.astype(np.float32))
    assert voxel_size_from_detail(t, 0.3, 105.0) == voxel_size_for_area(len(t), surface_area(t), 0.3, 105.0)
    assert surface_area(t) == pytest.approx(4 * math.pi * 0.25, rel=0.1)  # the sphere's area


def test_prepare_points_frame_and_coincident_points():
    p, n = sphere_points(2000, 0.5, seed=3, centre=(10.0, -4.0, 2.0))
    prep = prepare_points(p, n, None, torch.device("cpu"), voxel_size=None, detail=0.6, min_resolution=105.0)
    assert np.allclose(prep.offset, [10.0, -4.0, 2.0], atol=0.01)
    assert np.abs(prep.local.min(0) + prep.local.max(0)).max() < 1e-12  # centred bounding box
    assert prep.points.dtype == torch.float32 and prep.normals_given
    assert 0.005 < prep.voxel_size < 0.05
    with pytest.raises(InputError, match="all points coincide"):
        prepare_points(np.ones((50, 3)), np.tile([0, 0, 1.0], (50, 1)), None, torch.device("cpu"),
                       voxel_size=None, detail=0.6, min_resolution=None)
    with pytest.raises(InputError, match="all points coincide"):
        check_spread(float("nan"), 1.0)


def test_chunk_progress_names_chunk_i_of_n():
    rec = Recorder()
    ChunkProgress(rec, 3, 4).update("kernel: assembly")
    ChunkProgress(rec, 4, 4).update("kernel: solve", 0.5, "it 10")
    assert rec.calls == [("kernel: chunk 3/4", 0.5, "assembly"), ("kernel: chunk 4/4", 0.875, "solve (it 10)")]


def test_chunked_run_reports_one_stage_per_chunk():
    p, n = sphere_points(6000, 0.5, seed=4)
    rec = Recorder()
    field = KernelReconstructor(KernelConfig(voxel_size=0.04, chunk_size=0.5)).reconstruct(p, n, progress=rec)
    stages = list(dict.fromkeys(s for s, _, _ in rec.calls))
    n_chunks = len(field.fields)
    assert n_chunks >= 8
    assert stages == [f"kernel: chunk {i}/{n_chunks}" for i in range(1, n_chunks + 1)]
    fractions = [f for _, f, _ in rec.calls]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0
