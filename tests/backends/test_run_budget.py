"""The whole-run time budget: training gets what is left after the time spent and the meshing reserve."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch

from recon.backends.run_budget import MAX_RESERVE_SHARE, REFRESH_FRACTION, REFRESH_MIN, RunBudget, seconds_per_point
from recon.backends.training import TrainingLoop


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_training_seconds_leave_the_meshing_reserve():
    clock = FakeClock()
    calls = []

    def estimate() -> float:
        calls.append(clock.now)
        return 20.0

    budget = RunBudget(120.0, started=90.0, meshing_seconds=estimate, clock=clock)  # 10 s already spent
    # 120 - 10 spent - 20 reserve = 90 s left for training
    assert budget.training_seconds(trained=0.0) == pytest.approx(90.0)
    clock.now += 3.0
    assert budget.training_seconds(trained=3.0) == pytest.approx(90.0)
    assert budget.spent() == pytest.approx(13.0)
    assert len(calls) == 1  # refreshed at most every max(REFRESH_FRACTION of the budget, REFRESH_MIN) s
    clock.now += max(REFRESH_FRACTION * 120.0, REFRESH_MIN)
    budget.training_seconds(trained=9.0)
    assert len(calls) == 2


def test_a_growing_estimate_shortens_training_and_never_goes_negative():
    clock = FakeClock()
    reserve = [10.0]
    budget = RunBudget(60.0, started=clock.now, meshing_seconds=lambda: reserve[0], clock=clock)
    assert budget.training_seconds(0.0) == pytest.approx(50.0)
    clock.now += 10.0
    reserve[0] = 100.0  # meshing became dearer than the whole budget: the reserve is capped at half of it
    assert budget.training_seconds(10.0) == pytest.approx(10.0 + 60.0 - 10.0 - MAX_RESERVE_SHARE * 60.0)
    clock.now += 30.0
    assert budget.training_seconds(40.0) == pytest.approx(40.0)  # past the cap: stop now, never negative


class CountingLoop(TrainingLoop):
    """A trainer whose step takes a fixed wall time."""

    def __init__(self, step_seconds: float, budget: float | None) -> None:
        self.cfg = SimpleNamespace(steps=10_000, time_budget=budget, threads=1, checkpoint_every=1e9)
        self.device = torch.device("cpu")
        self.stats = SimpleNamespace(step=0, elapsed=0.0, history=[], interrupted=False)
        self.checkpoint_dir = None
        self.step_seconds = step_seconds

    def step(self) -> dict[str, float]:
        time.sleep(self.step_seconds)
        self.stats.step += 1
        return {}

    def record(self, info):
        return (self.stats.step,), ""


def test_the_loop_stops_when_the_run_budget_is_spent():
    loop = CountingLoop(0.01, budget=0.6)
    started = time.monotonic() - 0.2  # 0.2 s of the run went to reading and set-up
    loop.run_budget = RunBudget(0.6, started, meshing_seconds=lambda: 0.2)
    t0 = time.monotonic()
    loop.train()
    took = time.monotonic() - t0
    # 0.6 - 0.2 spent - 0.2 reserve = 0.2 s of training (one step of slack)
    assert 0.15 <= took <= 0.35, took
    assert loop.stats.elapsed == pytest.approx(took, abs=0.05)
    # without a run budget time_budget is training seconds alone
    plain = CountingLoop(0.01, budget=0.3)
    t0 = time.monotonic()
    plain.train()
    assert 0.28 <= time.monotonic() - t0 <= 0.45


def test_seconds_per_point_scales_with_the_work():
    pts = torch.rand(4096, 3)
    cheap = seconds_per_point(lambda x: x.sum(-1), pts)
    dear = seconds_per_point(lambda x: torch.stack([torch.sin(x * k).sum(-1) for k in range(200)]).sum(0), pts)
    assert 0 < cheap < dear


def test_an_unconverged_run_names_the_budget_that_would_suffice():
    from recon.backends.posed import format_seconds, warn_if_unconverged

    # 100 of 20,000 steps in 50 s of training (2 steps/s) plus 30 s of reading, set-up and meshing:
    # 25 % of the steps (5,000) need 2,500 s of training -> 2,530 s -> "43m"
    with pytest.warns(RuntimeWarning, match=r"100 of 20,000 steps .* 2\.00 steps/s a --time-budget of about 43m"):
        warn_if_unconverged("volsdf", 100, 20_000, False, trained=50.0, other=30.0)
    with pytest.warns(RuntimeWarning, match="stopped by Ctrl-C .*give a longer --time-budget"):
        warn_if_unconverged("volsdf", 100, 20_000, True, trained=50.0)
    assert [format_seconds(s) for s in (44.2, 150, 7300)] == ["45s", "3m", "3h"]
