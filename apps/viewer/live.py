"""A view that follows a running reconstruction (for ``recon reconstruct ... --view``).

VTK windows must be drawn from the thread that created them, while reconstruction
progress arrives from wherever the backend runs. So :meth:`LiveView.update` only stores
the newest mesh / points / text under a lock (safe from any thread, cheap), and
:meth:`LiveView.refresh` draws it on the owner thread, at most once every ``interval``
seconds. :meth:`LiveView.run` does the usual thing: the work in a background thread,
the polling on the calling thread. Without a display (or with ``off_screen=True``) each
refresh writes a PNG ``snapshot`` instead of drawing a window (no pyvistaqt needed).

The commands do not draw in the working process: :func:`~recon_apps.viewer.live_process.make_live_view` gives a
:class:`~recon_apps.viewer.live_process.LiveViewProcess`, which runs a LiveView in a child process
(a frame holds the GIL for a few hundred milliseconds in software GL).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

import numpy as np
from PIL import Image

from recon.io.atomic import atomic_write
from recon.types import Mesh, PointCloud

if TYPE_CHECKING:
    from recon_apps.viewer.live_process import LiveViewProcess

T = TypeVar("T")


def record_state(pending: dict[str, Any], mesh: Mesh | None, points: PointCloud | np.ndarray | None,
                 text: str | None) -> None:
    """Store the given parts of a live state in ``pending`` (None leaves that part as it is; the
    caller holds the lock); points arrays become PointClouds."""
    if mesh is not None:
        pending["mesh"] = mesh
    if points is not None:
        pending["points"] = points if isinstance(points, PointCloud) else PointCloud(points)
    if text is not None:
        pending["text"] = text


class LiveView:
    """Refreshing window (or PNG snapshot) of a mesh, a point cloud and a status text.

    VTK renders while holding the GIL, and off-screen it renders in software, so every redraw
    stalls the work thread for its duration: an off-screen view redraws for a new status line
    only every ``text_interval`` seconds (a new mesh or point set still every ``interval``).

    Args:
        interval: minimum seconds between two redraws.
        text_interval: minimum seconds between two redraws when only the text changed (default:
            ``interval`` with a window, 10 s off-screen).
        off_screen: no window; None: off-screen exactly when there is no display.
        snapshot: PNG written at every redraw (off-screen mode; optional with a window).
        window_size: pixels.
        up: the world's up axis for the camera.
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, *, interval: float = 2.0, text_interval: float | None = None, off_screen: bool | None = None,
                 snapshot: str | Path | None = None,
                 window_size: tuple[int, int] = (800, 640), up: Sequence[float] = (0.0, 0.0, 1.0),
                 clock: Callable[[], float] = time.monotonic) -> None:
        from recon_apps.viewer.display import has_display

        self.interval = float(interval)
        self.off_screen = (not has_display()) if off_screen is None else bool(off_screen)
        self.text_interval = float(text_interval) if text_interval is not None else \
            (max(self.interval, 10.0) if self.off_screen else self.interval)
        if self.off_screen:  # software GL (llvmpipe) would otherwise take every core from the work
            os.environ.setdefault("LP_NUM_THREADS", "1")
        self.snapshot = None if snapshot is None else Path(snapshot)
        self.window_size = window_size
        self.up = np.asarray(up, dtype=np.float64)
        self.clock = clock
        self.draws = 0
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._owner = threading.get_ident()
        self._last_draw: float | None = None
        self._plotter: Any = None
        self._camera_set = False

    # ------------------------------------------------------------ any thread

    def update(self, mesh: Mesh | None = None, points: PointCloud | np.ndarray | None = None,
               text: str | None = None) -> None:
        """Record the newest state (None leaves that part as it is). Safe from any thread;
        on the owner thread it also redraws when ``interval`` has passed."""
        with self._lock:
            record_state(self._pending, mesh, points, text)
        if threading.get_ident() == self._owner:
            self.refresh()

    # ------------------------------------------------------------ owner thread

    def due(self) -> bool:
        """Whether something is pending and ``interval`` has passed since the last redraw (``text_interval``
        when only the status text changed)."""
        with self._lock:
            if not self._pending:
                return False
            text_only = set(self._pending) == {"text"}
        wait = self.text_interval if text_only else self.interval
        return self._last_draw is None or self.clock() - self._last_draw >= wait

    def refresh(self, force: bool = False) -> bool:
        """Draw the pending state if due (or ``force``); owner thread only. Returns whether it drew."""
        if threading.get_ident() != self._owner:
            raise RuntimeError("LiveView.refresh must run on the thread that created the view")
        if not (force or self.due()):
            return False
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return False
        self._draw(pending)
        self._last_draw = self.clock()
        self.draws += 1
        return True

    def poll(self) -> None:
        """Redraw if due and keep a window responsive to the mouse between frames (owner thread)."""
        self.refresh()
        if self._plotter is not None and not self.off_screen:
            self._plotter.update()

    def _ensure_plotter(self) -> Any:
        if self._plotter is None:
            import pyvista as pv

            from recon_apps.viewer.app import BACKGROUND, _quiet_vtk_without_display

            if self.off_screen:
                _quiet_vtk_without_display()
            self._plotter = pv.Plotter(off_screen=self.off_screen, window_size=list(self.window_size),
                                       title="recon: reconstructing")
            self._plotter.set_background(BACKGROUND)
            if not self.off_screen:
                self._plotter.show(interactive_update=True, auto_close=False)
        return self._plotter

    def _draw(self, pending: dict[str, Any]) -> None:
        from recon_apps.viewer.app import TEXT_COLOR
        from recon_apps.viewer.scene import SceneOptions, layers_for

        plotter = self._ensure_plotter()
        options = SceneOptions(color_by="auto", point_size=2.0)
        for key in ("points", "mesh"):
            if key in pending:
                layer = layers_for(pending[key], key, options)[0]
                kw = layer.add_mesh_kwargs()
                if "show_scalar_bar" in kw:
                    kw["show_scalar_bar"] = False  # bars would pile up across redraws
                plotter.add_mesh(layer.dataset, name=f"live-{key}", render=False, **kw)
        if "text" in pending:
            plotter.add_text(pending["text"], position="upper_left", font_size=10, color=TEXT_COLOR, name="live-text",
                             render=False)
        if not self._camera_set and ("mesh" in pending or "points" in pending):
            plotter.view_vector(self.up + (1.0 - np.abs(self.up)), viewup=self.up, render=False)
            plotter.renderer.reset_camera(render=False)  # Plotter.reset_camera renders whatever it is told
            self._camera_set = True
        if self.off_screen:  # one software frame per draw: nothing above renders (render=False everywhere)
            plotter.render()
        else:
            plotter.update()
        if self.snapshot is not None:  # atomically: a reader never sees half a PNG
            with atomic_write(self.snapshot) as tmp:
                Image.fromarray(np.asarray(plotter.screenshot(None, return_img=True))).save(tmp, format="PNG")

    def image(self) -> np.ndarray | None:
        """The last drawn frame as (H, W, 3) uint8, or None before the first redraw."""
        if self._plotter is None:
            return None
        return np.asarray(self._plotter.screenshot(return_img=True))[..., :3]

    def run(self, work: Callable[["LiveView"], T], poll: float = 0.05) -> T:
        """Run ``work(self)`` in a background thread while refreshing here; returns its result
        (re-raises its exception) after a final forced redraw."""
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["value"] = work(self)
            except BaseException as e:  # handed to the caller below
                result["error"] = e

        thread = threading.Thread(target=target, name="recon-live-work", daemon=True)
        thread.start()
        while thread.is_alive():
            self.poll()
            thread.join(poll)
        self.refresh(force=True)
        if "error" in result:
            raise result["error"]
        return result.get("value")  # type: ignore[return-value]

    def hold(self, notify: Callable[[], object] | None = None) -> None:
        """At the end of the work: keep a window open for inspection until the user closes it
        (``notify`` is called first, e.g. to say so); off-screen views just close."""
        if self._plotter is not None and not self.off_screen:
            if notify is not None:
                notify()
            self._plotter.show(auto_close=True)
            self._plotter = None
        self.close()

    def close(self) -> None:
        if self._plotter is not None:
            self._plotter.close()
            self._plotter = None


