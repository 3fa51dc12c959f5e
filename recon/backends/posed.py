"""Pieces the posed-image backends (VolSDF, GVKF) share: the device, the views, the image arrays and
their background colour."""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from typing import Any

import numpy as np

from recon.backends.run_budget import RunBudget
from recon.device import backend_device
from recon.errors import InputError
from recon.io.cameras import normalize_views
from recon.io.images import read_view_images
from recon.progress import NULL_PROGRESS, Progress
from recon.types import Cameras, Views

#: the background colours a config may name (``auto`` estimates it from the images)
BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}


def require_views(scene: Any, backend: str) -> Views:
    """``scene`` itself when it is :class:`~recon.types.Views`, else its ``views`` attribute.

    Raises:
        InputError: there are no posed images (a point cloud was passed).
    """
    views = scene if isinstance(scene, Views) else getattr(scene, "views", None)
    if views is None:
        raise InputError(f"the {backend} backend needs posed images, not a point cloud",
                         getattr(scene, "source", None), "pass a folder of posed images")
    return views


def check_image_arrays(images: Any, masks: Any, cameras: Cameras) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (C, H, W, 3) and optional masks (C, H, W) as float32, checked against the C cameras.

    Raises:
        ValueError: shapes that do not match each other or the cameras.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (C, H, W, 3), got {images.shape}")
    C, H, W, _ = images.shape
    if len(cameras) != C or cameras.width != W or cameras.height != H:
        raise ValueError(f"{len(cameras)} cameras of {cameras.width}x{cameras.height} for {C} images of {W}x{H}")
    if masks is not None:
        masks = np.asarray(masks, np.float32)
        if masks.size != C * H * W:
            raise ValueError(f"masks must be (C, H, W) = ({C}, {H}, {W}), got {masks.shape}")
        masks = masks.reshape(C, H, W)
    return images, masks


def estimate_background(images: np.ndarray, masks: np.ndarray | None, mode: str = "auto") -> np.ndarray:
    """(3,) float32 background colour.

    "white"/"black" are taken as given. "auto": with masks, the median colour of the pixels outside
    them; without, white when the images' border pixels are mostly bright, else black.
    """
    if mode == "white":
        return np.ones(3, np.float32)
    if mode == "black":
        return np.zeros(3, np.float32)
    if masks is not None and (masks < 0.5).any():
        return np.median(images[masks < 0.5], axis=0).astype(np.float32)
    border = np.concatenate([images[:, 0].reshape(-1, 3), images[:, -1].reshape(-1, 3),
                             images[:, :, 0].reshape(-1, 3), images[:, :, -1].reshape(-1, 3)])
    return (np.ones(3) if float(border.mean()) > 0.5 else np.zeros(3)).astype(np.float32)


#: a run that stops (time budget or Ctrl-C) before this fraction of its steps is reported as far from converged
CONVERGED_FRACTION = 0.25


def warn_if_unconverged(name: str, done: int, steps: int, interrupted: bool, trained: float = 0.0,
                        other: float = 0.0) -> None:
    """Warn (a note in the run's summary) when training stopped far short of its configured steps.

    Args:
        name: the backend.
        done, steps: steps trained and configured.
        interrupted: stopped by Ctrl-C rather than the time budget.
        trained: seconds of training (for the budget that would suffice).
        other: seconds of the run spent outside training (reading, set-up, the meshing reserve).
    """
    if steps <= 0 or done >= CONVERGED_FRACTION * steps:
        return
    why = "Ctrl-C" if interrupted else "the time budget"
    advice = "give a longer --time-budget or more --steps, or use a GPU"
    if done > 0 and trained > 0 and not interrupted:
        need = other + CONVERGED_FRACTION * steps * trained / done
        advice = (f"at {done / trained:.2f} steps/s a --time-budget of about {format_seconds(need)} reaches "
                  f"{CONVERGED_FRACTION:.0%} of the steps; or use a GPU")
    warnings.warn(f"{name} training stopped by {why} after {done:,} of {steps:,} steps ({100 * done / steps:.1f} %): "
                  f"the surface is far from converged; {advice}", RuntimeWarning, stacklevel=2)


def format_seconds(seconds: float) -> str:
    """A duration as the CLI takes it: "45s", "12m", "2h" (rounded up)."""
    if seconds < 120:
        return f"{math.ceil(seconds)}s"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)}m"
    return f"{math.ceil(seconds / 3600)}h"


