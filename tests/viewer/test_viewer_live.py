"""LiveView off-screen: throttled redraws, thread-safe updates, snapshots."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from recon_apps.viewer.live import LiveView

from tests.viewer.live_helpers import share, sphere


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_redraws_at_most_every_interval(tmp_path):
    clock = FakeClock()
    live = LiveView(interval=2.0, off_screen=True, snapshot=tmp_path / "live.png", window_size=(160, 120), clock=clock)
    try:
        live.update(mesh=sphere(1.0), text="iteration 1")
        assert live.draws == 1 and (tmp_path / "live.png").is_file()
        first = share(live.image())
        for i in range(5):  # a burst within the interval: stored, not drawn
            clock.t += 0.3
            live.update(mesh=sphere(0.5), text=f"iteration {i + 2}")
        assert live.draws == 1
        clock.t += 1.0  # 2.5 s since the first draw
        assert live.refresh() is True and live.draws == 2
        assert live.refresh() is False  # nothing pending
        # camera was set on the first frame only, so the smaller sphere covers less
        assert share(live.image()) < 0.5 * first
    finally:
        live.close()


def test_background_thread_updates_are_drawn_by_the_owner(tmp_path):
    clock = FakeClock()
    live = LiveView(interval=1.0, off_screen=True, window_size=(160, 120), clock=clock)
    try:
        t = threading.Thread(target=lambda: live.update(points=np.random.default_rng(0).normal(size=(500, 3))))
        t.start()
        t.join()
        assert live.draws == 0 and live.due()
        with pytest.raises(RuntimeError, match="thread that created"):
            err: list[BaseException] = []
            th = threading.Thread(target=lambda: err.append(_catch(live.refresh)))
            th.start()
            th.join()
            raise err[0]
        assert live.refresh() and live.draws == 1
        assert share(live.image()) > 0.01
    finally:
        live.close()


def _catch(fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001
        return e
    return None


def test_run_polls_while_work_runs_in_a_thread(tmp_path):
    live = LiveView(interval=0.0, off_screen=True, snapshot=tmp_path / "s.png", window_size=(160, 120))
    try:
        def work(view: LiveView) -> int:
            for r in (0.4, 0.7, 1.0):
                view.update(mesh=sphere(r), text=f"radius {r}")
            return 42

        assert live.run(work) == 42
        assert live.draws >= 1 and (tmp_path / "s.png").is_file()
        with pytest.raises(ValueError, match="boom"):
            live.run(lambda view: (_ for _ in ()).throw(ValueError("boom")))
    finally:
        live.close()


def test_training_preview_sends_the_current_volsdf_mesh(tmp_path):
    """`recon reconstruct FOLDER --view`: the trainer callback shows a coarse mesh of the current field."""
    import dataclasses

    import torch

    from recon.backends.volsdf import VolSDFBackend
    from recon_apps.viewer.live import training_preview
    from tests.backends.volsdf.helpers import orbit_cameras, render_sphere
    from tests.backends.volsdf.test_volsdf_trainer import TINY

    cams = orbit_cameras(6, 16)
    imgs, masks = render_sphere(cams, 0.6)
    live = LiveView(interval=0.0, off_screen=True, window_size=(160, 120), snapshot=tmp_path / "live.png")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        calls = []
        preview = training_preview(live, resolution=24)

        def callback(trainer):
            calls.append(trainer.stats.step)
            preview(trainer)

        backend = VolSDFBackend(dataclasses.replace(TINY, steps=4, mesh_resolution=24))
        backend.fit_arrays(imgs, masks, cams, callback=callback, callback_every=1e-9)
        assert calls == [1, 2, 3, 4]
        assert live.draws >= 1 and (tmp_path / "live.png").is_file()
        assert share(live.image()) > 0.01  # the init sphere (radius 0.5 of the unit sphere) is on screen
    finally:
        torch.set_num_threads(old)
        live.close()


def test_off_screen_text_only_updates_redraw_less_often(tmp_path):
    clock = FakeClock()
    live = LiveView(interval=2.0, off_screen=True, window_size=(120, 90), clock=clock)
    try:
        assert live.text_interval == 10.0
        live.update(mesh=sphere(1.0), text="start")
        assert live.draws == 1
        clock.t += 3.0
        live.update(text="step 10")  # only the text: waits for text_interval
        assert live.draws == 1
        clock.t += 1.0
        live.update(mesh=sphere(0.8))  # geometry: interval is enough
        assert live.draws == 2
        clock.t += 3.0
        live.update(text="step 20")
        assert live.draws == 2
        clock.t += 8.0
        assert live.refresh() is True and live.draws == 3
    finally:
        live.close()
