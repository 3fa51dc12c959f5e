"""Serve a viewer scene in the browser through trame (pyvista's web support).

Rendering happens on the server (VTK off-screen, no display or browser WebGL needed);
the page shows the images and sends mouse input back. Needs ``trame``,
``trame-vuetify``, ``trame-vtk`` and (pyvista >= 0.49) ``trame-pyvista``.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, Callable, Sequence

from recon.errors import ConfigError, DependencyError

DEFAULT_PORT = 8080
HOST = "localhost"
WEB_PACKAGES = "trame trame-vtk trame-vuetify trame-pyvista"


def check_port(port: int, host: str = HOST) -> int:
    """Return ``port`` if it can be bound on ``host`` (0: a free port chosen now).

    Raises:
        ConfigError: the port is in use or not allowed; the message names it and suggests --port.
    """
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"port {port} is out of range", None, "pass --port between 1024 and 65535, or 0 for any free port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1" if host == "localhost" else host, int(port)))
        except OSError as e:
            other = int(port) + 1 if int(port) < 65535 else 8081
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} is already in use", None,
                                  f"pass another one, e.g. --port {other}, or --port 0 for any free port") from None
            raise ConfigError(f"cannot listen on port {port} ({e.strerror})", None,
                              f"pass another one, e.g. --port {other}") from None
        return int(s.getsockname()[1])


def _plotter_ui() -> Callable[..., Any]:
    try:
        from trame_pyvista.ui import plotter_ui  # pyvista >= 0.49
    except ImportError:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pyvista.trame.ui import plotter_ui  # older pyvista
        except ImportError:
            raise DependencyError("the web viewer needs trame", None, f"pip install {WEB_PACKAGES}") from None
    return plotter_ui


def web_available() -> tuple[bool, str]:
    """(True, "") when the trame packages import, else (False, what to install)."""
    try:
        _plotter_ui()
        import trame.ui.vuetify3  # noqa: F401
    except (ImportError, DependencyError):
        return False, f"pip install {WEB_PACKAGES}"
    return True, ""


def build_app(plotter: Any, title: str, actions: Sequence[tuple[str, Callable[[], object]]] = (),
              name: str = "recon-view") -> Any:
    """A trame server whose page shows ``plotter`` (server-side rendering) under a title bar.

    ``actions`` become toolbar buttons ``(label, callback)``; after a callback the view
    is re-rendered (the browser has no access to the window's keys).
    """
    plotter_ui = _plotter_ui()
    try:
        from trame.app import get_server
        from trame.ui.vuetify3 import SinglePageLayout
        from trame.widgets import vuetify3
    except ImportError:
        raise DependencyError("the web viewer needs trame", None, f"pip install {WEB_PACKAGES}") from None
    server = get_server(name, client_type="vue3")
    views: list[Any] = []

    def run(action: Callable[[], object]) -> Callable[[], None]:
        def handler() -> None:
            action()
            for v in views:
                v.update()

        return handler

    with SinglePageLayout(server) as layout:
        layout.title.set_text(title)
        with layout.toolbar:
            vuetify3.VSpacer()
            for label, action in actions:
                vuetify3.VBtn(label, click=run(action), variant="text", size="small")
        with layout.content:
            with vuetify3.VContainer(fluid=True, classes="pa-0 fill-height"):
                views.append(plotter_ui(plotter, mode="server", add_menu=False, server=server))
    return server


def serve(plotter: Any, *, port: int = DEFAULT_PORT, title: str = "recon view",
          actions: Sequence[tuple[str, Callable[[], object]]] = (),
          announce: Callable[[str], None] = print) -> None:
    """Serve ``plotter`` on http://localhost:PORT/ until interrupted; ``announce`` gets the URL line.

    Raises:
        ConfigError: the port is in use.
        DependencyError: trame is not installed.
    """
    server = build_app(plotter, title, actions)
    chosen = check_port(port)
    announce(f"recon view: open http://{HOST}:{chosen}/ in a browser (Ctrl-C to stop)")
    server.start(port=chosen, host=HOST, open_browser=False, show_connection_info=False)


__all__ = ["DEFAULT_PORT", "WEB_PACKAGES", "build_app", "check_port", "serve", "web_available"]
