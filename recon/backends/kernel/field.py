"""KernelField: the solved hierarchical B-spline field (negative inside, world units)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from recon.backends.kernel.evaluate import evaluate_levels
from recon.backends.kernel.field_meshing import mesh_field
from recon.backends.kernel.hierarchy_field import HierarchyField, to_local_tensor
from recon.backends.kernel.scale import memory_reuse
from recon.backends.kernel.solver import SolverInfo
from recon.device import torch_threads
from recon.types import Mesh

FIELD_FORMAT = "recon.kernel-field.v1"


class KernelField(HierarchyField):
    """A solved field f(x) = h * sum_d sum_v alpha_v B_v(x / h), negative inside.

    Attributes: those of :class:`HierarchyField` (levels, alphas, voxel_size, offset, points,
    solver_info, meshing defaults, timings, threads).
    """

    FORMAT = FIELD_FORMAT
    DESCRIPTION = "kernel field"
    LOAD_FIX = "pass a file written by `recon reconstruct --save-field`"

    def evaluate_local(self, u: torch.Tensor, grad: bool = False):
        """Values in finest-voxel units at (K, 3) local finest-voxel positions (no batching)."""
        return evaluate_levels(u, self.levels, self.alphas, grad)

    def evaluate(self, xyz: Any, grad: bool = False, batch_size: int = 262144) -> Any:
        """Field values (world units) and optionally gradients at world positions.

        Args:
            xyz: (K, 3) world positions, numpy or torch (any device).
            grad: also return (K, 3) gradients (dimensionless).
            batch_size: points per evaluation batch.

        Returns:
            f (K,) or (f, g), numpy float64 for numpy input, torch float32 on the input's device otherwise.
        """
        u, was_np = to_local_tensor(xyz, self.offset, self.voxel_size, self.device)
        fs, gs = [], []
        with torch.no_grad():
            for i in range(0, len(u), batch_size):
                out = self.evaluate_local(u[i:i + batch_size], grad)
                if grad:
                    fs.append(out[0] * self.voxel_size)
                    gs.append(out[1])
                else:
                    fs.append(out * self.voxel_size)
        f = torch.cat(fs) if fs else torch.zeros(0, device=self.device)
        g = (torch.cat(gs) if gs else torch.zeros(0, 3, device=self.device)) if grad else None
        if was_np:
            f = f.cpu().numpy().astype(np.float64)
            g = g.cpu().numpy().astype(np.float64) if grad else None
        else:
            dev = xyz.device
            f = f.to(dev)
            g = g.to(dev) if grad else None
        return (f, g) if grad else f

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        """The solver outcome and each level's number (a saved field is what ``recon reconstruct
        --save-field`` writes and ``recon view`` re-meshes)."""
        arrays = {"solver": np.array(json.dumps(self.solver_info.as_dict() if self.solver_info is not None else {}))}
        for d, lv in enumerate(self.levels):
            arrays[f"level{d}_index"] = np.array(lv.level)
        return arrays

    @classmethod
    def _from_arrays(cls, z: Any, device: str | torch.device) -> "KernelField":
        index = [int(z[f"level{d}_index"]) for d in range(int(z["n_levels"]))]
        levels, alphas, frame = cls.common_arrays(z, device, index)
        info = json.loads(str(z["solver"]))
        return cls(levels, alphas, solver_info=SolverInfo(**info) if info else None, **frame)

    def extract_mesh(self, mise_iter: int | None = None, upsample: int | None = None, trim: bool = True,
                     level: float = 0.0, trim_distance: float | None = None) -> Mesh:
        """Mesh the zero level set over the finest voxels (world units).

        Args:
            mise_iter: MISE refinement iterations (default: the config's).
            upsample: subdivisions per finest voxel (default: the config's).
            trim: remove faces farther than ``trim_distance`` finest voxels from the input.
            level: iso-value (world units).
            trim_distance: override of the trim distance (finest voxels).
        """
        with torch_threads(self.threads, self.device), memory_reuse(self.levels):
            return mesh_field(self, self.cells(), mise_iter=self.mise_iter if mise_iter is None else mise_iter,
                              upsample=self.upsample if upsample is None else upsample, trim=trim, level=level,
                              trim_distance=self.trim_distance if trim_distance is None else trim_distance)
