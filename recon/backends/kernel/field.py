"""KernelField: the solved hierarchical B-spline field (negative inside, world units)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.backends.kernel.evaluate import evaluate_levels
from recon.backends.kernel.solver import SolverInfo
from recon.backends.kernel.svh import VoxelLevel, unpack_keys
from recon.types import Mesh

FIELD_FORMAT = "recon.kernel-field.v1"


def to_local_tensor(xyz: Any, offset: np.ndarray, scale: float, device: torch.device) -> tuple[torch.Tensor, bool]:
    """World (N, 3) numpy/torch -> local finest-voxel units float32 tensor on ``device``; flag = was numpy."""
    if isinstance(xyz, torch.Tensor):
        x = xyz.to(device=device, dtype=torch.float64)
        off = torch.as_tensor(offset, dtype=torch.float64, device=device)
        return ((x - off) / scale).to(torch.float32).reshape(-1, 3), False
    x = (np.asarray(xyz, dtype=np.float64).reshape(-1, 3) - offset) / scale
    return torch.from_numpy(x.astype(np.float32)).to(device), True


class KernelField:
    """A solved field f(x) = h * sum_d sum_v alpha_v B_v(x / h), negative inside.

    Attributes:
        levels: the sparse voxel hierarchy (finest-voxel units, local frame).
        alphas: per level (V_d,) float32 coefficients (finest-voxel units).
        voxel_size: finest voxel edge h, world units.
        offset: (3,) float64 world position of the local origin.
        points: (N, 3) float32 input points in the local frame (world units), for trimming.
        solver_info: outcome of the linear solve.
        mise_iter, upsample, trim_distance: meshing defaults (trim distance in finest voxels).
        threads: torch CPU threads used while meshing (see ``KernelConfig.threads``).
    """

    def __init__(self, levels: list[VoxelLevel], alphas: list[torch.Tensor], voxel_size: float, offset: np.ndarray,
                 points: np.ndarray, solver_info: SolverInfo, *, mise_iter: int = 0, upsample: int = 1,
                 trim_distance: float = 2.0, timings: dict[str, float] | None = None, threads: int | None = 1):
        self.levels = levels
        self.alphas = alphas
        self.voxel_size = float(voxel_size)
        self.offset = np.asarray(offset, dtype=np.float64).reshape(3)
        self.points = points
        self.solver_info = solver_info
        self.mise_iter = mise_iter
        self.upsample = upsample
        self.trim_distance = trim_distance
        self.timings = dict(timings or {})
        self.threads = threads

    @property
    def device(self) -> torch.device:
        return self.alphas[0].device

    def to(self, device: str | torch.device) -> "KernelField":
        """Move the field to another torch device (in place); returns self."""
        self.levels = [lv.to(device) for lv in self.levels]
        self.alphas = [a.to(device) for a in self.alphas]
        return self

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

    def cells(self) -> np.ndarray:
        """(M, 3) int64 finest voxel coordinates (cube coords of the meshing cells, local frame)."""
        return self.levels[0].coords.cpu().numpy()

    def bounds(self) -> np.ndarray:
        """(2, 3) float64 world box of the finest voxels (where the mesh can lie)."""
        c = self.cells()
        if len(c) == 0:
            return np.stack([self.offset, self.offset])
        return np.stack([c.min(0) * self.voxel_size, (c.max(0) + 1) * self.voxel_size]) + self.offset

    def save(self, path: str | Path, include_points: bool = True) -> Path:
        """Write the field to ``path`` (.npz, atomically): levels, coefficients, frame, points, meshing defaults.

        A saved field is what ``recon reconstruct --save-field`` writes and ``recon view`` re-meshes;
        :meth:`load` restores it exactly (float32 coefficients, float64 offset). Without
        ``include_points`` the input points (used for trimming) are left out (batch tiles keep
        their points in their shards).
        """
        from recon.io.atomic import atomic_write

        arrays: dict[str, np.ndarray] = {
            "format": np.array(FIELD_FORMAT),
            "voxel_size": np.array(self.voxel_size, np.float64),
            "offset": self.offset,
            "points": np.asarray(self.points if include_points else np.zeros((0, 3)), np.float32),
            "meshing": np.array([self.mise_iter, self.upsample, self.trim_distance], np.float64),
            "n_levels": np.array(len(self.levels)),
            "solver": np.array(json.dumps(self.solver_info.as_dict() if self.solver_info is not None else {})),
        }
        for d, (lv, a) in enumerate(zip(self.levels, self.alphas)):
            arrays[f"level{d}_keys"] = lv.keys.cpu().numpy()
            arrays[f"level{d}_alpha"] = a.detach().cpu().numpy().astype(np.float32)
            arrays[f"level{d}_index"] = np.array(lv.level)
        path = Path(path)
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "KernelField":
        """Read a field written by :meth:`save`; a file that is not one raises a one-line InputError."""
        from recon.errors import InputError

        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z.files or str(z["format"]) != FIELD_FORMAT:
                    raise InputError("not a saved kernel field", str(path),
                                     "pass a file written by `recon reconstruct --save-field`")
                levels, alphas = [], []
                for d in range(int(z["n_levels"])):
                    keys = torch.from_numpy(z[f"level{d}_keys"]).to(device)
                    levels.append(VoxelLevel(keys, unpack_keys(keys), int(z[f"level{d}_index"])))
                    alphas.append(torch.from_numpy(z[f"level{d}_alpha"]).to(device))
                mise, up, trim = z["meshing"].tolist()
                info = json.loads(str(z["solver"]))
                solver = SolverInfo(**info) if info else None
                return cls(levels, alphas, float(z["voxel_size"]), z["offset"], z["points"], solver,
                           mise_iter=int(mise), upsample=int(up), trim_distance=float(trim))
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"cannot read the saved field ({type(e).__name__}: {e})", str(path),
                             "pass a file written by `recon reconstruct --save-field`") from None

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
        from recon.backends.kernel.meshing import mesh_field
        from recon.backends.kernel.scale import memory_reuse
        from recon.device import torch_threads

        with torch_threads(self.threads, self.device), memory_reuse(self.levels):
            return mesh_field(self, self.cells(), mise_iter=self.mise_iter if mise_iter is None else mise_iter,
                              upsample=self.upsample if upsample is None else upsample, trim=trim, level=level,
                              trim_distance=self.trim_distance if trim_distance is None else trim_distance)
