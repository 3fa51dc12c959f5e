"""Training loop of GVKF: 3D Gaussians fitted to posed images by differentiable rasterisation.

Per step: ``views_per_step`` random training images -> :func:`rasterize` -> photometric loss
(L1 + SSIM), mask BCE (when masks exist) or the mean opacity (with the learned far field), a small
volume penalty, and from ``normal_from`` /
``distortion_from`` of training the depth-normal consistency and distortion terms -> Adam.
Densification (clone / split / prune, opacity resets) runs on a schedule; Gaussians that leave the
scene bound (:mod:`recon.backends.scene_bound`) are pruned. Without masks a learned far field
(:class:`~recon.backends.gvkf.background.FarField`) is composited behind the Gaussians. The means' learning
rate decays exponentially following the larger of step / steps and elapsed / time_budget.
Seeded: one torch generator drives the view choice and the split draws and is stored in
checkpoints, so a resumed run continues as a straight one would (on CPU).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recon.backends.gvkf.background import FarField, border_colour
from recon.backends.gvkf.config import GVKFConfig
from recon.backends.gvkf.densify import DensifyStats, densify_and_prune, remap_optimizer, reset_opacity
from recon.backends.gvkf.field import GVKFField
from recon.backends.gvkf.gaussians import GaussianSet
from recon.backends.gvkf.init import initial_gaussians
from recon.backends.gvkf.losses import depth_normal_loss, mask_loss, photometric_loss
from recon.backends.gvkf.rasterizer import RasterOutput, rasterize
from recon.backends.scene_bound import SceneBound, scene_bound
from recon.backends.training import TrainingLoop, psnr  # noqa: F401 - psnr is re-exported
from recon.config import to_dict
from recon.types import Cameras

CHECKPOINT_NAME = "gvkf.pt"
CHECKPOINT_VERSION = 1
_NAMES = ("means", "log_scales", "quats", "opacity_logits", "colour_logits")


@dataclass
class TrainStats:
    """Where training stands.

    Attributes:
        step: optimisation steps done.
        elapsed: training seconds (callbacks and checkpoints excluded; summed over resumes).
        loss, psnr: of the last step (PSNR of its image).
        count: Gaussians after the last step.
        history: (step, elapsed, loss, psnr, count) every ``log_every`` steps.
        interrupted: training stopped on KeyboardInterrupt.
        init_method: how the Gaussians were initialised.
    """

    step: int = 0
    elapsed: float = 0.0
    loss: float = float("nan")
    psnr: float = float("nan")
    count: int = 0
    history: list[tuple[int, float, float, float, int]] = field(default_factory=list)
    interrupted: bool = False
    init_method: str = ""


class GVKFTrainer(TrainingLoop):
    """Fits 3D Gaussians to posed images.

    Args:
        config: the options.
        images: (C, H, W, 3) float32 RGB in [0, 1].
        masks: optional (C, H, W) float32 in [0, 1] (1 = object).
        cameras: the C cameras, normalised so the scene lies inside the unit sphere.
        device: torch device.
        to_world: (4, 4) normalised -> world similarity (stored in checkpoints and the field).
        points3d: optional COLMAP sparse points in the normalised frame ((P, 3) xyz, (P, 3) RGB in [0, 1]).
        checkpoint_dir: where ``gvkf.pt`` is written (periodically, on Ctrl-C, at the end); None = never.

    The loop, the schedule fraction and the checkpoint files come from :class:`TrainingLoop`.
    """

    name = "gvkf"
    checkpoint_name = CHECKPOINT_NAME

    def __init__(self, config: GVKFConfig, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *,
                 device: str | torch.device = "cpu", to_world: np.ndarray | None = None,
                 points3d: tuple[np.ndarray, np.ndarray] | None = None,
                 checkpoint_dir: str | os.PathLike | None = None):
        images, masks, bg = self._take_images(config, images, masks, cameras, device=device, to_world=to_world,
                                              checkpoint_dir=checkpoint_dir)
        self.background = torch.from_numpy(bg).to(self.device)
        self.images = torch.from_numpy(images).to(self.device)
        self.masks = None if masks is None else torch.from_numpy(masks).to(self.device)
        self.K = torch.as_tensor(np.asarray(cameras.K, np.float32), device=self.device)
        self.c2w = torch.as_tensor(np.asarray(cameras.cam_to_world, np.float32), device=self.device)

        pts = None if points3d is None else np.asarray(points3d[0], np.float64)
        #: where the object is (normalised frame); see :mod:`recon.backends.scene_bound`
        self.bound: SceneBound = scene_bound(cameras, pts, masks)
        learned = masks is None and config.background_model == "learned"
        self.far = FarField(border_colour(self.images), config.background_rows, self.device) if learned else None
        g, method = initial_gaussians(config.init, config.init_count, images=images, masks=masks, cameras=cameras,
                                      points3d=points3d, hull_resolution=config.hull_resolution,
                                      hull_agreement=config.hull_agreement, opacity=config.init_opacity,
                                      seed=config.seed)
        self.gaussians = GaussianSet(*(p.to(self.device).requires_grad_(True) for p in g.parameters()))
        self.generator = torch.Generator(device="cpu").manual_seed(config.seed)
        self.optimizer = self._make_optimizer()
        self.densify_stats = DensifyStats.zeros(len(self.gaussians), self.device)
        self.stats = TrainStats(count=len(self.gaussians), init_method=method)

    # ------------------------------------------------------------------ optimiser and schedule

    def _make_optimizer(self) -> torch.optim.Adam:
        c = self.cfg
        lrs = (c.lr_means, c.lr_scales, c.lr_quats, c.lr_opacity, c.lr_colours)
        groups = [{"params": [p], "lr": lr, "name": n} for p, lr, n in zip(self.gaussians.parameters(), lrs, _NAMES)]
        if self.far is not None:
            groups.append({"params": [self.far.logits], "lr": c.lr_background, "name": "background"})
        return torch.optim.Adam(groups, eps=1e-15)

    def _apply_lr(self) -> None:
        c = self.cfg
        lr = c.lr_means * (c.lr_means_final / c.lr_means) ** self._fraction()
        for g in self.optimizer.param_groups:
            if g["name"] == "means":
                g["lr"] = lr

    def _replace(self, new: GaussianSet, source: torch.Tensor) -> None:
        remap_optimizer(self.optimizer, self.gaussians.parameters(), new.parameters(), source)
        self.gaussians = new
        self.densify_stats = DensifyStats.zeros(len(new), self.device)

    def _densify(self) -> None:
        c = self.cfg
        step = self.stats.step
        if self._fraction() < c.densify_until and step >= c.densify_from and step % c.densify_every == 0:
            new, source = densify_and_prune(self.gaussians, self.densify_stats, grad_threshold=c.densify_grad,
                                            dense_scale=c.dense_scale, prune_opacity=c.prune_opacity,
                                            prune_scale=c.prune_scale, max_gaussians=c.max_gaussians,
                                            generator=self.generator, keep_box=self._keep_box())
            if len(new) == 0:
                raise RuntimeError("no Gaussian survived pruning: the images may not show the scene "
                                   "(check the cameras, masks and background)")
            self._replace(new, source)
        if c.opacity_reset_every and step % c.opacity_reset_every == 0 and self._fraction() < c.densify_until:
            reset_opacity(self.gaussians, self.optimizer, c.opacity_reset)

    def _keep_box(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The bound grown by ``bound_margin`` as (3,) lo, (3,) hi tensors (None: no pruning by position)."""
        if self.cfg.bound_margin is None:
            return None
        b = self.bound.grown(self.cfg.bound_margin)
        return (torch.as_tensor(b.lo, dtype=torch.float32, device=self.device),
                torch.as_tensor(b.hi, dtype=torch.float32, device=self.device))

    # ------------------------------------------------------------------ one step

    def render_camera(self, K: torch.Tensor, cam_to_world: torch.Tensor, width: int, height: int, *,
                      compute_extras: bool = True) -> RasterOutput:
        """Rasterise the current Gaussians into any camera (normalised frame: K (3, 3) px, cam_to_world
        (4, 4) OpenCV), over the learned far field when there is one, else the fixed background."""
        if self.far is None:
            return rasterize(self.gaussians, K, cam_to_world, width, height, background=self.background,
                             tile_size=self.cfg.tile_size, max_per_tile=self.cfg.max_per_tile,
                             compute_extras=compute_extras)
        out = rasterize(self.gaussians, K, cam_to_world, width, height, background=None,
                        tile_size=self.cfg.tile_size, max_per_tile=self.cfg.max_per_tile,
                        compute_extras=compute_extras)
        far = self.far.image(K, cam_to_world, width, height)
        return dataclasses.replace(out, rgb=out.rgb + (1.0 - out.alpha)[..., None] * far)

    def render(self, view: int, *, compute_extras: bool = True) -> RasterOutput:
        """Rasterise the current Gaussians into training view ``view``."""
        C, H, W = self.image_shape
        return self.render_camera(self.K[view], self.c2w[view], W, H, compute_extras=compute_extras)

    def step(self) -> dict[str, float]:
        """One optimisation step; returns its total and photometric loss, the PSNR of its images and the
        number of Gaussians after it."""
        c = self.cfg
        self._apply_lr()
        C, H, W = self.image_shape
        frac = self._fraction()
        geo = (c.normal_weight > 0 and frac >= c.normal_from) or (c.distortion_weight > 0 and frac >= c.distortion_from)
        views = torch.randint(0, C, (c.views_per_step,), generator=self.generator).tolist()
        self.optimizer.zero_grad(set_to_none=True)
        total, mse_sum, photo = 0.0, 0.0, 0.0
        for v in views:  # a few views per step
            out = self.render(v, compute_extras=geo)
            target = self.images[v]
            loss = photometric_loss(out.rgb, target, c.ssim_weight)
            photo += float(loss.detach()) / len(views)
            if self.masks is not None and c.mask_weight > 0:
                loss = loss + c.mask_weight * mask_loss(out.alpha, self.masks[v])
            if self.far is not None and c.alpha_weight > 0:
                loss = loss + c.alpha_weight * out.alpha.mean()
            if c.volume_weight > 0:
                loss = loss + c.volume_weight * self.gaussians.scales().prod(-1).mean()
            if geo and c.normal_weight > 0 and frac >= c.normal_from:
                loss = loss + c.normal_weight * depth_normal_loss(out.depth, out.normal, out.alpha, self.K[v], self.c2w[v])
            if geo and c.distortion_weight > 0 and frac >= c.distortion_from:
                loss = loss + c.distortion_weight * out.distortion.mean()
            loss = loss / len(views)
            loss.backward()
            if self.gaussians.means.grad is not None:
                self.densify_stats.add(self.gaussians.means.grad.detach() * len(views), self.gaussians.means,
                                       out.visible, self.K[v], self.c2w[v], W)
            total += float(loss.detach())
            with torch.no_grad():
                mse_sum += float(((out.rgb - target) ** 2).mean())
        self.optimizer.step()
        with torch.no_grad():  # keep quaternions from drifting towards zero length
            self.gaussians.quats /= self.gaussians.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            if self.far is not None and c.opacity_decay > 0:  # unneeded Gaussians fade (config)
                o = torch.sigmoid(self.gaussians.opacity_logits) * (1.0 - c.opacity_decay)
                self.gaussians.opacity_logits.copy_(torch.logit(o.clamp_min(1e-6)))
        self.stats.step += 1
        self._densify()
        return {"loss": total, "photometric": photo, "psnr": psnr(mse_sum / len(views)), "count": len(self.gaussians)}

    # ------------------------------------------------------------------ loop

    def record(self, info: dict[str, float]) -> tuple[tuple, str]:
        s = self.stats
        s.loss, s.psnr, s.count = info["loss"], info["psnr"], info["count"]
        return (s.step, s.elapsed, s.loss, s.psnr, s.count), \
            f"step {s.step} loss {s.loss:.4f} psnr {s.psnr:.2f} gaussians {s.count}"

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training (the data excepted)."""
        s = self.stats
        return {
            "version": CHECKPOINT_VERSION,
            "config": to_dict(self.cfg),
            "gaussians": {n: p.detach().cpu() for n, p in zip(_NAMES, self.gaussians.parameters())},
            "optimizer": self.optimizer.state_dict(),
            "densify": {"grad": self.densify_stats.grad.cpu(), "count": self.densify_stats.count.cpu()},
            "generator": self.generator.get_state(),
            "step": s.step, "elapsed": s.elapsed, "history": list(s.history), "init_method": s.init_method,
            "to_world": self.to_world.tolist(),
            "background": None if self.far is None else self.far.logits.detach().cpu(),
            "image_shape": list(self.image_shape),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"unsupported checkpoint version {state.get('version')}")
        if list(state["image_shape"]) != list(self.image_shape):
            raise ValueError(f"checkpoint was trained on images {state['image_shape']}, not {list(self.image_shape)}")
        try:
            g = GaussianSet(*(state["gaussians"][n].to(self.device).clone().requires_grad_(True) for n in _NAMES))
            self.gaussians = g
            if self.far is not None:
                self.far.logits = state["background"].to(self.device).clone().requires_grad_(True)
            self.optimizer = self._make_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, AttributeError) as e:
            raise ValueError(f"checkpoint does not match this configuration ({str(e).splitlines()[0]})") from e
        self.densify_stats = DensifyStats(state["densify"]["grad"].to(self.device), state["densify"]["count"].to(self.device))
        self.generator.set_state(state["generator"])
        s = self.stats
        s.step, s.elapsed = int(state["step"]), float(state["elapsed"])
        s.history = [tuple(h) for h in state["history"]]
        s.init_method = state.get("init_method", "")
        s.count = len(g)

    # ------------------------------------------------------------------ outputs

    def sdf_view_indices(self) -> np.ndarray:
        """Indices of the ``sdf_views`` training views (evenly spaced) used by the surface query."""
        C = self.image_shape[0]
        k = min(self.cfg.sdf_views, C)
        return np.unique(np.round(np.linspace(0, C - 1, k)).astype(np.int64))

    def field(self):
        """The trained Gaussians as a :class:`~recon.backends.gvkf.field.GVKFField` (world units)."""

        s = self.stats
        idx = torch.from_numpy(self.sdf_view_indices()).to(self.device)
        info = {"steps": s.step, "seconds": s.elapsed, "psnr_batch": s.psnr, "gaussians": s.count,
                "init": s.init_method, "interrupted": s.interrupted, "bound": self.bound.source,
                "background": "fixed" if self.far is None else "learned"}
        C, H, W = self.image_shape
        f = GVKFField(self.gaussians.detach(), self.K[idx], self.c2w[idx], W, H, self.to_world,
                      config=self.cfg, info=info)
        f.scene_bound = self.bound.transformed(self.to_world)  # world units: the pipeline crops to it
        return f
