"""GVKF backend: 3D Gaussians rasterised differentiably, turned into an implicit surface by
kernel regression of their opacity (Song et al., NeurIPS 2024; docs/gvkf_volsdf.md section 2).

Modules: gaussians (parameters, save/load), projection + tiles + rasterizer (pure-PyTorch tile
rasteriser with the 3D ray-Gaussian alpha; raster_reference is its brute-force check), init
(points3D / visual hull / random), losses, densify (clone / split / prune), trainer (training
loop, checkpoints), surface (opacity -> signed distance over training views), tetra (marching
tetrahedra on a Delaunay of points around the Gaussians), field (the surface in world units),
backend (entry points).

Python API::

    from recon.backends.gvkf import GVKFBackend, GVKFConfig
    field = GVKFBackend(GVKFConfig(time_budget=180)).fit_views(views)   # or .fit_arrays(...)
    mesh = field.extract_mesh()

torch is imported only when a submodule that needs it is used.
"""

from __future__ import annotations

from typing import Any

from recon.backends.gvkf.config import GVKFConfig

__all__ = ["GVKFBackend", "GVKFConfig", "GVKFField", "GVKFTrainer", "GaussianSet"]

_LAZY = {
    "GVKFBackend": "recon.backends.gvkf.backend",
    "GVKFField": "recon.backends.gvkf.field",
    "GVKFTrainer": "recon.backends.gvkf.trainer",
    "GaussianSet": "recon.backends.gvkf.gaussians",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
