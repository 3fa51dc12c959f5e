"""Off-screen rendering to a PNG (no display or X server needed: VTK renders through EGL/OSMesa)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from recon.errors import ConfigError
from recon.io.outputs import check_output_file

if TYPE_CHECKING:
    from recon_apps.viewer.scene import Panel


def check_screenshot_path(path: str | Path, inputs: Sequence[object] = ()) -> Path:
    """The output path, if it ends in .png, is none of ``inputs`` and its folder is writable.

    Args:
        path: the PNG to write.
        inputs: what is being viewed; file paths among them may not be the output.

    Raises:
        ConfigError: another extension, an input's path, or a missing or read-only folder.
    """
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ConfigError(f"cannot write a screenshot as '{p.suffix or '(no extension)'}'", p, "name it .png")
    return check_output_file(p, [i for i in inputs if isinstance(i, (str, Path))], option="--screenshot")


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
