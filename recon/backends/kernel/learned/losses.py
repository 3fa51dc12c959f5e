"""Training losses of NKSR section 2 (all lengths in finest-voxel units).

* surface value   mean |f(p)| at dense ground-truth points;
* surface normal  mean (1 - cos(grad f(p), n_p)) (our f is negative inside, so grad f = +n);
* TSDF            mean |tau tanh(f/tau) - tau tanh(sdf/tau)|, tau = 1 voxel (NKSR: L1/vs with tau = vs), on
                  uniform samples in the finest decoder voxels and band samples p + n N(0, 0.5^2);
* UDF             mean |min(udf, 4) - min(|sdf|, 4)| on the same samples;
* structure       cross-entropy of the 3-class structure logits (mean over levels).

Default weights follow section 2 (value 200, normal 100, TSDF 300, UDF 150, structure 20), with
the value and UDF terms (network units in NKSR, where the ShapeNet voxel is 0.02) scaled by
0.02 because ours are measured in voxels: 4 and 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon.backends.kernel.learned.data import imls_sdf


@dataclass
class LossWeights:
    """Loss weights (see the module docstring)."""

    value: float = 4.0
    normal: float = 100.0
    tsdf: float = 300.0
    udf: float = 3.0
    structure: float = 20.0


@dataclass
class LossSamples:
    """Numbers of loss samples per step."""

    surface: int = 3000
    uniform: int = 3000
    band: int = 3000
    udf_clip: float = 4.0  # voxels
    imls_sigma: float = 0.02  # unit-side units (converted to voxels with the voxel size)


def compute_losses(model, pred, alphas: list[torch.Tensor], gt_u: np.ndarray, gt_n: np.ndarray, tree,
                   voxel_size: float, weights: LossWeights, ns: LossSamples,
                   rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted total loss and its parts.

    Args:
        model: the :class:`LearnedKernelModel`; pred: its prediction; alphas: solved coefficients.
        gt_u: (P, 3) dense ground-truth points in finest-voxel units; gt_n: (P, 3) normals.
        tree: cKDTree over ``gt_u``.
        voxel_size: finest voxel edge (unit-side units).
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
    # spatial samples
    c0 = pred.levels[0].coords.cpu().numpy()
    j = rng.integers(len(c0), size=ns.uniform)
    uni = c0[j] + rng.random((ns.uniform, 3))
    k = rng.choice(len(gt_u), size=ns.band, replace=False)
    band = gt_u[k] + gt_n[k] * rng.normal(0.0, 0.5, size=(ns.band, 1))
    qs = np.concatenate([uni, band]).astype(np.float64)
    sdf = imls_sdf(tree, gt_u, gt_n, qs, ns.imls_sigma / voxel_size)
    qt = torch.from_numpy(qs).to(dev, dt)
    st = torch.from_numpy(sdf).to(dev, dt)
    fq = model.field(pred, alphas, qt)
    parts["tsdf"] = (torch.tanh(fq) - torch.tanh(st)).abs().mean()
    udf = model.udf_at(pred, qt)
    parts["udf"] = (udf.clamp(max=ns.udf_clip) - st.abs().clamp(max=ns.udf_clip)).abs().mean()
    ce = [torch.nn.functional.cross_entropy(dl.logits, dl.labels) for dl in pred.decoder if dl.labels is not None
          and len(dl.labels)]
    parts["structure"] = torch.stack(ce).mean() if ce else torch.zeros((), device=dev)
    total = sum(getattr(weights, name) * v for name, v in parts.items())
    return total, {name: float(v.detach()) for name, v in parts.items()}
