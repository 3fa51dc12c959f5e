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
from typing import Any

import numpy as np
import torch

from recon.backends.posed import PosedBackend
from recon.backends.run_budget import seconds_per_point
from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.volsdf.trainer import VolSDFTrainer
from recon.types import Cameras

#: points timed for the meshing estimate
TIMED_POINTS = 16384
#: the fine meshing grid's share of the cube around the surface box (typical objects fill about half)
BOX_FILL = 0.5
#: marching cubes, component cleanup and vertex colours on top of the grid evaluations
MESHING_OVERHEAD = 1.3


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
        fine grid (``mesh_resolution`` along the box's longest side, the box filling BOX_FILL of its
        cube), times the measured cost per point, plus MESHING_OVERHEAD for marching cubes and colours."""
        field = trainer.field()
        gen = torch.Generator().manual_seed(0)
        pts = (torch.rand(TIMED_POINTS, 3, generator=gen) * 2 - 1).to(trainer.device)
        per_point = seconds_per_point(field.sdf_normalised, pts)
        evaluations = 64 ** 3 + BOX_FILL * self.config.mesh_resolution ** 3
        return MESHING_OVERHEAD * per_point * evaluations

    def make_trainer(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *, device: str,
                     to_world: np.ndarray | None, checkpoint_dir: str | os.PathLike | None, **extras: Any) -> VolSDFTrainer:
        return VolSDFTrainer(self.config, images, masks, cameras, device=device, to_world=to_world,
                             checkpoint_dir=checkpoint_dir)
