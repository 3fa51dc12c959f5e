"""LiveViewProcess: the live view drawn by a child process (what `--view` / `--view-snapshot` use)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from recon_apps.viewer.live import LiveView
from recon_apps.viewer.live_process import LiveViewProcess

from tests.viewer.live_helpers import share, sphere


def test_child_draws_what_the_parent_sends_and_matches_an_in_process_view(tmp_path):
    shot = tmp_path / "live.png"
    live = LiveViewProcess(interval=0.0, off_screen=True, snapshot=shot, window_size=(160, 120))
    try:
        assert live.image() is None and live.draws == 0  # nothing drawn yet
        t0 = time.perf_counter()
        live.update(mesh=sphere(1.0), text="iteration 1")
        assert time.perf_counter() - t0 < 0.05  # the work only records the state
        assert live.refresh(force=True) is True and live.draws >= 1 and shot.is_file()
        img = live.image()
        assert img.shape == (120, 160, 3) and img.dtype == np.uint8
        # the same scene drawn in this process: the same picture
        ref = LiveView(interval=0.0, off_screen=True, window_size=(160, 120))
        try:
            ref.update(mesh=sphere(1.0), text="iteration 1")
            assert abs(share(ref.image()) - share(img)) < 0.01 and share(img) > 0.05
        finally:
            ref.close()
        # updates from other threads arrive too; the camera stays, so a smaller sphere covers less
        th = threading.Thread(target=lambda: live.update(mesh=sphere(0.4), text="iteration 2"))
        th.start()
        th.join()
        live.refresh(force=True)
        assert share(live.image()) < 0.5 * share(img)
    finally:
        live.close()
    assert live._proc.returncode == 0 and not live.alive


def test_run_returns_the_result_reraises_and_the_snapshot_is_final(tmp_path):
    shot = tmp_path / "s.png"
    live = LiveViewProcess(interval=5.0, off_screen=True, snapshot=shot, window_size=(160, 120))
    try:
        first = []

        def work(view: LiveViewProcess) -> int:
            view.update(mesh=sphere(1.0), text="first")
            view.refresh(force=True)
            first.append(share(view.image()))
            view.update(mesh=sphere(0.3), text="last")  # within the interval: drawn by the final flush
            return 42

        assert live.run(work) == 42
        assert share(live.image()) < 0.3 * first[0]  # the final frame shows the small sphere
    finally:
        live.close()
    other = LiveViewProcess(off_screen=True, window_size=(80, 60))
    with pytest.raises(ValueError, match="boom"):
        other.run(lambda view: (_ for _ in ()).throw(ValueError("boom")))
    assert not other.alive  # closed on the way out of the error


def test_a_dead_child_does_not_stop_the_work(tmp_path):
    live = LiveViewProcess(interval=0.0, off_screen=True, snapshot=tmp_path / "x.png", window_size=(80, 60))
    try:
        live._proc.kill()
        live._proc.wait(10)
        for r in (0.5, 0.6):  # dropped silently
            live.update(mesh=sphere(r), text="after the child died")
        assert live.refresh(force=True) is False and live.image() is None
    finally:
        live.close()
