"""VolSDFBackend: posed images -> trained SDF field (the registry entry "volsdf").

The entry points come from :class:`~recon.backends.posed.PosedBackend`:

* :meth:`~recon.backends.posed.PosedBackend.fit_views` takes :class:`~recon.types.Views` in world
  units (as the camera loaders return them), normalises them into the unit sphere, reads the images
  and trains;
* :meth:`~recon.backends.posed.PosedBackend.fit_arrays` takes arrays already in memory (images,
  optional masks, cameras normalised into the unit sphere, and the normalised -> world transform).

Both return a :class:`~recon.backends.volsdf.field.VolSDFField` in world units; call its
``extract_mesh()`` for the mesh.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch

from recon.backends.posed import PosedBackend
from recon.backends.run_budget import seconds_per_point
from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.volsdf.trainer import VolSDFTrainer
from recon.progress import Progress
from recon.types import Cameras

#: points timed for the meshing estimate
TIMED_POINTS = 16384
#: the fine meshing grid's share of the cube around the surface box (typical objects fill about half)
BOX_FILL = 0.5
#: marching cubes and component cleanup on top of the grid evaluations
MESHING_OVERHEAD = 1.3
#: mesh vertices per squared resolution (bunny, spot, armadillo at 256: 2.2-2.6)
VERTICES_PER_RES2 = 2.6
#: SDF-evaluation equivalents per vertex colour (13 colour-network directions and one SDF gradient)
COLOUR_EVALUATIONS = 16
#: with a whole-run budget, meshing may take this share of it (the resolution is lowered to fit)
MESHING_SHARE = 0.2
#: the lowest resolution a budget lowers the mesh to
MIN_BUDGET_RESOLUTION = 96


class VolSDFBackend(PosedBackend):
    """Trains VolSDF on posed images.

    Args:
        config: options (defaults: :class:`VolSDFConfig` ()).

    Example:
        >>> field = VolSDFBackend(VolSDFConfig(time_budget=600)).fit_views(load_views("scan/"))  # doctest: +SKIP
        >>> mesh = field.extract_mesh(resolution=256)                                           # doctest: +SKIP
    """

    name = "volsdf"
    config_class = VolSDFConfig

    def meshing_seconds(self, trainer: VolSDFTrainer) -> float:
        """Expected meshing time: one SDF evaluation per point of the 64^3 box-finding pass and of the
        fine grid (the trainer's ``mesh_resolution`` along the box's longest side, the box filling
        BOX_FILL of its cube) and COLOUR_EVALUATIONS per vertex colour (about VERTICES_PER_RES2 * res^2
        vertices), times the measured cost per point and MESHING_OVERHEAD for marching cubes.

        With a whole-run budget, the resolution is first lowered (never below MIN_BUDGET_RESOLUTION) until
        meshing fits MESHING_SHARE of the budget: a short run gets a coarser mesh of a better
        trained field rather than a fine mesh of an untrained one.
        """
        field = trainer.field()
        gen = torch.Generator().manual_seed(0)
        pts = (torch.rand(TIMED_POINTS, 3, generator=gen) * 2 - 1).to(trainer.device)
        per_point = MESHING_OVERHEAD * seconds_per_point(field.sdf_normalised, pts)

        def cost(res: int) -> float:
            vertices = VERTICES_PER_RES2 * res ** 2
            return per_point * (64 ** 3 + BOX_FILL * res ** 3 + COLOUR_EVALUATIONS * vertices)

        res = self.config.mesh_resolution
        if trainer.run_budget is not None:
            share = MESHING_SHARE * trainer.run_budget.seconds
            fits = [r for r in range(res, MIN_BUDGET_RESOLUTION - 1, -1) if cost(r) <= share]
            res = fits[0] if fits else min(res, MIN_BUDGET_RESOLUTION)
        trainer.mesh_resolution = res
        return cost(res)

    def run_trainer(self, trainer: VolSDFTrainer, progress: Progress, **train_kwargs: Any) -> None:
        trainer.train(progress=progress, **train_kwargs)
        if trainer.mesh_resolution < self.config.mesh_resolution:
            warnings.warn(f"volsdf meshes at resolution {trainer.mesh_resolution} instead of "
                          f"{self.config.mesh_resolution} to fit the time budget", RuntimeWarning, stacklevel=2)

    def make_trainer(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *, device: str,
                     to_world: np.ndarray | None, checkpoint_dir: str | os.PathLike | None, **extras: Any) -> VolSDFTrainer:
        return VolSDFTrainer(self.config, images, masks, cameras, device=device, to_world=to_world,
                             checkpoint_dir=checkpoint_dir)
