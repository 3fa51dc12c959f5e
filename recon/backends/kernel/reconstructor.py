"""KernelReconstructor: the Python API (points [+ normals | sensor] -> field)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recon.backends.kernel.chunked import FusedField, fit_chunked
from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.field import KernelField
from recon.backends.kernel.fit import fit_field
from recon.backends.kernel.scale import check_memory, voxel_size_from_detail
from recon.errors import InputError
from recon.progress import NULL_PROGRESS, Progress


def resolve_torch_device(name: str, hint: Any = None) -> torch.device:
    """"auto" -> the input tensor's CUDA device if any, else CUDA when available, else CPU."""
    if name == "auto":
        if isinstance(hint, torch.Tensor) and hint.device.type == "cuda":
            return hint.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from recon.device import resolve_device

    return torch.device(resolve_device(name))


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
        from recon.normals import estimate_normals

        s = _as_numpy(sensor, np.float64)
        n = estimate_normals(p, orient="sensor" if s is not None else "mst", sensor=s)
    if n.shape != p.shape:
        raise InputError(f"normals shape {n.shape} does not match points {p.shape}")
    length = np.linalg.norm(n, axis=1)
    good = np.isfinite(length) & (length > 1e-8)
    if good.sum() < 10:
        raise InputError("fewer than 10 points have a valid normal", None, "check the normals")
    return p[good], (n[good] / length[good, None]).astype(np.float32), given


class KernelReconstructor:
    """Training-free NKSR-style reconstruction (hierarchical quadratic B-splines + gradient fitting).

    Example::

        field = KernelReconstructor(KernelConfig()).reconstruct(points, normals)
        mesh = field.extract_mesh()
    """

    def __init__(self, config: KernelConfig | None = None):
        self.config = config or KernelConfig()

    def reconstruct(self, points: Any, normals: Any = None, sensor: Any = None, *,
                    progress: Progress = NULL_PROGRESS) -> KernelField | FusedField:
        """Fit a field to oriented points.

        Args:
            points: (N, 3) positions, world units, numpy or torch (any device).
            normals: (N, 3) outward normals; estimated (recon.normals) when None.
            sensor: (3,) or (N, 3) scanner position(s), used to orient estimated normals.
            progress: progress reporter.

        Returns:
            A :class:`KernelField` (or a :class:`FusedField` when ``chunk_size`` is set), in world units.

        Raises:
            InputError: too few / non-finite points, wrong shapes, unusable normals.
            ConfigError: the voxel size would exceed the memory guard (the message suggests one).
        """
        cfg = self.config
        if cfg.model == "learned":
            return self._reconstruct_learned(points, normals, sensor, progress)
        device = resolve_torch_device(cfg.device, points)
        p, n, _ = checked_inputs(points, normals, sensor, progress)
        lo, hi = p.min(0), p.max(0)
        offset = 0.5 * (lo + hi)
        local = p - offset
        pt = torch.from_numpy(local.astype(np.float32)).to(device)
        h = cfg.voxel_size if cfg.voxel_size is not None else voxel_size_from_detail(pt, cfg.detail, min_resolution=cfg.min_resolution)
        if not np.isfinite(h) or h <= 0 or float(np.max(hi - lo)) <= 0:
            raise InputError("all points coincide: nothing to reconstruct")
        mesh_kw = dict(mise_iter=cfg.mise_iter, upsample=cfg.upsample, trim_distance=cfg.trim_distance)
        if cfg.chunk_size is None:
            check_memory(pt, h, cfg.depth, cfg.max_voxels)
            return fit_field(pt, torch.from_numpy(n).to(device), h, cfg, offset=offset, progress=progress)

        def fit_one(tp: np.ndarray, tn: np.ndarray, toff: np.ndarray) -> KernelField:
            t = torch.from_numpy(tp.astype(np.float32)).to(device)
            check_memory(t, h, cfg.depth, cfg.max_voxels)
            return fit_field(t, torch.from_numpy(tn).to(device), h, cfg, offset=toff, progress=progress)

        return fit_chunked(local, n, h, cfg.chunk_size, cfg.overlap, cfg.depth, offset, fit_one, mesh_kw)

    def _reconstruct_learned(self, points: Any, normals: Any, sensor: Any, progress: Progress):
        """The learned-kernel path (``model: learned``): see :mod:`recon.backends.kernel.learned.field`."""
        from recon.backends.kernel.learned.infer import reconstruct_learned

        return reconstruct_learned(self.config, points, normals, sensor, progress=progress)
