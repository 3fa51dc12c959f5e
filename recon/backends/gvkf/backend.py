"""GVKFBackend: posed images -> trained Gaussians -> opacity field (the registry entry "gvkf").

Entry points mirror the VolSDF backend's: :meth:`GVKFBackend.fit_views` takes
:class:`~recon.types.Views` in world units (normalises them into the unit sphere, reads the images,
picks up COLMAP points3D next to the images when there are any); :meth:`GVKFBackend.fit_arrays`
takes arrays already in memory. Both return a :class:`~recon.backends.gvkf.field.GVKFField`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from recon.backends.gvkf.config import GVKFConfig
from recon.backends.gvkf.field import SURFACE_OPACITY
from recon.backends.gvkf.trainer import GVKFTrainer
from recon.backends.posed import PosedBackend
from recon.backends.run_budget import seconds_per_point
from recon.errors import EmptyResultError
from recon.io.cameras.normalize import find_sparse_points
from recon.ops.transforms import similarity_parts
from recon.progress import Progress
from recon.types import Cameras, Views

#: points timed for the meshing estimate
TIMED_POINTS = 2048
#: field evaluations per coarse cell holding opaque Gaussians (shell corners and one refinement)
EVALUATIONS_PER_CELL = 18.0
#: marching cubes, component cleanup and vertex colours on top of the field evaluations
MESHING_OVERHEAD = 1.3


class GVKFBackend(PosedBackend):
    """Trains GVKF (3D Gaussians + opacity-to-SDF) on posed images.

    Example:
        >>> field = GVKFBackend(GVKFConfig(time_budget=180)).fit_views(load_views("scan/"))  # doctest: +SKIP
        >>> mesh = field.extract_mesh()                                                   # doctest: +SKIP
    """

    name = "gvkf"
    config_class = GVKFConfig

    def meshing_seconds(self, trainer: GVKFTrainer) -> float:
        """Expected meshing time: the grid method samples a shell of cells around the opaque Gaussians,
        about EVALUATIONS_PER_CELL evaluations per occupied coarse cell (the shell's corners plus the once
        refined crossing cells), times the measured cost per point near the Gaussians, plus
        MESHING_OVERHEAD for marching cubes and colours. The tetra method is not estimated (0)."""
        if self.config.mesh_method != "grid":
            return 0.0
        g = trainer.gaussians
        with torch.no_grad():
            solid = g.opacities() >= SURFACE_OPACITY
            means = g.means.detach()[solid]
        if len(means) == 0:
            return 0.0
        m = means.cpu().numpy().astype(np.float64)
        lo, hi = np.quantile(m, 0.001, axis=0), np.quantile(m, 0.999, axis=0)
        h = max(float((hi - lo).max()), 1e-6) / max(self.config.mesh_resolution // 2, 4)
        cells = len(np.unique(np.floor((m - lo) / h).astype(np.int64), axis=0))
        gen = torch.Generator().manual_seed(0)
        pick = torch.randint(len(means), (TIMED_POINTS,), generator=gen).to(means.device)
        pts = means[pick] + h * (torch.rand(TIMED_POINTS, 3, generator=gen).to(means.device) - 0.5)
        per_point = seconds_per_point(trainer.field().sdf_normalised, pts)
        return MESHING_OVERHEAD * per_point * EVALUATIONS_PER_CELL * cells

    def fit_arrays(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *,
                   points3d: tuple[np.ndarray, np.ndarray] | None = None, **kwargs: Any) -> Any:
        """Train on in-memory arrays (see :meth:`PosedBackend.fit_arrays`).

        Args:
            points3d: optional sparse points in the normalised frame ((P, 3), (P, 3) RGB in [0, 1]).

        Raises:
            InputError: mismatched inputs, an unusable initialisation, an unreadable checkpoint.
            EmptyResultError: no Gaussian survived pruning.
        """
        extras = dict(kwargs.pop("extras", None) or {})
        if points3d is not None:
            extras["points3d"] = points3d
        return super().fit_arrays(images, masks, cameras, extras=extras, **kwargs)

    def make_trainer(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *, device: str,
                     to_world: np.ndarray | None, checkpoint_dir: str | os.PathLike | None,
                     points3d: tuple[np.ndarray, np.ndarray] | None = None) -> GVKFTrainer:
        return GVKFTrainer(self.config, images, masks, cameras, device=device, to_world=to_world,
                           points3d=points3d, checkpoint_dir=checkpoint_dir)

    def view_extras(self, views: Views, to_world: np.ndarray) -> dict[str, Any]:
        """COLMAP sparse points next to the images, in the normalised frame (when ``init`` may use them)."""
        pts = find_sparse_points(views) if self.config.init in ("auto", "points3d") else None
        if pts is None:
            return {}
        _, A, c = similarity_parts(to_world)
        return {"points3d": ((pts[0] - c) @ np.linalg.inv(A).T, pts[1])}

    def run_trainer(self, trainer: Any, progress: Progress, **train_kwargs: Any) -> None:
        try:
            trainer.train(progress=progress, **train_kwargs)
        except RuntimeError as e:
            if "no Gaussian survived" in str(e):
                raise EmptyResultError(str(e), None, "check the cameras, masks and background; "
                                       "or lower gvkf.prune_opacity") from e
            raise
