"""Adaptive density control of the Gaussians (3D Gaussian splatting's scheme).

Per step the view-space positional gradient of every visible Gaussian is accumulated
(:class:`DensifyStats`); every few hundred steps Gaussians with a large average gradient are
cloned (small ones) or split in two (large ones), and transparent or oversized ones are pruned.
The optimiser's moment estimates follow every row through :func:`remap_optimizer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.backends.gvkf.gaussians import GaussianSet


@dataclass
class DensifyStats:
    """Running sums per Gaussian: ``grad`` (N,) of view-space gradient norms (NDC units), ``count`` (N,)."""

    grad: torch.Tensor
    count: torch.Tensor

    @staticmethod
    def zeros(n: int, device: torch.device) -> "DensifyStats":
        return DensifyStats(torch.zeros(n, device=device), torch.zeros(n, device=device))

    def add(self, means_grad: torch.Tensor, means: torch.Tensor, visible: torch.Tensor, K: torch.Tensor,
            cam_to_world: torch.Tensor, width: int) -> None:
        """Accumulate one view.

        The gradient w.r.t. the world mean (N, 3) is turned into the gradient w.r.t. the mean's
        screen position in NDC (the unit 3D Gaussian splatting's threshold is stated in): its
        component across the viewing ray times depth / focal (world -> pixels) times W / 2
        (pixels -> NDC).
        """
        c = cam_to_world[:3, 3].to(means.dtype)
        ray = means.detach() - c
        z = ray.norm(dim=-1).clamp_min(1e-9)
        ray = ray / z[:, None]
        across = means_grad - (means_grad * ray).sum(-1, keepdim=True) * ray
        g = across.norm(dim=-1) * z / K[0, 0].to(means.dtype) * (width / 2.0)
        self.grad += torch.where(visible, g, torch.zeros_like(g))
        self.count += visible.to(self.count.dtype)

    def average(self) -> torch.Tensor:
        return self.grad / self.count.clamp_min(1.0)


def remap_optimizer(optimizer: torch.optim.Optimizer, old: list[torch.Tensor], new: list[torch.Tensor],
                    source: torch.Tensor) -> None:
    """Point ``optimizer`` at the ``new`` parameter tensors, carrying Adam's state row by row.

    Args:
        optimizer: an Adam whose param groups hold ``old`` (one tensor per group entry).
        old, new: matching lists of parameter tensors (new ones have M rows).
        source: (M,) int64 row of ``old`` each new row inherits its moments from, or -1 for zeros.
    """
    keep = source >= 0
    src = source.clamp_min(0)
    ids = {id(p): i for i, p in enumerate(old)}
    for group in optimizer.param_groups:
        for k, p in enumerate(group["params"]):
            i = ids.get(id(p))
            if i is None:
                continue
            q = new[i]
            st = optimizer.state.pop(p, None)
            if st:
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in st:
                        m = st[key][src]
                        m[~keep] = 0
                        st[key] = m
                optimizer.state[q] = st
            group["params"][k] = q


def densify_and_prune(g: GaussianSet, stats: DensifyStats, *, grad_threshold: float, dense_scale: float,
                      prune_opacity: float, prune_scale: float, max_gaussians: int,
                      generator: torch.Generator, keep_box: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> tuple[GaussianSet, torch.Tensor]:
    """One densification round.

    Gaussians whose average view-space gradient exceeds ``grad_threshold`` are cloned when their
    largest scale is at most ``dense_scale`` and split into two (positions drawn from the Gaussian,
    scales divided by 1.6) otherwise; when that would exceed ``max_gaussians`` only the largest
    gradients are taken. Then Gaussians with opacity below ``prune_opacity`` or a largest scale above
    ``prune_scale`` are dropped, and with ``keep_box`` ((3,) lo, (3,) hi, normalised units) those whose
    mean lies outside that box.

    Returns:
        The new set (fresh leaf tensors) and (M,) int64 the old row each new row comes from, or -1
        for rows whose optimiser moments should restart (split children).
    """
    n = len(g)
    dev = g.device
    avg = stats.average()
    cand = avg > grad_threshold
    room = max(max_gaussians - n, 0)
    if int(cand.sum()) > room:
        order = torch.argsort(torch.where(cand, avg, torch.full_like(avg, -1.0)), descending=True)
        cand = torch.zeros_like(cand)
        cand[order[:room]] = True
    smax = g.scales().detach().max(-1).values
    clone = cand & (smax <= dense_scale)
    split = cand & (smax > dense_scale)

    p = [t.detach() for t in g.parameters()]
    means, log_scales, quats, op, col = p
    si = torch.nonzero(split).squeeze(1)
    # two children per split Gaussian, drawn from the parent
    R = g.rotations().detach()[si]
    s = g.scales().detach()[si]
    eps = torch.randn((2, si.numel(), 3), generator=generator, device=dev, dtype=means.dtype) if si.numel() else \
        torch.zeros((2, 0, 3), device=dev, dtype=means.dtype)
    child_means = means[si][None] + torch.einsum("nij,knj->kni", R, eps * s[None])
    ci = torch.nonzero(clone).squeeze(1)
    keep = ~split
    parts = [
        (means[keep], log_scales[keep], quats[keep], op[keep], col[keep]),
        (means[ci], log_scales[ci], quats[ci], op[ci], col[ci]),
        (child_means.reshape(-1, 3), (log_scales[si] - torch.log(torch.tensor(1.6, device=dev))).repeat(2, 1),
         quats[si].repeat(2, 1), op[si].repeat(2), col[si].repeat(2, 1)),
    ]
    kept_rows = torch.nonzero(keep).squeeze(1)
    source = torch.cat([kept_rows, ci, torch.full((2 * si.numel(),), -1, dtype=torch.int64, device=dev)])
    new = [torch.cat([pt[k] for pt in parts]) for k in range(5)]
    # prune
    op_new = torch.sigmoid(new[3])
    big = new[1].exp().max(-1).values > prune_scale
    alive = (op_new >= prune_opacity) & ~big
    if keep_box is not None:
        alive &= ((new[0] >= keep_box[0]) & (new[0] <= keep_box[1])).all(-1)
    new = [t[alive].clone().requires_grad_(True) for t in new]
    return GaussianSet(*new), source[alive]


def reset_opacity(g: GaussianSet, optimizer: torch.optim.Optimizer, value: float) -> None:
    """Clamp every opacity to at most ``value`` in place and zero that tensor's Adam moments."""
    with torch.no_grad():
        g.opacity_logits.clamp_(max=float(torch.logit(torch.tensor(value))))
    st = optimizer.state.get(g.opacity_logits)
    if st:
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                st[key].zero_()
