"""HierarchyField: what the kernel fields share (frame, finest cells, bounds, moving, saving).

A kernel field lives on a sparse voxel hierarchy in a local frame: ``levels`` (finest first, in
finest-voxel units), per-level coefficients ``alphas``, the finest voxel edge ``voxel_size`` h and
the world position ``offset`` of the local origin. :class:`recon.backends.kernel.field.KernelField`
(training-free) and :class:`recon.backends.kernel.learned.field.LearnedKernelField` add their own
evaluation and the extra arrays they save.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from recon.backends.kernel.solver import SolverInfo
from recon.backends.kernel.svh import VoxelLevel, unpack_keys
from recon.errors import InputError
from recon.io.atomic import atomic_write


def to_local_tensor(xyz: Any, offset: np.ndarray, scale: float, device: torch.device) -> tuple[torch.Tensor, bool]:
    """World (N, 3) numpy/torch -> local finest-voxel units float32 tensor on ``device``; flag = was numpy."""
    if isinstance(xyz, torch.Tensor):
        x = xyz.to(device=device, dtype=torch.float64)
        off = torch.as_tensor(offset, dtype=torch.float64, device=device)
        return ((x - off) / scale).to(torch.float32).reshape(-1, 3), False
    x = (np.asarray(xyz, dtype=np.float64).reshape(-1, 3) - offset) / scale
    return torch.from_numpy(x.astype(np.float32)).to(device), True


class HierarchyField:
    """Base of the kernel fields: the hierarchy, the frame and the saved-file layout they share.

    Attributes:
        levels: the sparse voxel hierarchy (finest-voxel units, local frame), finest first.
        alphas: per level (V_d,) float32 coefficients (finest-voxel units).
        voxel_size: finest voxel edge h, world units.
        offset: (3,) float64 world position of the local origin.
        points: (N, 3) float32 input points in the local frame (world units), for trimming.
        solver_info: outcome of the linear solve (None when unknown, e.g. after loading some files).
        mise_iter, upsample, trim_distance: meshing defaults (trim distance in finest voxels).
        timings: seconds per stage of the fit.
        threads: torch CPU threads used while meshing (see ``KernelConfig.threads``).

    A subclass sets :attr:`FORMAT` (the ``format`` entry of its .npz), :attr:`DESCRIPTION` and
    :attr:`LOAD_FIX` (for the error of a wrong file), and implements :meth:`_extra_arrays` and
    :meth:`_from_arrays`.
    """

    FORMAT: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    LOAD_FIX: ClassVar[str]
    #: exceptions of a damaged or foreign file, reported as one InputError line
    READ_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (OSError, ValueError, KeyError)

    def __init__(self, levels: list[VoxelLevel], alphas: list[torch.Tensor], voxel_size: float, offset: np.ndarray,
                 points: np.ndarray, solver_info: SolverInfo | None, *, mise_iter: int = 0, upsample: int = 1,
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

    def to(self, device: str | torch.device):
        """Move the hierarchy and coefficients to another torch device (in place); returns self."""
        self.levels = [lv.to(device) for lv in self.levels]
        self.alphas = [a.to(device) for a in self.alphas]
        return self

    def cells(self) -> np.ndarray:
        """(M, 3) int64 finest voxel coordinates (cube coords of the meshing cells, local frame)."""
        return self.levels[0].coords.cpu().numpy()

    def bounds(self) -> np.ndarray:
        """(2, 3) float64 world box of the finest voxels (where the mesh can lie)."""
        c = self.cells()
        if len(c) == 0:
            return np.stack([self.offset, self.offset])
        return np.stack([c.min(0) * self.voxel_size, (c.max(0) + 1) * self.voxel_size]) + self.offset

    # ----------------------------------------------------------------------------- persistence

    def save(self, path: str | Path, include_points: bool = True) -> Path:
        """Write the field to ``path`` (.npz, atomically): levels, coefficients, frame, points, meshing
        defaults and the subclass's arrays (:meth:`_extra_arrays`).

        Without ``include_points`` the input points (used for trimming) are left out (batch tiles keep
        their points in their shards). :meth:`load` restores the field exactly.
        """
        arrays: dict[str, np.ndarray] = {
            "format": np.array(self.FORMAT),
            "voxel_size": np.array(self.voxel_size, np.float64),
            "offset": self.offset,
            "points": np.asarray(self.points if include_points else np.zeros((0, 3)), np.float32),
            "meshing": np.array([self.mise_iter, self.upsample, self.trim_distance], np.float64),
            "n_levels": np.array(len(self.levels)),
        }
        for d, (lv, a) in enumerate(zip(self.levels, self.alphas)):
            arrays[f"level{d}_keys"] = lv.keys.cpu().numpy()
            arrays[f"level{d}_alpha"] = a.detach().cpu().numpy().astype(np.float32)
        arrays.update(self._extra_arrays())
        path = Path(path)
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu"):
        """Read a field written by :meth:`save`; a file that is not one raises a one-line InputError."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z.files or str(z["format"]) != cls.FORMAT:
                    raise InputError(f"not a saved {cls.DESCRIPTION}", str(path), cls.LOAD_FIX)
                return cls._from_arrays(z, device)
        except cls.READ_ERRORS as e:
            raise InputError(f"cannot read the saved field ({type(e).__name__}: {e})", str(path),
                             cls.LOAD_FIX) from None

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        """The subclass's arrays beyond the common ones (names must not collide with them)."""
        raise NotImplementedError

    @classmethod
    def _from_arrays(cls, z: Any, device: str | torch.device):
        """A field from an open .npz (format already checked); see :meth:`common_arrays`."""
        raise NotImplementedError

    @staticmethod
    def common_arrays(z: Any, device: str | torch.device, level_index: list[int] | None = None
                      ) -> tuple[list[VoxelLevel], list[torch.Tensor], dict[str, Any]]:
        """The shared part of a saved field: levels, coefficients and constructor keywords.

        Args:
            z: the open .npz. device: where the tensors go.
            level_index: the level number of each stored level (None: 0, 1, ...).

        Returns:
            levels, alphas and {voxel_size, offset, points, mise_iter, upsample, trim_distance}.
        """
        levels, alphas = [], []
        for d in range(int(z["n_levels"])):
            keys = torch.from_numpy(z[f"level{d}_keys"]).to(device)
            levels.append(VoxelLevel(keys, unpack_keys(keys), d if level_index is None else level_index[d]))
            alphas.append(torch.from_numpy(z[f"level{d}_alpha"]).to(device))
        mise, up, trim = z["meshing"].tolist()
        frame = dict(voxel_size=float(z["voxel_size"]), offset=z["offset"], points=z["points"], mise_iter=int(mise),
                     upsample=int(up), trim_distance=float(trim))
        return levels, alphas, frame
