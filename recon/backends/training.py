"""The training loop the image backends share (VolSDF, GVKF): steps until a step count or a time
budget, progress, periodic callbacks that do not count as training time, Ctrl-C that stops cleanly,
and atomic checkpoints.

Checkpoints hold tensors and plain values only (``state_dict`` must return nothing else) and are read
back with ``weights_only=True``, so a checkpoint file can never run code.

A trainer subclasses :class:`TrainingLoop` and provides ``cfg`` (with ``steps``, ``time_budget``,
``threads`` and ``checkpoint_every``), ``device``, ``stats`` (with ``step``, ``elapsed``,
``history`` and ``interrupted``), ``checkpoint_dir``, and the methods :meth:`step`,
:meth:`record`, :meth:`state_dict` and :meth:`load_state_dict`.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from recon.backends.posed import check_image_arrays, estimate_background
from recon.backends.run_budget import RunBudget
from recon.device import torch_threads
from recon.errors import InputError
from recon.io.atomic import atomic_write
from recon.io.torch_files import load_tensors, to_plain
from recon.progress import NULL_PROGRESS, Progress


def psnr(mse: float) -> float:
    """PSNR in dB of images in [0, 1] from their mean squared error."""
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def _mismatch(e: Exception) -> str:
    """A few words on why a readable checkpoint does not fit the trainer."""
    if isinstance(e, KeyError):
        return f"the checkpoint has no entry {e}"
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else f"the checkpoint does not fit ({type(e).__name__})"


class TrainingLoop:
    """Mixin: the loop, schedule fraction and checkpoints of an iterative trainer."""

    #: progress stage name and checkpoint file name (set by subclasses)
    name = "training"
    checkpoint_name = "checkpoint.pt"

    # ------------------------------------------------------------------ to provide

    def step(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def record(self, info: dict[str, float]) -> tuple[tuple, str]:  # pragma: no cover - abstract
        """Store a step's ``info`` in ``stats``; return its history row and progress text."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ set-up

    def _take_images(self, config: Any, images: np.ndarray, masks: np.ndarray | None, cameras: Any, *,
                     device: str | torch.device, to_world: np.ndarray | None,
                     checkpoint_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Set what every image trainer holds and check its arrays.

        Sets ``cfg``, ``device``, ``to_world`` ((4, 4) normalised -> world, identity when None),
        ``checkpoint_dir``, ``cameras`` and ``image_shape`` (C, H, W).

        Returns:
            The (C, H, W, 3) float32 images, the optional (C, H, W) float32 masks and the (3,) float32
            background colour (``config.background``: white, black or auto).

        Raises:
            ValueError: images, masks and cameras that do not match.
        """
        self.cfg = config
        self.device = torch.device(device)
        self.to_world = np.eye(4) if to_world is None else np.asarray(to_world, np.float64)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        images, masks = check_image_arrays(images, masks, cameras)
        self.image_shape = images.shape[:3]
        self.cameras = cameras
        return images, masks, estimate_background(images, masks, config.background)

    # ------------------------------------------------------------------ schedule

    #: the whole-run budget (set by the backend); None: ``cfg.time_budget`` is training seconds alone
    run_budget: RunBudget | None = None

    def training_budget(self) -> float | None:
        """Training seconds at which training stops: what the run budget leaves for training, or
        ``cfg.time_budget`` when there is no run budget; None for no time limit."""
        if self.run_budget is not None:
            return self.run_budget.training_seconds(self.stats.elapsed)
        return self.cfg.time_budget

    def _time_fraction(self) -> float:
        """Training time used as a fraction of the time available, in [0, 1] (0 without a time limit)."""
        budget = self.training_budget()
        if budget is None:
            return 0.0
        return min(self.stats.elapsed / budget, 1.0) if budget > 0 else 1.0

    def _fraction(self, budget: float | None = None) -> float:
        """Training progress in [0, 1]: the larger of step / steps and elapsed / training budget."""
        f = self.stats.step / max(self.cfg.steps, 1)
        budget = self.training_budget() if budget is None else budget
        if budget is not None:
            f = max(f, self.stats.elapsed / budget) if budget > 0 else 1.0
        return min(f, 1.0)

    def done(self) -> bool:
        budget = self.training_budget()
        return self.stats.step >= self.cfg.steps or (budget is not None and self.stats.elapsed >= budget)

    # ------------------------------------------------------------------ loop

    def train(self, *, progress: Progress = NULL_PROGRESS, max_steps: int | None = None,
              callback: Callable[[Any], None] | None = None, callback_every: float | None = None,
              log_every: int = 25):
        """Train until ``config.steps`` / ``config.time_budget`` (or ``max_steps`` more steps) are reached.

        Args:
            progress: receives (``name``, fraction, a one-line summary of the last step).
            max_steps: stop after this many more steps (for chunked training); None = until done.
            callback: called with the trainer every ``callback_every`` training seconds (its own time
                does not count as training time), e.g. to evaluate a mesh or feed a live view.
            callback_every: seconds of training between callbacks.
            log_every: steps between progress reports and history entries.

        Returns:
            ``stats``. Ctrl-C stops training cleanly: a checkpoint is written (if a directory is set)
            and ``stats.interrupted`` is True; the KeyboardInterrupt is not re-raised.
        """
        cfg = self.cfg
        last_ckpt = self.stats.elapsed
        next_cb = self.stats.elapsed + (callback_every or 0.0)
        todo = max_steps
        with torch_threads(cfg.threads, self.device):
            try:
                while not self.done() and (todo is None or todo > 0):
                    t0 = time.perf_counter()
                    info = self.step()
                    if self.device.type == "cuda":
                        torch.cuda.synchronize(self.device)
                    self.stats.elapsed += time.perf_counter() - t0
                    if todo is not None:
                        todo -= 1
                    row, text = self.record(info)
                    s = self.stats
                    if s.step % log_every == 0 or s.step == 1:
                        s.history.append(row)
                        progress.update(self.name, self._fraction(), text)
                    if self.checkpoint_dir is not None and s.elapsed - last_ckpt >= cfg.checkpoint_every:
                        self.save_checkpoint()
                        last_ckpt = s.elapsed
                    if callback is not None and callback_every and s.elapsed >= next_cb:
                        callback(self)
                        next_cb = s.elapsed + callback_every
            except KeyboardInterrupt:
                self.stats.interrupted = True
            if self.checkpoint_dir is not None:
                self.save_checkpoint()
        return self.stats

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / self.checkpoint_name

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Write the training state atomically (temporary file, then rename); returns the path."""
        p = Path(path) if path is not None else self.checkpoint_path()
        if p is None:
            raise ValueError("no checkpoint path: give one or set checkpoint_dir")
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(p) as tmp:
            torch.save(to_plain(self.state_dict()), tmp)
        return p

    def resume(self, progress: Progress = NULL_PROGRESS) -> bool:
        """Continue from the checkpoint in ``checkpoint_dir`` if there is one (``--resume``).

        Raises:
            InputError: the checkpoint cannot be read or belongs to other options / images.
        """
        try:
            resumed = self.load_checkpoint()
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OSError, RuntimeError) as e:
            raise InputError(f"cannot resume: {_mismatch(e)}", self.checkpoint_path(),
                             "use the options and images of the interrupted run, or delete the checkpoint "
                             "folder and run without --resume") from e
        if resumed:
            progress.update(self.name, None, f"resumed at step {self.stats.step}")
        return resumed

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> bool:
        """Resume from a checkpoint; returns False when there is none.

        The file is read with ``weights_only=True`` (tensors and plain values only, no code runs).

        Raises:
            InputError: the file is not a readable checkpoint (damaged, or holds Python objects).
            ValueError, KeyError, TypeError, RuntimeError: the checkpoint does not fit this trainer.
        """
        p = Path(path) if path is not None else self.checkpoint_path()
        if p is None or not p.is_file():
            return False
        state = load_tensors(p, what=f"{self.name} checkpoint", map_location=self.device,
                             fix="delete the checkpoint folder and run without --resume")
        self.load_state_dict(state)
        return True
