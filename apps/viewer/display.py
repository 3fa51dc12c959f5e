"""Whether a window can be opened here (cheap: no VTK import)."""

from __future__ import annotations

import os
import sys


def has_display(environ: dict[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether an on-screen window can be opened: on Linux (and other X11 systems) only with
    ``DISPLAY`` or ``WAYLAND_DISPLAY`` set; macOS and Windows always have one."""
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    if plat.startswith(("win", "darwin", "cygwin")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


__all__ = ["has_display"]
