"""Inference entry point of the learned kernel: world points -> :class:`LearnedKernelField`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.backends.kernel.learned.field import DEFAULT_WEIGHTS, LearnedKernelField, solve_learned
from recon.errors import ConfigError, InputError
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
    from recon.backends.kernel.learned.model import LearnedKernelModel

    path = weights_path(config)
    if not path.is_file():
        raise ConfigError("learned kernel weights not found", str(path),
                          "train them with `recon train kernel --config configs/kernel-train.yaml` "
                          "or set weights to an existing file")
    key = (str(path.resolve()), path.stat().st_mtime, str(device))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = LearnedKernelModel.load(path, device)
    return _CACHE[key]


def reconstruct_learned(config: Any, points: Any, normals: Any = None, sensor: Any = None, *,
                        progress: Progress = NULL_PROGRESS) -> LearnedKernelField:
    """Fit a learned-kernel field to points (normals optional).

    Args:
        config: :class:`recon.backends.kernel.config.KernelConfig` with ``model == "learned"``.
        points: (N, 3) world positions (numpy or torch).
        normals: (N, 3) outward normals or None (then PCA + MST / sensor-oriented estimates feed the
            network, flagged as estimated; its normal head refines them).
        sensor: (3,) or (N, 3) scanner position(s) for orienting estimated normals.

    Returns:
        The :class:`LearnedKernelField` (world units, negative inside).
    """
    from recon.backends.kernel.reconstructor import checked_inputs, resolve_torch_device
    from recon.backends.kernel.scale import check_memory, voxel_size_from_detail
    from recon.device import torch_threads

    if config.chunk_size is not None:
        raise ConfigError("the learned kernel does not support chunked mode yet", None,
                          "drop chunk_size or use model: none")
    device = resolve_torch_device(config.device, points)
    model = load_model(config, device)
    p, n, has_normals = checked_inputs(points, normals, sensor, progress)
    lo, hi = p.min(0), p.max(0)
    offset = 0.5 * (lo + hi)
    pt = torch.from_numpy((p - offset).astype(np.float32)).to(device)
    res = model.spec.min_resolution if model.spec.min_resolution is not None else config.min_resolution
    h = config.voxel_size if config.voxel_size is not None else \
        voxel_size_from_detail(pt, config.detail, min_resolution=res)
    if not np.isfinite(h) or h <= 0 or float(np.max(hi - lo)) <= 0:
        raise InputError("all points coincide: nothing to reconstruct")
    check_memory(pt, h, model.spec.depth, config.max_voxels)
    progress.update("kernel: learned network + solve")
    with torch_threads(config.threads, device):
        return solve_learned(model, pt / h, torch.from_numpy(n).to(device), has_normals, voxel_size=h,
                             offset=offset, config=config)
