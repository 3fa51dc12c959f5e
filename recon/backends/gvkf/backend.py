"""GVKFBackend: posed images -> trained Gaussians -> opacity field (the registry entry "gvkf").

Entry points mirror the VolSDF backend's: :meth:`GVKFBackend.fit_views` takes
:class:`~recon.types.Views` in world units (normalises them into the unit sphere, reads the images,
picks up COLMAP points3D next to the images when there are any); :meth:`GVKFBackend.fit_arrays`
takes arrays already in memory. Both return a :class:`~recon.backends.gvkf.field.GVKFField`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from recon.backends.gvkf.config import GVKFConfig
from recon.progress import NULL_PROGRESS, Progress
from recon.types import Cameras, Views


def find_points3d(views: Views) -> tuple[np.ndarray, np.ndarray] | None:
    """COLMAP sparse points of the model the views' images belong to (world units), or None."""
    from recon.io.cameras.colmap import read_points3d

    if not views.image_paths:
        return None
    img_dir = Path(views.image_paths[0]).parent
    for cand in (img_dir.parent, img_dir, img_dir.parent / "sparse" / "0"):
        try:
            pts = read_points3d(cand)
        except Exception:  # noqa: BLE001 - a malformed points file only costs the initialisation
            pts = None
        if pts is not None and len(pts[0]) > 0:
            return pts
    return None


class GVKFBackend:
    """Trains GVKF (3D Gaussians + opacity-to-SDF) on posed images.

    Example:
        >>> field = GVKFBackend(GVKFConfig(time_budget=180)).fit_views(load_views("scan/"))  # doctest: +SKIP
        >>> mesh = field.extract_mesh()                                                   # doctest: +SKIP
    """

    requires = frozenset({"images"})

    def __init__(self, config: GVKFConfig | None = None):
        self.config = config or GVKFConfig()
        self.trainer = None  # the last run's trainer (novel views, further training)

    def fit_arrays(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *,
                   to_world: np.ndarray | None = None, points3d: tuple[np.ndarray, np.ndarray] | None = None,
                   device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
                   checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, **train_kwargs: Any):
        """Train on in-memory arrays.

        Args:
            images: (C, H, W, 3) float32 RGB in [0, 1]; masks: optional (C, H, W) in [0, 1].
            cameras: C cameras normalised so the scene lies in the unit sphere.
            to_world: (4, 4) normalised -> world similarity (identity if None).
            points3d: optional sparse points in the normalised frame ((P, 3), (P, 3) RGB).
            device, progress, checkpoint_dir, resume: as for the VolSDF backend.
            train_kwargs: passed to :meth:`GVKFTrainer.train` (``callback``, ``callback_every``...).

        Returns:
            The :class:`GVKFField` (world units).

        Raises:
            InputError: mismatched inputs, an unusable initialisation, an unreadable checkpoint.
            EmptyResultError: no Gaussian survived pruning.
        """
        from recon.backends.gvkf.trainer import GVKFTrainer
        from recon.backends.posed import backend_device
        from recon.errors import EmptyResultError, InputError

        dev = backend_device(self.config.device, device)
        progress.update("gvkf: setting up", None, f"{len(cameras)} views, {cameras.width}x{cameras.height}, {dev}")
        try:
            trainer = GVKFTrainer(self.config, images, masks, cameras, device=dev, to_world=to_world,
                                  points3d=points3d, checkpoint_dir=checkpoint_dir)
        except ValueError as e:
            raise InputError(str(e), None, "check that the cameras and images belong together and face the scene") from e
        if resume and checkpoint_dir is not None:
            trainer.resume(progress)
        self.trainer = trainer
        try:
            trainer.train(progress=progress, **train_kwargs)
        except RuntimeError as e:
            if "no Gaussian survived" in str(e):
                raise EmptyResultError(str(e), None, "check the cameras, masks and background; "
                                       "or lower gvkf.prune_opacity") from e
            raise
        return trainer.field()

    def fit_views(self, views: Views, *, device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
                  checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, **train_kwargs: Any):
        """Normalise ``views`` (world units) into the unit sphere, read their images and train."""
        from recon.backends.volsdf.field import similarity_parts
        from recon.io.cameras import normalize_views
        from recon.io.images import read_view_images

        cfg = self.config
        progress.update("gvkf: reading images", None, f"{len(views)} views")
        norm, to_world = normalize_views(views)
        bg = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}.get(cfg.background)
        images, masks, cams = read_view_images(norm, max_size=cfg.max_image_size, background=bg)
        pts = find_points3d(views) if cfg.init in ("auto", "points3d") else None
        if pts is not None:
            _, A, c = similarity_parts(to_world)
            pts = ((pts[0] - c) @ np.linalg.inv(A).T, pts[1])
        return self.fit_arrays(images, masks, cams, to_world=to_world, points3d=pts, device=device,
                               progress=progress, checkpoint_dir=checkpoint_dir, resume=resume, **train_kwargs)

    def fit(self, scene: Any, *, device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False):
        """Registry entry point: ``scene`` is a :class:`~recon.types.Views` or a Scene with ``views``."""
        from recon.backends.posed import require_views

        views = require_views(scene, "gvkf")
        return self.fit_views(views, device=device, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume)

    def with_options(self, **changes: Any) -> "GVKFBackend":
        """A backend with some config fields replaced (e.g. ``steps``, ``time_budget``)."""
        return GVKFBackend(dataclasses.replace(self.config, **changes))
