"""VolSDF under a short time budget: warm-up and grid levels follow the time used, the mesh resolution is
lowered so meshing fits, and runs without a time limit keep the step schedule."""

from __future__ import annotations

import dataclasses

import pytest

from recon.backends.run_budget import RunBudget
from recon.backends.volsdf.backend import MESHING_SHARE, MIN_BUDGET_RESOLUTION, VolSDFBackend
from recon.backends.volsdf.trainer import LEVELS_FRACTION, VolSDFTrainer
from tests.backends.volsdf.test_volsdf_trainer import TINY, scene  # noqa: F401 (fixture)


class FixedBudget:
    """A run budget that leaves a fixed number of training seconds."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def training_seconds(self, trained: float) -> float:
        return self.seconds


def test_levels_and_warm_up_follow_the_time_used(scene):  # noqa: F811
    cams, imgs, masks = scene
    cfg = dataclasses.replace(TINY, grid_levels=6, grid_start_levels=2, grid_level_steps=1000, warmup_steps=1000)
    tr = VolSDFTrainer(cfg, imgs, masks, cams)
    grid = tr.model.sdf_net.grid
    tr._apply_level_schedule()
    assert grid.active_levels() == 2  # no time limit: the step schedule alone (step 0)
    tr.run_budget = FixedBudget(100.0)
    tr.stats.elapsed = 100.0 * LEVELS_FRACTION / 2  # half-way to "all levels"
    tr._apply_level_schedule()
    assert grid.active_levels() == 4
    tr.stats.elapsed = 100.0 * LEVELS_FRACTION
    tr._apply_level_schedule()
    assert grid.active_levels() == 6
    tr._apply_lr()  # 5 % of the budget is past: warm-up over although only step 0 of 1000 warm-up steps ran
    lr = tr.optimizer.param_groups[0]["lr"] / tr.optimizer.param_groups[0]["base_lr"]
    assert lr == pytest.approx(cfg.lr_final ** tr._fraction())


def test_a_short_budget_lowers_the_mesh_resolution(scene):  # noqa: F811
    cams, imgs, masks = scene
    backend = VolSDFBackend(dataclasses.replace(TINY, mesh_resolution=256))
    tr = VolSDFTrainer(backend.config, imgs, masks, cams)
    long_run = backend.meshing_seconds(tr)
    assert tr.mesh_resolution == 256  # no run budget: the configured resolution
    tr.run_budget = RunBudget(1e-3, 0.0, lambda: 0.0)  # far too short for any mesh
    short = backend.meshing_seconds(tr)
    assert tr.mesh_resolution == MIN_BUDGET_RESOLUTION and short < long_run
    tr.run_budget = RunBudget(long_run / MESHING_SHARE * 0.3, 0.0, lambda: 0.0)  # room for ~30 % of the evaluations
    mid = backend.meshing_seconds(tr)
    assert MIN_BUDGET_RESOLUTION < tr.mesh_resolution < 256
    assert mid <= MESHING_SHARE * tr.run_budget.seconds * 1.5  # timing noise between the two measurements
    assert tr.field().mesh_resolution == tr.mesh_resolution
