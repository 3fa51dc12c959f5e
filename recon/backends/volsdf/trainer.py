"""Training loop of VolSDF on arrays: images, optional masks and cameras normalised into the unit sphere.

Per step: ``rays_per_step`` random pixels over all training images -> error-bounded sampling ->
volume rendering -> L1 colour + eikonal (+ BCE of the opacity against the mask) -> Adam. The
learning rate warms up linearly, then decays exponentially to ``lr_final`` following the larger of
step / steps and elapsed / time_budget. Seeded: one torch generator drives every random draw and is
saved in checkpoints, so a resumed run continues exactly where a straight run would be (on CPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recon.backends.training import TrainingLoop, psnr  # noqa: F401 - psnr is re-exported
from recon.backends.volsdf.config import VolSDFConfig
from recon.backends.volsdf.field import VolSDFField
from recon.backends.volsdf.networks import fit_sphere
from recon.backends.volsdf.renderer import VolSDFModel, sphere_intersection
from recon.config import to_dict
from recon.device import torch_threads
from recon.ops.rays import pixel_rays
from recon.types import Cameras

CHECKPOINT_NAME = "volsdf.pt"
CHECKPOINT_VERSION = 1
#: with a time budget, the learning-rate warm-up ends by this fraction of training at the latest
WARMUP_FRACTION = 0.05
#: with a time budget, every grid level is active by this fraction of training at the latest
LEVELS_FRACTION = 0.5


def pixel_batch_rays(K: torch.Tensor, cam_to_world: torch.Tensor, pixels: torch.Tensor, width: int, height: int,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through flat pixel indices of a stack of images.

    Args:
        K: (C, 3, 3) and cam_to_world: (C, 4, 4) float64 tensors.
        pixels: (R,) int64 flat indices c * H * W + j * W + i (row j, column i of camera c).
        width, height: image size.

    Returns:
        origins (R, 3) and unit directions (R, 3), float32, through the pixel centres (+0.5).
    """

    hw = width * height
    c = torch.div(pixels, hw, rounding_mode="floor")
    rem = pixels - c * hw
    j = torch.div(rem, width, rounding_mode="floor")
    i = rem - j * width
    uv = torch.stack([i, j], -1).to(torch.float64) + 0.5
    o, d, _ = pixel_rays(K[c], cam_to_world[c], uv)
    return o.float(), d.float()


@dataclass
class TrainStats:
    """Where training stands.

    Attributes:
        step: optimisation steps done.
        elapsed: training seconds so far (callbacks and checkpoints excluded; summed over resumes).
        loss, psnr, beta: of the last step (PSNR of its batch of rays).
        history: (step, elapsed, loss, psnr, beta) every ``log_every`` steps.
        interrupted: training stopped on KeyboardInterrupt (a checkpoint was written if a directory was set).
    """

    step: int = 0
    elapsed: float = 0.0
    loss: float = float("nan")
    psnr: float = float("nan")
    beta: float = float("nan")
    history: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    interrupted: bool = False


