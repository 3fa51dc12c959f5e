"""Training losses of NKSR section 2 (all lengths in finest-voxel units).

* surface value   mean |f(p)| at dense ground-truth points;
* surface normal  mean (1 - cos(grad f(p), n_p)) (our f is negative inside, so grad f = +n);
* TSDF            mean |tau tanh(f/tau) - tau tanh(sdf/tau)|, tau = 1 voxel (NKSR: L1/vs with tau = vs), on
                  uniform samples in the finest decoder voxels and band samples p + n N(0, 0.5^2);
* UDF             mean |min(udf, 4) - min(|sdf|, 4)| on the same samples;
* structure       cross-entropy of the 3-class structure logits (mean over levels);
* direct normal   mean (1 - cos(n_hat_v, n_v)) of the normal heads' output at the voxels of levels
                  < adaptive_depth against the trilinear-weighted mean of the dense ground-truth normals
                  there (voxels whose mean is shorter than 0.5, i.e. far from or folded around the
                  surface, are left out). Not in NKSR, whose normals are supervised only through the
                  field; here it lets the normal heads learn without the solve (training stage 1).

Default weights follow section 2 (value 200, normal 100, TSDF 300, UDF 150, structure 20), with
the value and UDF terms (network units in NKSR, where the ShapeNet voxel is 0.02) scaled by
0.02 because ours are measured in voxels: 4 and 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon.backends.kernel.learned.data import imls_sdf
from recon.backends.kernel.learned.model import splat_mean


@dataclass
class LossWeights:
    """Loss weights (see the module docstring)."""

    value: float = 4.0
    normal: float = 100.0
    tsdf: float = 300.0
    udf: float = 3.0
    structure: float = 20.0
    normal_direct: float = 100.0


@dataclass
class LossSamples:
    """Numbers of loss samples per step."""

    surface: int = 3000
    uniform: int = 3000
    band: int = 3000
    udf_clip: float = 4.0  # voxels
    imls_sigma: float = 0.02  # unit-side units (converted to voxels with the voxel size)


def direct_normal_loss(pred, gt_u: torch.Tensor, gt_n: torch.Tensor) -> torch.Tensor:
    """Mean (1 - cos) of the normal heads against splatted ground-truth normals (module docstring).

    Args:
        pred: a :class:`~recon.backends.kernel.learned.model.Prediction`.
        gt_u: (P, 3) dense ground-truth points, finest-voxel units; gt_n: (P, 3) unit outward normals.
    """
    terms = []
    for d, raw in enumerate(pred.raw_normals):
        target = splat_mean(gt_u, gt_n, pred.levels[d])
        length = target.norm(dim=1)
        ok = length >= 0.5
        if bool(ok.any()):
            cos = torch.nn.functional.cosine_similarity(raw[ok], target[ok] / length[ok, None], dim=1, eps=1e-8)
            terms.append((1 - cos).mean())
    return torch.stack(terms).mean() if terms else gt_u.new_zeros(())


def spatial_samples(pred, gt_u: np.ndarray, gt_n: np.ndarray, ns: LossSamples,
                    rng: np.random.Generator) -> np.ndarray:
    """(K, 3) float64 uniform samples in the finest decoder voxels + band samples p + n N(0, 0.5^2) (voxel units)."""
    c0 = pred.levels[0].coords.cpu().numpy()
    j = rng.integers(len(c0), size=ns.uniform)
    uni = c0[j] + rng.random((ns.uniform, 3))
    k = rng.choice(len(gt_u), size=min(ns.band, len(gt_u)), replace=False)
    band = gt_u[k] + gt_n[k] * rng.normal(0.0, 0.5, size=(len(k), 1))
    return np.concatenate([uni, band]).astype(np.float64)


def compute_pretrain_losses(model, pred, gt_u: np.ndarray, gt_n: np.ndarray, tree, voxel_size: float,
                            weights: LossWeights, ns: LossSamples, rng: np.random.Generator,
                            gt_grid_points: int = 40_000) -> tuple[torch.Tensor, dict[str, float]]:
    """Losses that need no solve (training stage 1): direct normal, UDF, structure; same arguments as
    :func:`compute_losses` without the coefficients."""
    dev = pred.normals.device
    dt = torch.float32
    parts: dict[str, torch.Tensor] = {}
    parts["normal_direct"] = _direct_normal_part(pred, gt_u, gt_n, gt_grid_points)
    qs = spatial_samples(pred, gt_u, gt_n, ns, rng)
    sdf = imls_sdf(tree, gt_u, gt_n, qs, ns.imls_sigma / voxel_size)
    qt = torch.from_numpy(qs).to(dev, dt)
    st = torch.from_numpy(sdf).to(dev, dt)
    parts["udf"] = _udf_loss(model, pred, qt, st, ns.udf_clip)
    parts["structure"] = _structure_loss(pred, dev)
    total = sum(getattr(weights, name) * v for name, v in parts.items())
    return total, {name: float(v.detach()) for name, v in parts.items()}


def _direct_normal_part(pred, gt_u: np.ndarray, gt_n: np.ndarray, n_max: int) -> torch.Tensor:
    """:func:`direct_normal_loss` on the first ``n_max`` dense ground-truth samples (numpy in)."""
    dev, sub = pred.normals.device, slice(0, min(n_max, len(gt_u)))
    return direct_normal_loss(pred, torch.from_numpy(gt_u[sub]).to(dev, torch.float32),
                              torch.from_numpy(gt_n[sub]).to(dev, torch.float32))


def _udf_loss(model, pred, qt: torch.Tensor, sdf: torch.Tensor, clip: float) -> torch.Tensor:
    """Mean |min(udf, clip) - min(|sdf|, clip)| at the (Q, 3) samples ``qt`` (finest-voxel units)."""
    udf = model.udf_at(pred, qt)
    return (udf.clamp(max=clip) - sdf.abs().clamp(max=clip)).abs().mean()


def _structure_loss(pred, dev) -> torch.Tensor:
    ce = [torch.nn.functional.cross_entropy(dl.logits, dl.labels) for dl in pred.decoder if dl.labels is not None
          and len(dl.labels)]
    return torch.stack(ce).mean() if ce else torch.zeros((), device=dev)


def compute_losses(model, pred, alphas: list[torch.Tensor], gt_u: np.ndarray, gt_n: np.ndarray, tree,
                   voxel_size: float, weights: LossWeights, ns: LossSamples,
                   rng: np.random.Generator, gt_grid_points: int = 40_000) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted total loss and its parts.

    Args:
        model: the :class:`LearnedKernelModel`; pred: its prediction; alphas: solved coefficients.
        gt_u: (P, 3) dense ground-truth points in finest-voxel units; gt_n: (P, 3) normals.
        tree: cKDTree over ``gt_u``.
        voxel_size: finest voxel edge (unit-side units).
        gt_grid_points: dense samples the direct normal loss splats.
    """
    dev = alphas[0].device
    dt = torch.float32
    parts: dict[str, torch.Tensor] = {}
    i = rng.choice(len(gt_u), size=min(ns.surface, len(gt_u)), replace=False)
    q = torch.from_numpy(gt_u[i]).to(dev, dt)
    f, g = model.field(pred, alphas, q, grad=True)
    parts["value"] = f.abs().mean()
    nt = torch.from_numpy(gt_n[i]).to(dev, dt)
    parts["normal"] = (1 - torch.nn.functional.cosine_similarity(g, nt, dim=1, eps=1e-8)).mean()
    qs = spatial_samples(pred, gt_u, gt_n, ns, rng)
    sdf = imls_sdf(tree, gt_u, gt_n, qs, ns.imls_sigma / voxel_size)
    qt = torch.from_numpy(qs).to(dev, dt)
    st = torch.from_numpy(sdf).to(dev, dt)
    fq = model.field(pred, alphas, qt)
    parts["tsdf"] = (torch.tanh(fq) - torch.tanh(st)).abs().mean()
    parts["udf"] = _udf_loss(model, pred, qt, st, ns.udf_clip)
    parts["structure"] = _structure_loss(pred, dev)
    if weights.normal_direct > 0:
        parts["normal_direct"] = _direct_normal_part(pred, gt_u, gt_n, gt_grid_points)
    total = sum(getattr(weights, name) * v for name, v in parts.items())
    return total, {name: float(v.detach()) for name, v in parts.items()}
