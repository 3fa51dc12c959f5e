"""Off-screen rendering to a PNG (no display or X server needed: VTK renders through EGL/OSMesa)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from recon.errors import ConfigError

if TYPE_CHECKING:
    from recon_apps.viewer.scene import Panel


def check_screenshot_path(path: str | Path) -> Path:
    """The output path, if it ends in .png and its folder exists.

    Raises:
        ConfigError: another extension or a missing folder.
    """
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ConfigError(f"cannot write a screenshot as '{p.suffix or '(no extension)'}'", p, "name it .png")
    if not p.resolve().parent.is_dir():
        raise ConfigError("the output folder does not exist", p, f"create {p.resolve().parent} first")
    return p


def render_screenshot(panels: Sequence[Panel], path: str | Path | None = None, *,
                      window_size: tuple[int, int] | None = None, show_help: bool = False,
                      up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Render ``panels`` off-screen; write a PNG to ``path`` (if given) and return the (H, W, 3) image."""
    from recon_apps.viewer.app import Viewer

    if path is not None:
        path = check_screenshot_path(path)
    viewer = Viewer(panels, off_screen=True, window_size=window_size, show_help=show_help, up=up)
    try:
        return viewer.screenshot(path)
    finally:
        viewer.close()


__all__ = ["check_screenshot_path", "render_screenshot"]
