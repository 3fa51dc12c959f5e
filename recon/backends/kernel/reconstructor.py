"""KernelReconstructor: the Python API (points [+ normals | sensor] -> field)."""

from __future__ import annotations

from typing import Any

from recon.backends.kernel.chunked import FusedField, fit_chunked
from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.field import KernelField
from recon.backends.kernel.frontend import fit_checked, kernel_device, prepare_points
from recon.backends.kernel.learned.field import LearnedKernelField
from recon.backends.kernel.learned.infer import reconstruct_learned
from recon.progress import NULL_PROGRESS, Progress


class KernelReconstructor:
    """Training-free NKSR-style reconstruction (hierarchical quadratic B-splines + gradient fitting).

    Example::

        field = KernelReconstructor(KernelConfig()).reconstruct(points, normals)
        mesh = field.extract_mesh()
    """

    def __init__(self, config: KernelConfig | None = None):
        self.config = config or KernelConfig()

    def reconstruct(self, points: Any, normals: Any = None, sensor: Any = None, *,
                    progress: Progress = NULL_PROGRESS,
                    device: str | None = None) -> KernelField | FusedField | LearnedKernelField:
        """Fit a field to oriented points.

        Args:
            points: (N, 3) positions, world units, numpy or torch (any device).
            normals: (N, 3) outward normals; estimated (recon.normals) when None.
            sensor: (3,) or (N, 3) scanner position(s), used to orient estimated normals.
            progress: progress reporter.
            device: the caller's device ("cpu", "cuda", "auto" or None), used when the config's
                ``device`` is "auto" (see :func:`recon.backends.kernel.frontend.kernel_device`).

        Returns:
            A :class:`KernelField` (a :class:`FusedField` when ``chunk_size`` is set, a
            :class:`LearnedKernelField` with ``model: learned``), in world units.

        Raises:
            InputError: too few / non-finite points, wrong shapes, unusable normals.
            ConfigError: the voxel size would exceed the memory guard (the message suggests one).
        """
        cfg = self.config
        if cfg.model == "learned":
            return reconstruct_learned(cfg, points, normals, sensor, progress=progress, device=device)
        dev = kernel_device(cfg.device, points, device)
        prep = prepare_points(points, normals, sensor, dev, voxel_size=cfg.voxel_size, detail=cfg.detail,
                              min_resolution=cfg.min_resolution, progress=progress)
        if cfg.chunk_size is None:
            return fit_checked(prep.points, prep.normals, prep.voxel_size, cfg, offset=prep.offset, progress=progress)
        return fit_chunked(prep.local, prep.normals, prep.voxel_size, prep.offset, cfg, dev, progress)
