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

from recon.backends.posed import PosedBackend
from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.volsdf.trainer import VolSDFTrainer
from recon.types import Cameras


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

    def make_trainer(self, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *, device: str,
                     to_world: np.ndarray | None, checkpoint_dir: str | os.PathLike | None, **extras: Any) -> VolSDFTrainer:
        return VolSDFTrainer(self.config, images, masks, cameras, device=device, to_world=to_world,
                             checkpoint_dir=checkpoint_dir)
