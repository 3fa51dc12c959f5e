"""LearnedKernelField: the solved learned-kernel field with KernelField's interface, and the
network + solve step that makes one.

:func:`solve_learned` runs the network on local points (normals given, or PCA + MST estimates
when not; the normal head refines them and its output feeds the gradient-fitting term),
solves the system and returns a :class:`LearnedKernelField`; the entry point from world points
is :func:`recon.backends.kernel.learned.infer.reconstruct_learned`. Values are negative inside,
in world units; gradients are dimensionless. Meshing trims with the predicted UDF: mesh
vertices whose predicted unsigned distance is at least ``trim_distance`` finest voxels are
deleted with their faces (NKSR section 1.6), instead of the KD-tree rule of the
training-free field.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.backends.kernel.field_meshing import mesh_field
from recon.backends.kernel.hierarchy_field import HierarchyField, to_local_tensor
from recon.backends.kernel.learned.kernel import evaluate_field
from recon.backends.kernel.learned.model import TRAINED_REG_WEIGHT, TRAINED_SOLVER_TOL, LearnedKernelModel, ModelSpec
from recon.backends.kernel.solver import SolverInfo
from recon.backends.kernel.svh import VoxelLevel, unique_coords
from recon.device import torch_threads
from recon.meshing.cleanup import _subset
from recon.types import Mesh

FIELD_FORMAT = "recon.learned-kernel-field.v1"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "learned_kernel.pt"


class LearnedKernelField(HierarchyField):
    """f(x) = h * sum_d sum_v alpha_v B_v(x/h) <psi_d(x/h), F_v>, negative inside (world units).

    Attributes (beyond those of :class:`HierarchyField`):
        model: the network (its psi MLPs and UDF decoder are used at evaluation).
        feats, udf_feats: per level decoder kernel features (None where the level has none) and UDF features.
        trim: "udf" (predicted distance) or "distance" (KD-tree to the input, training-free rule).
    """

    FORMAT = FIELD_FORMAT
    DESCRIPTION = "learned-kernel field"
    LOAD_FIX = "pass a file written by LearnedKernelField.save"
    READ_ERRORS = (OSError, ValueError, KeyError, RuntimeError)  # RuntimeError: a state dict that does not fit

    def __init__(self, model: LearnedKernelModel, levels: list[VoxelLevel], alphas: list[torch.Tensor],
                 feats: list[torch.Tensor | None], udf_feats: list[torch.Tensor], voxel_size: float,
                 offset: np.ndarray, points: np.ndarray, solver_info: SolverInfo | None, *, mise_iter: int = 0,
                 upsample: int = 1, trim_distance: float = 2.0, trim: str = "udf",
                 timings: dict[str, float] | None = None, threads: int | None = 1):
        super().__init__(levels, alphas, voxel_size, offset, points, solver_info, mise_iter=mise_iter,
                         upsample=upsample, trim_distance=trim_distance, timings=timings, threads=threads)
        self.model = model
        self.feats = feats
        self.udf_feats = udf_feats
        self.trim = trim

    @property
    def psis(self) -> list:
        return [h.psi if self.model.spec.kernel_dim > 0 else None for h in self.model.heads]

    def to(self, device: str | torch.device) -> "LearnedKernelField":
        """Move to another torch device (in place); returns self."""
        super().to(device)
        self.model = self.model.to(device)
        self.feats = [None if f is None else f.to(device) for f in self.feats]
        self.udf_feats = [f.to(device) for f in self.udf_feats]
        return self

    def evaluate_local(self, u: torch.Tensor, grad: bool = False):
        """Values in finest-voxel units at (K, 3) local finest-voxel positions."""
        return evaluate_field(u, self.levels, self.alphas, self.feats, self.psis, grad)

    def _batched(self, xyz: Any, fn, batch_size: int):
        u, was_np = to_local_tensor(xyz, self.offset, self.voxel_size, self.device)
        outs = []
        with torch.no_grad():
            for i in range(0, len(u), batch_size):
                outs.append(fn(u[i:i + batch_size]))
        return outs, was_np

    def evaluate(self, xyz: Any, grad: bool = False, batch_size: int = 65536) -> Any:
        """Field values (world units) and optionally (K, 3) gradients at (K, 3) world positions.

        Returns numpy float64 for numpy input, torch float32 on the input's device otherwise.
        """
        outs, was_np = self._batched(xyz, lambda q: self.evaluate_local(q, grad), batch_size)
        if grad:
            f = torch.cat([o[0] for o in outs]) if outs else torch.zeros(0, device=self.device)
            g = torch.cat([o[1] for o in outs]) if outs else torch.zeros(0, 3, device=self.device)
        else:
            f = torch.cat(outs) if outs else torch.zeros(0, device=self.device)
            g = None
        f = f * self.voxel_size
        if was_np:
            f = f.cpu().numpy().astype(np.float64)
            g = g.cpu().numpy().astype(np.float64) if grad else None
        else:
            f = f.to(xyz.device)
            g = g.to(xyz.device) if grad else None
        return (f, g) if grad else f

    def udf(self, xyz: Any, batch_size: int = 65536) -> np.ndarray:
        """(K,) predicted unsigned distance to the surface (world units) at world positions."""
        outs, _ = self._batched(xyz, lambda q: self.model.udf(q, self.levels, self.udf_feats), batch_size)
        u = torch.cat(outs) if outs else torch.zeros(0)
        return u.cpu().numpy().astype(np.float64) * self.voxel_size

    def extract_mesh(self, mise_iter: int | None = None, upsample: int | None = None, trim: bool = True,
                     level: float = 0.0, trim_distance: float | None = None) -> Mesh:
        """Mesh the zero level set over the finest voxels (world units), then trim.

        Trimming (``trim``): with ``self.trim == "udf"`` vertices whose predicted unsigned distance is
        at least ``trim_distance`` finest voxels are removed with their faces; with "distance" the
        KD-tree rule of the training-free field is used.
        """
        td = self.trim_distance if trim_distance is None else trim_distance
        with torch_threads(self.threads, self.device):
            mesh = mesh_field(self, self.cells(), mise_iter=self.mise_iter if mise_iter is None else mise_iter,
                              upsample=self.upsample if upsample is None else upsample,
                              trim=trim and self.trim != "udf", level=level, trim_distance=td)
            if trim and self.trim == "udf" and mesh.n_faces:
                near = self.udf(mesh.vertices) < td * self.voxel_size
                mesh = _subset(mesh, mesh.faces[near[mesh.faces].all(axis=1)])
        return mesh

    # ----------------------------------------------------------------------------- persistence

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        """The trimming rule, the network (spec and weights), and each level's UDF and kernel features."""
        arrays: dict[str, np.ndarray] = {"trim": np.array(self.trim),
                                         "spec": np.array(json.dumps(dataclasses.asdict(self.model.spec)))}
        for k, v in self.model.state_dict().items():
            arrays[f"model/{k}"] = v.detach().cpu().numpy()
        for d in range(len(self.levels)):
            arrays[f"level{d}_udf"] = self.udf_feats[d].detach().cpu().numpy()
            if self.feats[d] is not None:
                arrays[f"level{d}_feat"] = self.feats[d].detach().cpu().numpy()
        return arrays

    @classmethod
    def _from_arrays(cls, z: Any, device: str | torch.device) -> "LearnedKernelField":
        model = LearnedKernelModel(ModelSpec(**json.loads(str(z["spec"]))))
        model.load_state_dict({k[6:]: torch.from_numpy(z[k]) for k in z.files if k.startswith("model/")})
        model = model.to(device).eval()
        levels, alphas, frame = cls.common_arrays(z, device)
        udfs = [torch.from_numpy(z[f"level{d}_udf"]).to(device) for d in range(len(levels))]
        feats = [torch.from_numpy(z[f"level{d}_feat"]).to(device) if f"level{d}_feat" in z.files else None
                 for d in range(len(levels))]
        return cls(model, levels, alphas, feats, udfs, solver_info=None, trim=str(z["trim"]), **frame)


