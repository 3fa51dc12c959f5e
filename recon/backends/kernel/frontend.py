"""The kernel front end: the steps every kernel reconstruction takes before its solve.

The plain and chunked paths (:mod:`recon.backends.kernel.reconstructor`,
:mod:`recon.backends.kernel.chunked`), the learned path
(:func:`recon.backends.kernel.learned.infer.reconstruct_learned`) and the batch tiles
(:mod:`recon.tiling.job`) all go through here:

1. the device (:func:`kernel_device`, rules in :mod:`recon.device`);
2. checked inputs: shapes, finite values, normals estimated when missing (:func:`checked_inputs`);
3. the local frame: origin at the centre of the points' bounding box;
4. the finest voxel size: given, or the detail rule (:func:`recon.backends.kernel.scale.voxel_size_for_area`,
   which the batch plan feeds with a streamed area estimate), then the coincident-point check;
5. the memory guard right before each solve (:func:`fit_checked`, :func:`recon.backends.kernel.scale.check_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.field import KernelField
from recon.backends.kernel.fit import fit_field
from recon.backends.kernel.scale import check_memory, voxel_size_from_detail
from recon.device import resolve_torch_device
from recon.errors import InputError
from recon.normals import choose_orientation, estimate_normals
from recon.progress import NULL_PROGRESS, Progress


@dataclass
class PreparedPoints:
    """Checked points in the local frame with the voxel size chosen for them.

    Attributes:
        local: (N, 3) float64 positions in the local frame, world units.
        points: (N, 3) float32 the same on the compute device.
        normals: (N, 3) float32 unit outward normals (given or estimated).
        normals_given: whether the caller gave the normals.
        offset: (3,) float64 world position of the local origin (the bounding-box centre).
        voxel_size: finest voxel edge h, world units.
    """

    local: np.ndarray
    points: torch.Tensor
    normals: np.ndarray
    normals_given: bool
    offset: np.ndarray
    voxel_size: float


def kernel_device(config_device: str, points: Any, device: str | None = None) -> torch.device:
    """The compute device: the config's, or for "auto" the caller's ``device`` (e.g. the pipeline's
    ``--device``), else the points' CUDA device, else CUDA when available (see :mod:`recon.device`)."""
    return resolve_torch_device(config_device, points if device in (None, "auto") else device)


def _as_numpy(a: Any, dtype) -> np.ndarray | None:
    if a is None:
        return None
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def checked_inputs(points: Any, normals: Any, sensor: Any, progress: Progress = NULL_PROGRESS
                   ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate the inputs of a kernel reconstruction and fill in missing normals.

    Args:
        points: (N, 3) positions (numpy or torch). normals: optional (N, 3). sensor: optional (3,) or
            (N, 3) scanner positions (used to orient estimated normals).

    Returns:
        (M, 3) float64 points, (M, 3) float32 unit normals (rows with a zero or non-finite normal
        dropped) and whether the normals were given.

    Raises:
        InputError: wrong shapes, fewer than 10 points (or valid normals), non-finite values.
    """
    p = _as_numpy(points, np.float64)
    if p is None or p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"points must be an (N, 3) array, got shape {getattr(p, 'shape', None)}")
    if len(p) < 10:
        raise InputError(f"need at least 10 points, got {len(p)}")
    if not np.isfinite(p).all():
        raise InputError("points contain NaN or infinite values", None, "drop those points first")
    n = _as_numpy(normals, np.float32)
    given = n is not None
    if n is None:
        progress.update("kernel: normals")
        s = _as_numpy(sensor, np.float64)
        n = estimate_normals(p, orient=choose_orientation("auto", s is not None), sensor=s)
    if n.shape != p.shape:
        raise InputError(f"normals shape {n.shape} does not match points {p.shape}")
    length = np.linalg.norm(n, axis=1)
    good = np.isfinite(length) & (length > 1e-8)
    if good.sum() < 10:
        raise InputError("fewer than 10 points have a valid normal", None, "check the normals")
    return p[good], (n[good] / length[good, None]).astype(np.float32), given


def check_spread(voxel_size: float, extent: float) -> None:
    """Refuse input without extent (all points coincide) or without a usable voxel size.

    Args:
        voxel_size: the chosen finest voxel edge h, world units.
        extent: the largest side of the points' bounding box, world units.

    Raises:
        InputError: h is not a positive finite number or the extent is zero.
    """
    if not np.isfinite(voxel_size) or voxel_size <= 0 or extent <= 0:
        raise InputError("all points coincide: nothing to reconstruct", None, "check the input")


def prepare_points(points: Any, normals: Any, sensor: Any, device: torch.device, *, voxel_size: float | None,
                   detail: float, min_resolution: float | None, progress: Progress = NULL_PROGRESS
                   ) -> PreparedPoints:
    """Steps 2-4 of the front end: checked inputs, local frame, voxel size.

    Args:
        points: (N, 3) world positions (numpy or torch). normals: (N, 3) or None. sensor: (3,) or
            (N, 3) scanner position(s) or None (orients estimated normals).
        device: where the float32 points go.
        voxel_size: the finest voxel edge h (world units), or None for the detail rule.
        detail, min_resolution: the detail rule's options (see :class:`KernelConfig`).

    Raises:
        InputError: see :func:`checked_inputs` and :func:`check_spread`.
    """
    p, n, given = checked_inputs(points, normals, sensor, progress)
    lo, hi = p.min(0), p.max(0)
    offset = 0.5 * (lo + hi)
    local = p - offset
    pt = torch.from_numpy(local.astype(np.float32)).to(device)
    h = voxel_size if voxel_size is not None else voxel_size_from_detail(pt, detail, min_resolution=min_resolution)
    check_spread(h, float(np.max(hi - lo)))
    return PreparedPoints(local, pt, n, given, offset, h)


def fit_checked(points: torch.Tensor, normals: np.ndarray, voxel_size: float, config: KernelConfig, *,
                offset: np.ndarray, progress: Progress = NULL_PROGRESS) -> KernelField:
    """The memory guard, then one training-free solve (plain path, each chunk, each batch tile).

    Args:
        points: (N, 3) float32 positions in the field's local frame (world units), on the compute device.
        normals: (N, 3) float32 unit normals (numpy).
        voxel_size: finest voxel edge h, world units.
        config: the options (``depth`` and ``max_voxels`` size the guard).
        offset: (3,) float64 world position of the local origin.

    Raises:
        ConfigError: the hierarchy would exceed ``max_voxels`` (the message suggests a voxel size).
    """
    check_memory(points, voxel_size, config.depth, config.max_voxels)
    nt = torch.from_numpy(np.ascontiguousarray(normals, dtype=np.float32)).to(points.device)
    return fit_field(points, nt, voxel_size, config, offset=offset, progress=progress)
