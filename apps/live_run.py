"""``recon reconstruct --view`` / ``--view-snapshot``: feeding a running reconstruction to a live view.

The view itself lives in :mod:`recon_apps.viewer.live` (drawn in a child process); this
module opens it for the options given and passes it the input, the progress and previews.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recon.progress import Progress
from recon.types import PointCloud

from recon_apps.viewer.live import training_preview
from recon_apps.viewer.live_process import make_live_view

# Seconds of training between two live-view previews of an image backend: GVKF sends its Gaussians'
# centres (cheap), VolSDF a mesh of its SDF at 64 cells (about 1 s on 2 cores: ~3 % of the run at 30 s).
PREVIEW_EVERY = {"gvkf": 5.0}
PREVIEW_EVERY_DEFAULT = 30.0
#: the most input points sent to the view (evenly strided)
PREVIEW_POINTS = 50_000


class LiveProgress:
    """Passes progress to the terminal reporter and, as a status line, to a live view."""

    def __init__(self, inner: Progress, view: Any) -> None:
        self.inner, self.view = inner, view

    def update(self, stage: str, fraction: float | None = None, info: str | None = None) -> None:
        self.inner.update(stage, fraction, info)
        text = stage + (f"  {100 * fraction:.0f} %" if fraction is not None else "") + (f"  {info}" if info else "")
        self.view.update(text=text)


def preview_points(cloud: PointCloud, limit: int = PREVIEW_POINTS) -> PointCloud:
    """At most ``limit`` evenly strided points of ``cloud`` for the live view."""
    step = max(1, len(cloud) // limit)
    return cloud.subset(slice(None, None, step)) if step > 1 else cloud


def open_live_view(view_live: bool, snapshot: Path | None) -> Any:
    """The live view for ``--view`` / ``--view-snapshot``, or None when neither is given
    (see :func:`recon_apps.viewer.live_process.make_live_view`)."""
    if not view_live and snapshot is None:
        return None
    return make_live_view(view_live, snapshot)


def training_callback(view: Any, backend: str) -> dict[str, Any]:
    """Trainer keyword arguments that send the current mesh / Gaussians to ``view`` every
    :data:`PREVIEW_EVERY` training seconds of ``backend``."""
    return {"callback": training_preview(view), "callback_every": PREVIEW_EVERY.get(backend, PREVIEW_EVERY_DEFAULT)}


__all__ = ["LiveProgress", "PREVIEW_EVERY", "open_live_view", "preview_points", "training_callback"]