class PosedBackend:
    """What the image backends share: views -> normalised arrays -> a trainer -> the trained field.

    A subclass sets ``name`` and ``config_class`` and implements :meth:`make_trainer` (and may
    override :meth:`view_extras` to pass more inputs, such as sparse points, to it). Its field
    comes back in the views' world units.
    """

    name = "posed"
    config_class: type = object
    requires = frozenset({"images"})

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.config_class()
        self.trainer = None  # the last run's trainer (novel views, further training)

    def make_trainer(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *, device: str,
                     to_world: np.ndarray | None, checkpoint_dir: str | os.PathLike | None, **extras: Any) -> Any:
        """The backend's trainer for these arrays (see :meth:`fit_arrays`)."""
        raise NotImplementedError

    def view_extras(self, views: Views, to_world: np.ndarray) -> dict[str, Any]:
        """More inputs for :meth:`make_trainer` taken from the views (none by default)."""
        return {}

    def meshing_seconds(self, trainer: Any) -> float:
        """Expected seconds to mesh (and colour) ``trainer``'s field as it is now; the whole-run time
        budget keeps this much for meshing (0 by default)."""
        return 0.0

    def run_trainer(self, trainer: Any, progress: Progress, **train_kwargs: Any) -> None:
        """Train (a subclass may translate its trainer's errors here)."""
        trainer.train(progress=progress, **train_kwargs)

    def fit_arrays(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *,
                   to_world: np.ndarray | None = None, device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
                   checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, extras: dict | None = None,
                   started: float | None = None, whole_run: bool = True, **train_kwargs: Any) -> Any:
        """Train on in-memory arrays.

        Args:
            images: (C, H, W, 3) float32 RGB in [0, 1]; masks: optional (C, H, W) float32 in [0, 1].
            cameras: C cameras (OpenCV convention) normalised so the scene lies in the unit sphere.
            to_world: (4, 4) similarity mapping the normalised frame to world units (identity if None).
            device: "cpu", "cuda" or "auto" (the config's ``device`` wins unless it is "auto").
            progress: progress reporter.
            checkpoint_dir: folder for the trainer's checkpoint (written periodically, on Ctrl-C and at the end).
            resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
            extras: more inputs for :meth:`make_trainer` (e.g. GVKF's ``points3d``).
            started: ``time.monotonic()`` when the run began (default: now). With ``config.time_budget``
                set, the run from then to the meshed field fits the budget: training stops when the time
                left is what meshing is expected to take (:class:`~recon.backends.run_budget.RunBudget`).
            whole_run: False makes ``time_budget`` seconds of training alone, callbacks excluded (the
                benchmarks' protocol).
            train_kwargs: passed to the trainer's ``train`` (``callback``, ``callback_every``...).

        Returns:
            The trained field (world units).

        Raises:
            InputError: images and cameras that do not belong together; an unreadable checkpoint.
        """
        started = time.monotonic() if started is None else started
        dev = backend_device(self.config.device, device)
        progress.update(f"{self.name}: setting up", None, f"{len(cameras)} views, {cameras.width}x{cameras.height}, {dev}")
        try:
            trainer = self.make_trainer(images, masks, cameras, device=dev, to_world=to_world,
                                        checkpoint_dir=checkpoint_dir, **(extras or {}))
        except ValueError as e:  # shapes that do not match, cameras that miss the scene
            raise InputError(str(e), None, "check that the cameras and images belong together and face the scene") from e
        if resume and checkpoint_dir is not None:
            trainer.resume(progress)
        self.trainer = trainer
        if self.config.time_budget is not None and whole_run:
            trainer.run_budget = RunBudget(self.config.time_budget, started, lambda: self.meshing_seconds(trainer))
        self.run_trainer(trainer, progress, **train_kwargs)
        budget = trainer.run_budget
        other = 0.0 if budget is None else budget.spent() - trainer.stats.elapsed + budget.reserve
        # an uncapped step count (--time-budget alone) is judged against the recommended (default) steps
        reference = min(self.config.steps, self.config_class().steps)
        warn_if_unconverged(self.name, trainer.stats.step, reference, trainer.stats.interrupted,
                            trainer.stats.elapsed, other)
        return trainer.field()

    def fit_views(self, views: Views, *, device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
                  checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, started: float | None = None,
                  **train_kwargs: Any) -> Any:
        """Normalise ``views`` (world units) into the unit sphere, read their images and train.

        ``started`` is ``time.monotonic()`` when the run began (default: now); the time budget counts from
        there (see :meth:`fit_arrays`).

        Returns:
            The trained field in the views' world units.
        """
        cfg = self.config
        started = time.monotonic() if started is None else started
        progress.update(f"{self.name}: reading images", None, f"{len(views)} views")
        norm, to_world = normalize_views(views)
        images, masks, cams = read_view_images(norm, max_size=cfg.max_image_size, background=BACKGROUNDS.get(cfg.background))
        return self.fit_arrays(images, masks, cams, to_world=to_world, device=device, progress=progress,
                               checkpoint_dir=checkpoint_dir, resume=resume, extras=self.view_extras(views, to_world),
                               started=started, **train_kwargs)

    def fit(self, scene: Any, *, device: str | None = "cpu", progress: Progress = NULL_PROGRESS,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, started: float | None = None) -> Any:
        """Registry entry point: ``scene`` is a :class:`~recon.types.Views` or a Scene with ``views``."""
        views = require_views(scene, self.name)
        return self.fit_views(views, device=device, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume,
                              started=started)

    def with_options(self, **changes: Any) -> "PosedBackend":
        """A backend of the same kind with some config fields replaced (e.g. ``steps``, ``time_budget``)."""
        return type(self)(dataclasses.replace(self.config, **changes))
