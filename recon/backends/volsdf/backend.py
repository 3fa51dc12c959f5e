"""VolSDFBackend: posed images -> trained SDF field (the registry entry "volsdf").

Two entry points:

* :meth:`VolSDFBackend.fit_views` takes :class:`~recon.types.Views` in world units (as the camera
  loaders return them), normalises them into the unit sphere, reads the images and trains;
* :meth:`VolSDFBackend.fit_arrays` takes arrays already in memory (images, optional masks, cameras
  normalised into the unit sphere, and the normalised -> world transform).

Both return a :class:`~recon.backends.volsdf.field.VolSDFField` in world units; call its
``extract_mesh()`` for the mesh.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from recon.backends.volsdf.config import VolSDFConfig
from recon.progress import NULL_PROGRESS, Progress
from recon.types import Cameras, Views


class VolSDFBackend:
    """Trains VolSDF on posed images.

    Args:
        config: options (defaults: :class:`VolSDFConfig` ()).

    Example:
        >>> field = VolSDFBackend(VolSDFConfig(time_budget=600)).fit_views(load_views("scan/"))  # doctest: +SKIP
        >>> mesh = field.extract_mesh(resolution=256)                                           # doctest: +SKIP
    """

    requires = frozenset({"images"})

    def __init__(self, config: VolSDFConfig | None = None):
        self.config = config or VolSDFConfig()
        self.trainer = None  # the last run's trainer (for rendering views, further training)

    def fit_arrays(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *,
                   to_world: np.ndarray | None = None, device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
                   checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, **train_kwargs: Any):
        """Train on in-memory arrays.

        Args:
            images: (C, H, W, 3) float32 RGB in [0, 1].
            masks: optional (C, H, W) float32 object masks in [0, 1].
            cameras: C cameras (OpenCV convention) normalised so the scene lies in the unit sphere.
            to_world: (4, 4) similarity mapping the normalised frame to world units (identity if None).
            device: "cpu", "cuda" or "auto" (the config's ``device`` wins unless it is "auto").
            progress: progress reporter.
            checkpoint_dir: folder for ``volsdf.pt`` (written periodically, on Ctrl-C and at the end).
            resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
            train_kwargs: passed to :meth:`VolSDFTrainer.train` (``callback``, ``callback_every``...).

        Returns:
            The :class:`VolSDFField` (world units).
        """
        from recon.backends.volsdf.trainer import VolSDFTrainer

        from recon.backends.posed import backend_device

        dev = backend_device(self.config.device, device)
        progress.update("volsdf: setting up", None, f"{len(cameras)} views, {cameras.width}x{cameras.height}, {dev}")
        try:
            trainer = VolSDFTrainer(self.config, images, masks, cameras, device=dev, to_world=to_world,
                                    checkpoint_dir=checkpoint_dir)
        except ValueError as e:  # shapes that do not match, cameras that miss the scene
            from recon.errors import InputError

            raise InputError(str(e), None, "check that the cameras and images belong together and face the scene") from e
        if resume and checkpoint_dir is not None:
            trainer.resume(progress)
        self.trainer = trainer
        trainer.train(progress=progress, **train_kwargs)
        return trainer.field()

    def fit_views(self, views: Views, *, device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
                  checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, **train_kwargs: Any):
        """Normalise ``views`` (world units) into the unit sphere, read their images and train.

        Returns:
            The :class:`VolSDFField` in the views' world units.
        """
        from recon.io.cameras import normalize_views
        from recon.io.images import read_view_images

        cfg = self.config
        progress.update("volsdf: reading images", None, f"{len(views)} views")
        norm, to_world = normalize_views(views)
        bg = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}.get(cfg.background)
        images, masks, cams = read_view_images(norm, max_size=cfg.max_image_size, background=bg)
        return self.fit_arrays(images, masks, cams, to_world=to_world, device=device, progress=progress,
                               checkpoint_dir=checkpoint_dir, resume=resume, **train_kwargs)

    def fit(self, scene: Any, *, device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False):
        """Registry entry point: ``scene`` is a :class:`~recon.types.Views` or a Scene with ``views``."""
        from recon.backends.posed import require_views

        views = require_views(scene, "volsdf")
        return self.fit_views(views, device=device, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume)

    def with_options(self, **changes: Any) -> "VolSDFBackend":
        """A backend with some config fields replaced (e.g. ``steps``, ``time_budget``)."""
        return VolSDFBackend(dataclasses.replace(self.config, **changes))
