"""Inference entry point of the learned kernel: world points -> :class:`LearnedKernelField`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from recon.backends.kernel.frontend import kernel_device, prepare_points
from recon.backends.kernel.learned.field import DEFAULT_WEIGHTS, LearnedKernelField, solve_learned
from recon.backends.kernel.learned.model import LearnedKernelModel
from recon.backends.kernel.scale import check_memory
from recon.device import torch_threads
from recon.errors import ConfigError
from recon.progress import NULL_PROGRESS, Progress

_CACHE: dict[tuple[str, float, str], Any] = {}


def weights_path(config: Any) -> Path:
    """The weights file of a KernelConfig (its ``weights`` or the committed default)."""
    return Path(config.weights).expanduser() if config.weights else DEFAULT_WEIGHTS


def load_model(config: Any, device: torch.device):
    """The trained network (cached per file, modification time and device).

    Raises:
        ConfigError: the weights file is missing (names ``recon train kernel``).
    """
    path = weights_path(config)
    if not path.is_file():
        raise ConfigError("learned kernel weights not found", str(path),
                          "train them with `recon train kernel --config configs/train/kernel-train.yaml` "
                          "or set weights to an existing file")
    key = (str(path.resolve()), path.stat().st_mtime, str(device))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = LearnedKernelModel.load(path, device)
    return _CACHE[key]


def reconstruct_learned(config: Any, points: Any, normals: Any = None, sensor: Any = None, *,
                        progress: Progress = NULL_PROGRESS, device: str | None = None) -> LearnedKernelField:
    """Fit a learned-kernel field to points (normals optional), through the kernel front end
    (:mod:`recon.backends.kernel.frontend`) with the network's depth and resolution floor.

    Args:
        config: :class:`recon.backends.kernel.config.KernelConfig` with ``model == "learned"``.
        points: (N, 3) world positions (numpy or torch).
        normals: (N, 3) outward normals or None (then PCA + MST / sensor-oriented estimates feed the
            network, flagged as estimated; its normal head refines them).
        sensor: (3,) or (N, 3) scanner position(s) for orienting estimated normals.
        device: the caller's device, used when ``config.device`` is "auto".

    Returns:
        The :class:`LearnedKernelField` (world units, negative inside).

    Raises:
        ConfigError: chunked mode asked for, weights missing, or the memory guard.
        InputError: see :func:`recon.backends.kernel.frontend.prepare_points`.
    """
    if config.chunk_size is not None:
        raise ConfigError("the learned kernel does not support chunked mode yet", None,
                          "drop chunk_size or use model: none")
    dev = kernel_device(config.device, points, device)
    model = load_model(config, dev)
    res = model.spec.min_resolution if model.spec.min_resolution is not None else config.min_resolution
    prep = prepare_points(points, normals, sensor, dev, voxel_size=config.voxel_size, detail=config.detail,
                          min_resolution=res, progress=progress)
    h = prep.voxel_size
    check_memory(prep.points, h, model.spec.depth, config.max_voxels)
    progress.update("kernel: learned network + solve")
    with torch_threads(config.threads, dev):
        return solve_learned(model, prep.points / h, torch.from_numpy(prep.normals).to(dev), prep.normals_given,
                             voxel_size=h, offset=prep.offset, config=config)
