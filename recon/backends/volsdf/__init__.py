"""VolSDF backend: SDF volume rendering from posed images (Yariv et al., NeurIPS 2021).

Modules: config (options), encoding (frequency and multiresolution grid encodings), networks
(geometry network with geometric init, colour network), density (Laplace-CDF density), sampler
(error-bounded sampling), renderer (model + volume rendering in the unit sphere), trainer (training
loop, checkpoints), field (the trained SDF in world units), backend (entry points).

Python API::

    from recon.backends.volsdf import VolSDFBackend, VolSDFConfig
    field = VolSDFBackend(VolSDFConfig(time_budget=600)).fit_views(views)   # or .fit_arrays(...)
    mesh = field.extract_mesh(resolution=256)

torch is imported only when a submodule that needs it is used.
"""

from __future__ import annotations

from typing import Any

from recon.backends.volsdf.config import VolSDFConfig

__all__ = ["VolSDFBackend", "VolSDFConfig", "VolSDFField", "VolSDFTrainer"]


def __getattr__(name: str) -> Any:
    if name == "VolSDFBackend":
        from recon.backends.volsdf.backend import VolSDFBackend

        return VolSDFBackend
    if name == "VolSDFField":
        from recon.backends.volsdf.field import VolSDFField

        return VolSDFField
    if name == "VolSDFTrainer":
        from recon.backends.volsdf.trainer import VolSDFTrainer

        return VolSDFTrainer
    raise AttributeError(name)