def merge_points(u: torch.Tensor, cell: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge points per cube of edge ``cell`` (finest-voxel units): (K, 3) mean positions and (K,) counts."""
    keys, inv = unique_coords(torch.floor(u / cell).to(torch.int64), return_inverse=True)
    cnt = torch.zeros(len(keys), dtype=u.dtype, device=u.device).index_add_(0, inv, torch.ones_like(u[:, 0]))
    mean = torch.zeros(len(keys), 3, dtype=u.dtype, device=u.device).index_add_(0, inv, u) / cnt[:, None]
    return mean, cnt


def solve_learned(model: LearnedKernelModel, u: torch.Tensor, normals: torch.Tensor, has_normals: bool, *,
                  voxel_size: float, offset: np.ndarray, config: Any, merge_above: int = 60_000) -> LearnedKernelField:
    """Network + solve on local points (finest-voxel units) -> :class:`LearnedKernelField`.

    Args:
        model: the trained network (eval mode, on u's device).
        u: (N, 3) float32 points in finest-voxel units (local frame); normals: (N, 3) unit normals.
        has_normals: whether the normals were given (False: estimated).
        voxel_size: h (world units); offset: (3,) world origin of the local frame.
        config: a :class:`recon.backends.kernel.config.KernelConfig` (weights, solver, meshing options).
        merge_above: with more points, the position term uses half-voxel cell means weighted by counts.
    """
    times: dict[str, float] = {}
    t = time.perf_counter()
    with torch.no_grad():
        pred = model.predict(u, normals, has_normals, keep_input=True)
        times["network"] = time.perf_counter() - t
        t = time.perf_counter()
        up, mult = (merge_points(u) if len(u) > merge_above else (u, None))
        alphas, info = model.solve(pred, up, pos_weight=config.pos_weight, normal_weight=config.normal_weight,
                                   reg_weight=TRAINED_REG_WEIGHT, tol=min(config.solver_tol, TRAINED_SOLVER_TOL),
                                   max_iter=config.solver_max_iter, multiplicity=mult)
        times["solve"] = time.perf_counter() - t
    res = info["forward"]
    si = SolverInfo(res.iterations, res.residual, res.converged, times["solve"], int(sum(len(a) for a in alphas)),
                    "multilevel (training-free system)" if u.device.type == "cpu" else "jacobi")
    return LearnedKernelField(model, pred.levels, [a.detach() for a in alphas],
                              [None if f is None else f.detach() for f in pred.feats],
                              [f.detach() for f in pred.udf_feats], voxel_size, offset,
                              (u * voxel_size).cpu().numpy(), si, mise_iter=config.mise_iter,
                              upsample=config.upsample, trim_distance=config.trim_distance, timings=times,
                              threads=config.threads)
