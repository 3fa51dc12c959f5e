"""The learned kernel network (encoder + sparse U-Net + heads), its forward pass, the solve, save/load.

``predict`` maps points (finest-voxel units) to a :class:`Prediction`: the decoder voxel
grids, per-level kernel features, the normal constraints (predicted normals at the voxel
centres of levels < adaptive_depth), UDF features and structure logits. ``solve`` assembles
the gradient-fitting system with the learned kernel and solves it (differentiably in
training). Weights are saved with a format tag and a free-form ``meta`` record (command,
config, data, steps, timings, losses).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from recon.backends.kernel.cell_matrices import NormalConstraints
from recon.backends.kernel.learned.assembly import build_system, constraint_centres
from recon.backends.kernel.learned.encoder import PointEncoder
from recon.backends.kernel.learned.grids import encoder_grids
from recon.backends.kernel.learned.heads import LevelHeads, UDFDecoder
from recon.backends.kernel.learned.implicit_solve import implicit_solve, training_free_preconditioner
from recon.backends.kernel.learned.kernel import evaluate_field
from recon.backends.kernel.learned.unet import DecoderLevel, SparseUNet
from recon.backends.kernel.splat import normal_confidence
from recon.backends.kernel.svh import CORNERS8, VoxelLevel
from recon.errors import InputError
from recon.io.torch_files import describe_error, load_tensors, to_plain

MODEL_FORMAT = "recon.learned-kernel.v1"
#: what to do about weights that cannot be used
WEIGHTS_FIX = "pass weights written by `recon train kernel`"
#: Kernel regulariser weight the committed network was trained with; inference uses the same
#: (KernelConfig.reg_weight is the training-free kernel's).
TRAINED_REG_WEIGHT = 1.0
#: CG tolerance the committed network was trained with; inference solves at least this tightly
#: (KernelConfig.solver_tol, 1e-3, is the training-free kernel's).
TRAINED_SOLVER_TOL = 1e-4


@dataclass
class ModelSpec:
    """Architecture of the learned kernel network (stored with the weights)."""

    depth: int = 4  # hierarchy levels (voxel size doubles per level)
    channels: tuple[int, ...] = (8, 16, 24, 32)  # U-Net channels per level, finest first (len = depth)
    encoder_hidden: int = 32  # point MLP width
    groups: int = 4  # GroupNorm groups
    kernel_dim: int = 4  # k of the kernel features (0 = training-free kernel)
    psi_hidden: int = 16  # hidden width of the interpolator MLPs psi_d
    adaptive_depth: int = 2  # normal constraints at the voxel centres of levels < adaptive_depth
    udf_dim: int = 8  # UDF feature channels per level
    normal_min_norm: float = 0.3  # drop normal constraints whose predicted vector is shorter
    normal_hidden: int = 0  # hidden width of the normal heads (0 = linear)
    # Voxel rule the network was trained with: at least this many finest voxels along sqrt(surface
    # area) (scale.voxel_size_from_detail). Inference uses it in place of KernelConfig.min_resolution
    # (unless voxel_size is set), so a sparse cloud gets the voxels the heads were trained on.
    # None: KernelConfig.min_resolution.
    min_resolution: float | None = None

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != self.depth:
            raise ValueError(f"channels needs {self.depth} entries, got {len(self.channels)}")


@dataclass
class Prediction:
    """Network output for one input cloud (finest-voxel units)."""

    levels: list[VoxelLevel]
    decoder: list[DecoderLevel]
    feats: list[torch.Tensor | None]
    psis: list
    centres: torch.Tensor  # (M, 3) normal-constraint positions
    normals: torch.Tensor  # (M, 3) unit target gradients
    udf_feats: list[torch.Tensor]
    constraint_index: list = field(default_factory=list)  # per level < adaptive_depth: (M_d,) voxel indices
    raw_normals: list = field(default_factory=list)  # per level < adaptive_depth: (V_d, 3) unnormalised head output
    normal_conf: torch.Tensor | None = None  # (M,) confidences of the targets (splatted input mass, capped at 1)


def splat_mean(u: torch.Tensor, normals: torch.Tensor, level: VoxelLevel, with_mass: bool = False):
    """(V, 3) trilinear-weighted mean of point normals on the level's voxel centres (0 where none).

    With ``with_mass`` also the (V,) splatted mass (sum of the points' trilinear weights).
    """
    s = float(2**level.level)
    g = u / s - 0.5
    lo = torch.floor(g)
    fr = g - lo
    corners = CORNERS8.to(u.device)
    wc = torch.where(corners[None].bool(), fr[:, None, :], 1 - fr[:, None, :]).prod(-1)
    idx = level.lookup_offsets(lo.to(torch.int64), corners)
    ok = idx >= 0
    nrm = normals[:, None, :].expand(-1, 8, -1)[ok]
    acc = u.new_zeros(len(level), 3).index_add_(0, idx[ok], nrm * wc[ok][:, None])
    ws = u.new_zeros(len(level)).index_add_(0, idx[ok], wc[ok])
    mean = acc / ws.clamp_min(1e-12)[:, None]
    return (mean, ws) if with_mass else mean


class LearnedKernelModel(nn.Module):
    """Point encoder + sparse U-Net + per-level heads + UDF decoder."""

    def __init__(self, spec: ModelSpec | None = None):
        super().__init__()
        self.spec = spec or ModelSpec()
        s = self.spec
        self.encoder = PointEncoder(s.encoder_hidden, s.channels[0])
        self.unet = SparseUNet(s.channels, s.channels[0], s.groups)
        self.heads = nn.ModuleList([LevelHeads(s.channels[d], s.kernel_dim, s.psi_hidden, d < s.adaptive_depth,
                                               s.udf_dim, s.normal_hidden) for d in range(s.depth)])
        self.udf = UDFDecoder(s.depth, s.udf_dim)
        self.meta: dict = {}

    def predict(self, u: torch.Tensor, normals: torch.Tensor, has_normals: bool,
                gt_grids: list[VoxelLevel] | None = None, keep_input: bool = True) -> Prediction:
        """Run the network on one cloud.

        Args:
            u: (N, 3) float32 points, finest-voxel units.
            normals: (N, 3) unit normals (given, or estimated when ``has_normals`` is False).
            has_normals: whether the normals were given with the input.
            gt_grids: ground-truth voxel grids (training: teacher-forced structure).
            keep_input: always keep the point-splat voxels.
        """
        s = self.spec
        enc = encoder_grids(u, s.depth)
        x0 = self.encoder(u, normals, has_normals, enc[0])
        dec = self.unet(x0, enc, gt_grids, keep_input)
        levels = [dl.grid for dl in dec]
        feats = [self.heads[d].kernel_features(dec[d].features) for d in range(s.depth)]
        psis = [h.psi if s.kernel_dim > 0 else None for h in self.heads]
        cen, nrm, cidx, raw, conf = [], [], [], [], []
        for d in range(min(s.adaptive_depth, s.depth)):
            base, mass = splat_mean(u, normals.to(u.dtype), levels[d], with_mass=True)
            n_hat = base + self.heads[d].normal(dec[d].features)
            raw.append(n_hat)
            length = n_hat.norm(dim=1)
            # as the training-free kernel (splat.splat_normals / normal_confidence): targets need input
            # points nearby and weigh min(mass, 1); the head refines them
            keep = (length >= s.normal_min_norm) & (mass > 1e-6)
            cidx.append(torch.nonzero(keep).squeeze(1))
            conf.append(normal_confidence(mass[keep].detach()))
            cen.append(constraint_centres(levels, d, cidx[-1], u.dtype))
            nrm.append(n_hat[keep] / length[keep, None])
        udf_feats = [self.heads[d].udf(dec[d].features) for d in range(s.depth)]
        return Prediction(levels, dec, feats, psis, torch.cat(cen), torch.cat(nrm), udf_feats, cidx, raw,
                          torch.cat(conf))

    def solve(self, pred: Prediction, u: torch.Tensor, *, pos_weight: float = 1e4, normal_weight: float = 1e4,
              reg_weight: float = TRAINED_REG_WEIGHT, tol: float = 1e-5, max_iter: int = 1000,
              multiplicity: torch.Tensor | None = None, multilevel: bool = True) -> tuple[list[torch.Tensor], dict]:
        """Coefficients alpha per level (differentiable through the implicit solve) and solver info.

        With ``multilevel`` (CPU) CG is preconditioned by the training-free system's multilevel
        sweep (:func:`training_free_preconditioner`), else by Jacobi.
        """
        system = build_system(u, pred.levels, pred.feats, pred.psis, pred.centres, pred.normals,
                              pos_weight=pos_weight, normal_weight=normal_weight, reg_weight=reg_weight,
                              multiplicity=multiplicity, normal_conf=pred.normal_conf)
        pre = None
        if multilevel:  # (merged points: the preconditioner ignores their counts; it only needs to be close)
            sizes = [len(i) for i in pred.constraint_index]
            confs = torch.split(pred.normal_conf, sizes) if pred.normal_conf is not None else [None] * len(sizes)
            cons = [NormalConstraints(d, i, n, c) for d, (i, n, c) in
                    enumerate(zip(pred.constraint_index, torch.split(pred.normals.detach(), sizes), confs))]
            pre = training_free_preconditioner(u, pred.levels, cons, pos_weight=pos_weight,
                                               normal_weight=normal_weight, reg_weight=reg_weight)
        x, info = implicit_solve(system, tol=tol, max_iter=max_iter, precond=pre)
        o = system.offsets
        return [x[o[d]:o[d + 1]] for d in range(len(pred.levels))], info

    def field(self, pred: Prediction, alphas: list[torch.Tensor], q: torch.Tensor, grad: bool = False):
        """f (K,) [and (K, 3) gradient] at (K, 3) finest-voxel positions; negative inside."""
        return evaluate_field(q, pred.levels, alphas, pred.feats, pred.psis, grad)

    def udf_at(self, pred: Prediction, q: torch.Tensor) -> torch.Tensor:
        """(K,) predicted unsigned distance (finest-voxel units) at (K, 3) positions."""
        return self.udf(q, pred.levels, pred.udf_feats)

    # ----------------------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> Path:
        """Write weights + spec + meta (tensors and plain values, loadable with weights_only=True;
        written atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(to_plain({"format": MODEL_FORMAT, "spec": dataclasses.asdict(self.spec),
                             "state": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                             "meta_json": json.dumps(self.meta)}), tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "LearnedKernelModel":
        """Read weights written by :meth:`save` (no code in the file runs); a wrong file raises a
        one-line InputError."""
        st = load_tensors(path, what="learned-kernel weights file", fix=WEIGHTS_FIX)
        if st.get("format") != MODEL_FORMAT:
            raise InputError("not learned-kernel weights", str(path), WEIGHTS_FIX)
        try:
            model = cls(ModelSpec(**st["spec"]))
            model.load_state_dict(st["state"])
            model.meta = json.loads(st.get("meta_json", "{}"))
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise InputError(f"learned-kernel weights do not fit the model ({describe_error(e)})", str(path),
                             WEIGHTS_FIX) from None
        return model.to(device).eval()
