"""A live view drawn by a child process, so that drawing never stalls the reconstruction.

VTK draws while holding the GIL, and without a GPU it draws in software: a :class:`LiveView` in the
working process stops the work for every frame (the first one, which creates the GL context, takes
about a second). :class:`LiveViewProcess` has the same interface but hands each update to a child
Python (``python -m recon_apps.viewer.live_process FD``) that owns a :class:`LiveView` and draws it;
the work only pickles the newest state onto a pipe, from a sender thread, so a slow frame never
blocks it. The child's frames land on a core the work is not using most of the time.

Protocol (pickled tuples on one duplex :class:`multiprocessing.connection.Connection`):
parent -> child ``("update", {"mesh"|"points"|"text": ...})``, ``("flush",)`` (draw what is pending now,
then answer ``("flushed", draws)``), ``("image",)`` (answer ``("image", array or None)``),
``("hold",)`` (keep a window open until the user closes it, then answer ``("held",)``) and
``("close",)``; the child also ends when the pipe closes (the parent died). The child ignores SIGINT:
Ctrl-C belongs to the working process, which closes the child on its way out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from recon.errors import ReconError
from recon.types import Mesh, PointCloud

from recon_apps.viewer.display import has_display
from recon_apps.viewer.live import LiveView, record_state
from recon_apps.viewer.screenshot import check_screenshot_path

T = TypeVar("T")

#: seconds to wait for the child's answer to a flush (its first frame includes starting VTK)
ANSWER_TIMEOUT = 60.0


class LiveViewProcess:
    """A :class:`~recon_apps.viewer.live.LiveView` living in a child process (same arguments, same calls).

    ``update`` is safe and cheap from any thread: it records the newest state, and a sender thread
    ships it to the child (states that arrive while one is on its way are merged, newest wins). If the
    child dies (a VTK failure, a closed window), updates are dropped and the work goes on.

    Args:
        interval, text_interval, off_screen, snapshot, window_size, up: as for LiveView.
    """

    def __init__(self, *, interval: float = 2.0, text_interval: float | None = None, off_screen: bool | None = None,
                 snapshot: str | Path | None = None, window_size: tuple[int, int] = (800, 640),
                 up: Sequence[float] = (0.0, 0.0, 1.0)) -> None:
        self.off_screen = (not has_display()) if off_screen is None else bool(off_screen)
        self.snapshot = None if snapshot is None else Path(snapshot)
        self.draws = 0
        options = {"interval": float(interval), "text_interval": text_interval, "off_screen": self.off_screen,
                   "snapshot": None if snapshot is None else str(snapshot), "window_size": tuple(window_size),
                   "up": [float(u) for u in up]}
        ours, theirs = Pipe(duplex=True)
        env = dict(os.environ)
        if self.off_screen:  # software GL: two render threads (not one per core, the work needs them)
            env.setdefault("LP_NUM_THREADS", "2")
        self._proc = subprocess.Popen([sys.executable, "-m", "recon_apps.viewer.live_process", str(theirs.fileno())],
                                      pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn: Connection | None = ours
        self._send_lock = threading.Lock()  # the sender thread and the requests below share the pipe
        self._conn.send(("options", options))
        self._cond = threading.Condition()
        self._pending: dict[str, Any] = {}
        self._sending = False
        self._closed = False
        self._flush_sent = False  # a final frame was asked for and its answer not yet read
        self._sender = threading.Thread(target=self._send_loop, name="recon-live-sender", daemon=True)
        self._sender.start()

    # ------------------------------------------------------------ any thread

    def update(self, mesh: Mesh | None = None, points: PointCloud | np.ndarray | None = None,
               text: str | None = None) -> None:
        """Record the newest state (None leaves that part as it is); the sender thread ships it."""
        with self._cond:
            record_state(self._pending, mesh, points, text)
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        """Whether the child still runs."""
        return self._conn is not None and self._proc.poll() is None

    # ------------------------------------------------------------ sender thread

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
                state, self._pending = self._pending, {}
                self._sending = True
            try:
                self._send(("update", state))
            finally:
                with self._cond:
                    self._sending = False
                    self._cond.notify_all()

    def _send(self, message: tuple) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            with self._send_lock:
                conn.send(message)
            return True
        except (OSError, EOFError, ValueError):  # the child is gone: the view is advisory, the work goes on
            self._conn = None
            return False

    def _drain(self) -> None:
        """Wait until every recorded update has been handed to the pipe."""
        with self._cond:
            while (self._pending or self._sending) and self._conn is not None and self._sender.is_alive():
                self._cond.wait(0.1)

    def _ask(self, message: tuple, answer: str, timeout: float | None = ANSWER_TIMEOUT) -> Any:
        """Send ``message`` after all updates and return the payload of the child's ``answer`` (None if gone)."""
        self._drain()
        if not self._send(message):
            return None
        return self._answer(answer, timeout)

    def _answer(self, answer: str, timeout: float | None) -> Any:
        """Read the child's messages until ``answer``; returns its payload (None: gone or timed out)."""
        conn = self._conn
        if conn is None:
            return None
        try:
            while timeout is None or conn.poll(timeout):
                kind, *payload = conn.recv()
                if kind == "flushed":
                    self.draws = int(payload[0])
                    self._flush_sent = False
                if kind == answer:
                    return payload[0] if payload else True
            return None
        except (OSError, EOFError):
            self._conn = None
            return None

    # ------------------------------------------------------------ the calling thread

    def refresh(self, force: bool = False) -> bool:
        """With ``force``: wait until the child has drawn everything recorded so far (the snapshot is then
        on disk). Without: nothing to do, the child redraws on its own. Returns whether a frame was drawn."""
        if not force:
            return False
        before = self.draws
        if self._ask(("flush",), "flushed") is None:
            return False
        return self.draws > before

    def image(self) -> np.ndarray | None:
        """The child's last frame as (H, W, 3) uint8, or None before its first frame (or without a child)."""
        img = self._ask(("image",), "image")
        return None if img is None else np.asarray(img)

    def run(self, work: Callable[["LiveViewProcess"], T], poll: float = 0.05) -> T:
        """``work(self)`` on this thread (the child draws meanwhile), then ask for a final frame of
        everything recorded. The caller goes on meanwhile (writing the mesh); :meth:`image`,
        :meth:`refresh`, :meth:`hold` and :meth:`close` wait for that frame. Re-raises the work's
        exception; the child is closed on the way out of an error or Ctrl-C."""
        del poll  # nothing to poll: the child draws on its own
        try:
            result = work(self)
        except BaseException:
            self.close()
            raise
        self._drain()
        self._flush_sent = self._send(("flush",))
        return result

    def hold(self, notify: Callable[[], object] | None = None) -> None:
        """Keep a window open until the user closes it (``notify`` first); off-screen views just close."""
        if not self.off_screen and self.alive:
            if notify is not None:
                notify()
            self._ask(("hold",), "held", timeout=None)
        self.close()

    def close(self) -> None:
        """Wait for a final frame asked for by :meth:`run`, then stop the child (politely, then by
        force) and the sender thread."""
        if self._flush_sent:
            self._answer("flushed", ANSWER_TIMEOUT)
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
        if self._conn is not None:
            self._send(("close",))
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
        if self._proc.poll() is None:
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)

    def __enter__(self) -> "LiveViewProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(conn: Connection, poll: float = 0.05) -> None:
    """The child's loop: apply updates to a LiveView, redraw when due, answer requests, until close/EOF."""
    kind, options = conn.recv()
    if kind != "options":
        raise RuntimeError(f"live view child: expected options, got {kind!r}")
    view = LiveView(**options)
    try:
        while True:
            if conn.poll(poll):
                kind, *payload = conn.recv()
                if kind == "update":
                    view.update(**payload[0])  # draws when due (we are the view's owner thread)
                elif kind == "flush":
                    view.refresh(force=True)
                    conn.send(("flushed", view.draws))
                elif kind == "image":
                    conn.send(("image", view.image()))
                elif kind == "hold":
                    view.hold()
                    conn.send(("held",))
                    return
                elif kind == "close":
                    return
            else:
                view.poll()
    except (EOFError, OSError):  # the working process went away
        return
    finally:
        view.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m recon_apps.viewer.live_process FD``: serve the live view on the inherited pipe ``FD``."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(Connection(int(args[0])))
    # the frames are on disk and the window is closed: skip the interpreter's slow teardown of VTK
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())


def make_live_view(view_live: bool, snapshot: str | Path | None) -> LiveViewProcess:
    """The live view for ``--view`` / ``--view-snapshot PNG``: a window, or (with a snapshot and no
    ``--view``) an off-screen view refreshing the PNG; drawn by a child process (see
    :mod:`recon_apps.viewer.live_process`) so that frames do not stall the work. Without a display
    ``--view`` needs a snapshot.

    Raises:
        ReconError: ``--view`` without a display and without a snapshot; a bad snapshot path.
    """
    if snapshot is not None:
        check_screenshot_path(Path(snapshot))
    elif not has_display():
        raise ReconError("--view needs a display (DISPLAY and WAYLAND_DISPLAY are unset)", None,
                         "pass --view-snapshot live.png to follow the run in an image file instead")
    return LiveViewProcess(off_screen=True if snapshot is not None and not view_live else None, snapshot=snapshot)