class VolSDFTrainer(TrainingLoop):
    """Fits a :class:`VolSDFModel` to posed images.

    Args:
        config: the options.
        images: (C, H, W, 3) float32 RGB in [0, 1].
        masks: optional (C, H, W) float32 in [0, 1] (1 = object).
        cameras: the C cameras, already normalised so the scene lies inside the unit sphere.
        device: torch device.
        to_world: (4, 4) normalised -> world similarity, stored in checkpoints and the field.
        checkpoint_dir: where ``volsdf.pt`` is written (periodically, on Ctrl-C, at the end); None = never.

    The loop, the schedule fraction and the checkpoint files come from :class:`TrainingLoop`.
    """

    name = "volsdf"
    checkpoint_name = CHECKPOINT_NAME

    def __init__(self, config: VolSDFConfig, images: np.ndarray, masks: np.ndarray | None, cameras: Cameras, *,
                 device: str | torch.device = "cpu", to_world: np.ndarray | None = None,
                 checkpoint_dir: str | os.PathLike | None = None):
        images, masks, bg = self._take_images(config, images, masks, cameras, device=device, to_world=to_world,
                                              checkpoint_dir=checkpoint_dir)
        C, H, W = self.image_shape

        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        init_gen = torch.Generator().manual_seed(config.seed)
        with torch_threads(config.threads, self.device), torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # nn.Linear's default init draws from the global generator
            self.model = VolSDFModel(config, init_gen)
            if config.init_fit_steps > 0:

                fit_sphere(self.model.sdf_net, config.init_radius, config.init_fit_steps, init_gen)
        self.model.to(self.device)
        self.model.background.copy_(torch.from_numpy(bg))

        self._K = torch.as_tensor(np.asarray(cameras.K, np.float64), device=self.device)
        self._c2w = torch.as_tensor(np.asarray(cameras.cam_to_world, np.float64), device=self.device)
        # keep the pixels whose rays meet the unit sphere (the others only ever see the background)
        all_pix = torch.arange(C * H * W, device=self.device)
        hit_parts = []
        for s0 in range(0, all_pix.numel(), 1 << 20):
            o, d = pixel_batch_rays(self._K, self._c2w, all_pix[s0:s0 + (1 << 20)], W, H)
            hit_parts.append(sphere_intersection(o, d)[2])
        hit = torch.cat(hit_parts)
        self.pixels = all_pix[hit]
        keep = hit.cpu().numpy()
        self.rgb = torch.from_numpy(images.reshape(-1, 3)[keep]).to(self.device)
        self.mask = None if masks is None else torch.from_numpy(masks.reshape(-1)[keep]).to(self.device)
        if self.pixels.numel() == 0:
            raise ValueError("no camera ray meets the unit sphere: are the cameras normalised around the scene?")

        grid_params = list(self.model.sdf_net.grid.parameters()) if self.model.sdf_net.grid is not None else []
        gid = {id(p) for p in grid_params}
        other = [p for p in self.model.parameters() if id(p) not in gid]
        groups = [{"params": other, "lr": config.lr, "base_lr": config.lr}]
        if grid_params:
            groups.append({"params": grid_params, "lr": config.grid_lr, "base_lr": config.grid_lr,
                           "eps": 1e-15})
        kw: dict[str, Any] = {"betas": (0.9, 0.99)}
        try:
            self.optimizer = torch.optim.Adam(groups, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            self.optimizer = torch.optim.Adam(groups, foreach=True, **kw)
        self.stats = TrainStats()
        #: marching-cubes resolution of :meth:`field` (the backend lowers it to fit a short time budget)
        self.mesh_resolution = config.mesh_resolution
        self._apply_level_schedule()

    # ------------------------------------------------------------------ schedule

    def _apply_lr(self) -> None:
        cfg = self.cfg
        # warm-up over warmup_steps, but never longer than WARMUP_FRACTION of a short time budget
        warm = min(1.0, max((self.stats.step + 1) / cfg.warmup_steps, self._time_fraction() / WARMUP_FRACTION)) \
            if cfg.warmup_steps > 0 else 1.0
        factor = warm * cfg.lr_final ** self._fraction()
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor

    def _apply_beta_cap(self) -> None:
        cfg = self.cfg
        if cfg.beta_final is None:
            return
        f = min(1.0, self._fraction() / cfg.beta_decay)
        self.model.density.beta_cap.fill_(cfg.beta_init * (cfg.beta_final / cfg.beta_init) ** f)

    def _apply_level_schedule(self) -> None:
        grid = self.model.sdf_net.grid
        if grid is None:
            return
        cfg = self.cfg
        levels = len(grid.resolutions)
        if cfg.grid_level_steps == 0:
            n = levels
        else:  # a level every grid_level_steps, and all of them by LEVELS_FRACTION of a short budget
            by_time = cfg.grid_start_levels + int((levels - cfg.grid_start_levels) * self._time_fraction()
                                                  / LEVELS_FRACTION)
            n = max(cfg.grid_start_levels + self.stats.step // cfg.grid_level_steps, by_time)
        grid.set_active_levels(n)

    # ------------------------------------------------------------------ one step

    def step(self) -> dict[str, float]:
        """One optimisation step; returns its loss terms, batch PSNR and beta."""
        cfg = self.cfg
        self._apply_level_schedule()
        self._apply_lr()
        self._apply_beta_cap()
        self.model.train()
        idx = torch.randint(0, self.pixels.numel(), (cfg.rays_per_step,), device=self.device,
                            generator=self.generator)
        rays_o, rays_d = pixel_batch_rays(self._K, self._c2w, self.pixels[idx], self.cameras.width,
                                          self.cameras.height)
        out = self.model.render(rays_o, rays_d, train=True, generator=self.generator,
                                smooth_std=cfg.smooth_std if cfg.smooth_weight > 0 else 0.0)
        target = self.rgb[idx]
        l_rgb = (out.rgb - target).abs().mean()
        l_eik = ((out.grad_eik.norm(dim=-1) - 1.0) ** 2).mean()
        loss = l_rgb + cfg.eikonal_weight * l_eik
        l_smooth = torch.zeros((), device=self.device)
        if out.grad_smooth is not None:
            n = out.grad_smooth / out.grad_smooth.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            l_smooth = ((n[0] - n[1]) ** 2).sum(-1).mean()
            loss = loss + cfg.smooth_weight * l_smooth
        l_mask = torch.zeros((), device=self.device)
        if self.mask is not None and cfg.mask_weight > 0:
            acc = out.acc.clamp(1e-3, 1.0 - 1e-3)
            l_mask = torch.nn.functional.binary_cross_entropy(acc, self.mask[idx])
            loss = loss + cfg.mask_weight * l_mask
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.stats.step += 1
        with torch.no_grad():
            mse = float(((out.rgb - target) ** 2).mean())
        return {"loss": float(loss.detach()), "rgb": float(l_rgb.detach()), "eikonal": float(l_eik.detach()),
                "mask": float(l_mask.detach()), "smooth": float(l_smooth.detach()), "psnr": psnr(mse),
                "beta": float(self.model.density.beta().detach())}

    # ------------------------------------------------------------------ loop

    def record(self, info: dict[str, float]) -> tuple[tuple, str]:
        s = self.stats
        s.loss, s.psnr, s.beta = info["loss"], info["psnr"], info["beta"]
        return (s.step, s.elapsed, s.loss, s.psnr, s.beta), \
            f"step {s.step} loss {s.loss:.4f} psnr {s.psnr:.2f} beta {s.beta:.4f}"

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training (the data excepted)."""
        s = self.stats
        return {
            "version": CHECKPOINT_VERSION,
            "config": to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "step": s.step,
            "elapsed": s.elapsed,
            "history": list(s.history),
            "to_world": self.to_world.tolist(),
            "image_shape": list(self.image_shape),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"unsupported checkpoint version {state.get('version')}")
        if list(state["image_shape"]) != list(self.image_shape):
            raise ValueError(f"checkpoint was trained on images {state['image_shape']}, not {list(self.image_shape)}")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"checkpoint does not match this configuration ({str(e).splitlines()[0]})") from e
        self.stats.step = int(state["step"])
        self._apply_level_schedule()
        self.generator.set_state(state["generator"].cpu())
        self.stats.elapsed = float(state["elapsed"])
        self.stats.history = [tuple(h) for h in state["history"]]

    # ------------------------------------------------------------------ outputs

    def field(self):
        """The trained geometry as a :class:`~recon.backends.volsdf.field.VolSDFField` (world units)."""

        s = self.stats
        info = {"steps": s.step, "seconds": s.elapsed, "beta": s.beta, "psnr_batch": s.psnr,
                "interrupted": s.interrupted}
        return VolSDFField(self.model.sdf_net, self.to_world, mesh_resolution=self.mesh_resolution,
                           color_fn=self.model.color_net, info=info)

    def render_view(self, K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int) -> dict[str, np.ndarray]:
        """Render a (normalised) camera: {"rgb": (H, W, 3), "acc": (H, W), "depth": (H, W)} numpy float32."""
        self.model.eval()
        with torch_threads(self.cfg.threads, self.device):
            out = self.model.render_image(torch.as_tensor(K), torch.as_tensor(cam_to_world), width, height)
        return {k: v.cpu().numpy().astype(np.float32) for k, v in out.items()}