__all__ = ["LiveView", "TileMosaic", "record_state", "training_preview"]


def training_preview(view: "LiveView | LiveViewProcess", resolution: int = 64, max_points: int = 50_000) -> Callable[[Any], None]:
    """A trainer callback (VolSDF, GVKF) that sends the current state to ``view``.

    Trainers whose field holds Gaussians show their centres coloured by their colours (cheap);
    others show a coarse mesh of the current field (``resolution`` cells along the surface box).
    A field without a surface yet is skipped silently.
    """

    def callback(trainer: Any) -> None:
        field = trainer.field()
        if hasattr(field, "world_gaussians"):
            g = field.world_gaussians()
            step = max(1, len(g) // max_points)
            pts = g.means.detach().cpu().numpy()[::step].astype(np.float64)
            cols = g.colours().detach().cpu().numpy()[::step].astype(np.float32)
            view.update(points=PointCloud(pts, colors=cols),
                        text=f"step {trainer.stats.step}: {len(g):,} Gaussians, psnr {trainer.stats.psnr:.1f} dB")
            return
        try:
            mesh = field.extract_mesh(resolution=resolution)
        except ValueError:
            return
        if not mesh.is_empty():
            view.update(mesh=mesh, text=f"step {trainer.stats.step}: {mesh.n_faces:,} faces (preview at {resolution})")

    return callback


class TileMosaic:
    """Collects finished batch tiles into one preview mesh for a live view.

    ``on_tile(phase, tile_id, result)`` is the callback :func:`recon.tiling.runner.run_batch` calls on
    the driver; each meshed tile's decimated preview (or, without one, its mesh) is read and the
    union of all tiles so far is sent to the view with a "tiles done" line.
    """

    def __init__(self, view: "LiveView | LiveViewProcess", total: int | None = None) -> None:
        self.view, self.total = view, total
        self.parts: list[Mesh] = []
        self.fitted = 0

    def on_tile(self, phase: str, tile_id: str, result: dict) -> None:
        from recon.io.meshes import load_mesh

        if phase == "fit":
            self.fitted += 1
            self.view.update(text=f"batch: {self.fitted} tiles fitted, {len(self.parts)} meshed")
            return
        path = result.get("preview") or result.get("mesh")
        if not path or not result.get("faces") or not Path(path).is_file():
            return
        try:
            self.parts.append(load_mesh(path))
        except Exception:  # noqa: BLE001 - a preview that cannot be read must not stop the job
            return
        self.view.update(mesh=self.merged(), text=f"batch: {self.fitted} tiles fitted, {len(self.parts)} meshed")

    def merged(self) -> Mesh:
        """All collected tile meshes as one (vertex indices offset per part)."""
        counts = np.cumsum([0] + [p.n_vertices for p in self.parts[:-1]])
        v = np.concatenate([p.vertices for p in self.parts])
        f = np.concatenate([p.faces + o for p, o in zip(self.parts, counts)])
        return Mesh(v, f)
