"""The whole-run time budget of an image backend: reading the images, set-up, training and meshing.

``--time-budget`` (the config's ``time_budget``) bounds the whole run, not only training. Training
gets what is left once the time already spent (reading, structure-from-motion, set-up, callbacks)
and the expected meshing time are taken off. The meshing estimate comes from the backend (it times
a batch of field evaluations and scales it to the evaluations meshing will need); it is refreshed
while training runs, because a field grows (GVKF densifies) and gets dearer to evaluate.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

#: the meshing reserve never takes more than this share of the budget (a wrong estimate must not
#: leave training with nothing)
MAX_RESERVE_SHARE = 0.5
#: seconds between refreshes of the meshing estimate: this fraction of the budget, at least REFRESH_MIN
REFRESH_FRACTION = 0.1
REFRESH_MIN = 10.0


class RunBudget:
    """How many seconds of training a whole-run budget leaves.

    Args:
        seconds: the whole run's budget in seconds (reading to written mesh).
        started: ``time.monotonic()`` when the run began.
        meshing_seconds: returns the expected meshing (and writing) time in seconds for the field
            as it is now; called at most every ``max(REFRESH_FRACTION * seconds, REFRESH_MIN)`` s.
        clock: the clock (``time.monotonic``; replaced in tests).
    """

    def __init__(self, seconds: float, started: float, meshing_seconds: Callable[[], float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = float(seconds)
        self.started = float(started)
        self._estimate = meshing_seconds
        self._clock = clock
        self._refresh_every = max(REFRESH_FRACTION * self.seconds, REFRESH_MIN)
        self._next_refresh = -float("inf")
        self.reserve = 0.0  # seconds kept for meshing, from the last estimate

    def _refresh(self, now: float) -> None:
        if now >= self._next_refresh:
            self.reserve = min(max(0.0, float(self._estimate())), MAX_RESERVE_SHARE * self.seconds)
            now = self._clock()  # the estimate itself takes time
            self._next_refresh = now + self._refresh_every

    def training_seconds(self, trained: float) -> float:
        """The training time (in the trainer's own ``elapsed`` seconds) at which training must stop.

        Args:
            trained: training seconds done so far (``stats.elapsed``, resumed runs included).

        Returns:
            ``trained`` plus what the run has left after the meshing reserve (never negative).
        """
        now = self._clock()
        self._refresh(now)
        left = self.started + self.seconds - self.reserve - self._clock()
        return trained + max(0.0, left)

    def spent(self) -> float:
        """Seconds since the run began."""
        return self._clock() - self.started


def seconds_per_point(evaluate: Callable[[torch.Tensor], Any], points: torch.Tensor) -> float:
    """Seconds one field evaluation takes per point, timed on ``points`` ((K, 3) on the field's device)
    after a small warm-up call."""
    with torch.no_grad():
        evaluate(points[:64])
        if points.is_cuda:
            torch.cuda.synchronize(points.device)
        t0 = time.perf_counter()
        evaluate(points)
        if points.is_cuda:
            torch.cuda.synchronize(points.device)
    return (time.perf_counter() - t0) / max(len(points), 1)


__all__ = ["MAX_RESERVE_SHARE", "REFRESH_FRACTION", "REFRESH_MIN", "RunBudget", "seconds_per_point"]
