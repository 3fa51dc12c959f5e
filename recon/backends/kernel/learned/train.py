"""Train the learned kernel through the sparse solve: seeded, resumable, Ctrl-C safe.

Usage::

    recon train kernel --config configs/train/kernel-train.yaml [--resume] [--steps N] [--out DIR]
    python -m recon.backends.kernel.learned.train --config configs/train/kernel-train.yaml [--resume]

Two stages. Stage 1 (``train.pretrain_steps``, no solve, ~1 s a step): the losses that need no
solve (direct normal, UDF, structure; :func:`.losses.compute_pretrain_losses`) train the encoder,
U-Net, normal, UDF and structure heads. Stage 2 (``train.steps``): draw a shape and an input
cloud (:mod:`.data`), predict the voxel structure (teacher-forced with the ground-truth grids),
kernel features and normals, solve the gradient-fitting system (:mod:`.implicit_solve`, adjoint
backward), evaluate the section-2 losses (:mod:`.losses`), AdamW step. The finest voxel of a
sample follows the inference rule (``data.voxel_size: null``: ``scale.voxel_size_from_detail``
with ``data.detail`` and ``model.min_resolution``) or is fixed. A checkpoint (model, optimiser, RNG states, step, loss
history) is written every ``train.checkpoint_every`` steps, on Ctrl-C and on SIGTERM; with
``resume`` training continues from it. The final weights carry the command, config, data,
steps, timings and losses in ``meta`` and in a JSON file next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.spatial import cKDTree

from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.learned import data as D
from recon.backends.kernel.learned.grids import encoder_grids
from recon.backends.kernel.learned.losses import LossSamples, LossWeights, compute_losses, compute_pretrain_losses
from recon.backends.kernel.learned.model import LearnedKernelModel, ModelSpec
from recon.backends.kernel.scale import voxel_size_from_detail
from recon.config import load_config_as, to_dict
from recon.device import resolve_torch_device
from recon.errors import ConfigError, InputError, ReconError
from recon.io.outputs import check_writable_folder
from recon.io.torch_files import describe_error, load_tensors, to_plain

REPO = Path(__file__).resolve().parents[4]
#: what to do about a training checkpoint that cannot be resumed
CHECKPOINT_FIX = "delete it (or run without --resume) to start training again"
LOSS_KEYS = ("value", "normal", "tsdf", "udf", "structure", "normal_direct")


@dataclass
class DataConfig:
    n_procedural: int = 48  # random CSG shapes
    meshes: list[str] = field(default_factory=lambda: list(D.DEFAULT_TRAIN_MESHES))  # relative to mesh_dir
    n_dense: int = 100_000  # ground-truth samples per shape
    n_min: int = 1000  # input points per cloud (log-uniform)
    n_max: int = 50_000
    sigmas: list[float] = field(default_factory=lambda: [0.0, 0.005, 0.025])  # noise std, unit-side units
    normal_prob: float = 0.5  # chance that the true normals are given (else PCA + MST estimates)
    voxel_size: float | None = 0.015625  # finest voxel (1/64 of the unit side); None: the inference rule
    detail: float = 0.6  # detail of the inference rule (voxel_size None)
    gt_grid_points: int = 40_000  # dense points used to build the ground-truth voxel grids


@dataclass
class OptimConfig:
    steps: int = 2000  # stage 2 (through the solve)
    pretrain_steps: int = 0  # stage 1 (no solve)
    pretrain_lr: float = 2e-3  # cosine to lr over stage 1
    pretrain_minutes: float = 0.0  # stage-1 wall-clock budget (0 = no limit; max_minutes bounds the run)
    lr: float = 5e-4  # AdamW (amsgrad)
    lr_min: float = 5e-5  # cosine floor
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # global norm
    checkpoint_every: int = 10  # steps
    max_minutes: float = 40.0  # wall-clock budget (stops early and writes the weights)
    threads: int = 1
    solver_tol: float = 1e-4
    solver_max_iter: int = 400


@dataclass
class TrainConfig:
    seed: int = 0
    output: str = "recon/backends/kernel/learned/weights/learned_kernel.pt"
    cache_dir: str = "~/.cache/recon/learned_kernel"
    mesh_dir: str = field(default_factory=lambda: os.environ.get("RECON_SHARED_DATA",
                                                                  str(REPO.parent / "shared" / "data")) + "/meshes")
    device: str = "auto"
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataConfig = field(default_factory=DataConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    samples: LossSamples = field(default_factory=LossSamples)


def _abs(p: str) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else REPO / q


def sample_voxel_size(points: np.ndarray, cfg: TrainConfig) -> float:
    """Finest voxel (unit-side units) of a training cloud: fixed, or the inference rule of the learned path."""
    if cfg.data.voxel_size is not None:
        return float(cfg.data.voxel_size)
    res = cfg.model.min_resolution if cfg.model.min_resolution is not None else KernelConfig.min_resolution
    p = torch.from_numpy(np.asarray(points, np.float32))
    return float(voxel_size_from_detail(p - p.mean(0), cfg.data.detail, min_resolution=res))


def _predict(model: LearnedKernelModel, sample: D.Sample, cfg: TrainConfig, device: torch.device):
    """(prediction, u, gt_u, h) of one sample with teacher-forced structure."""
    h = sample_voxel_size(sample.points, cfg)
    u = torch.from_numpy(sample.points / h).to(device, torch.float32)
    nrm = torch.from_numpy(sample.normals).to(device, torch.float32)
    gt_u = (sample.gt_points / h).astype(np.float64)
    sub = gt_u[:cfg.data.gt_grid_points]
    gt_grids = encoder_grids(torch.from_numpy(sub.astype(np.float32)).to(device), cfg.model.depth)
    return model.predict(u, nrm, sample.has_normals, gt_grids=gt_grids), u, gt_u, h


def pretrain_step(model: LearnedKernelModel, sample: D.Sample, cfg: TrainConfig, rng: np.random.Generator,
                  device: torch.device) -> tuple[torch.Tensor, dict]:
    """Stage 1: network and the losses that need no solve (direct normal, UDF, structure)."""
    pred, u, gt_u, h = _predict(model, sample, cfg, device)
    loss, parts = compute_pretrain_losses(model, pred, gt_u, sample.gt_normals.astype(np.float64), cKDTree(gt_u), h,
                                          cfg.loss, cfg.samples, rng, cfg.data.gt_grid_points)
    parts["unknowns"] = int(sum(len(lv) for lv in pred.levels))
    parts["cg_iters"] = 0
    parts["_solver"] = {}
    return loss, parts


def train_step(model: LearnedKernelModel, sample: D.Sample, cfg: TrainConfig, rng: np.random.Generator,
               device: torch.device) -> tuple[torch.Tensor, dict]:
    """Forward one sample through network, solve and losses; returns (loss, info)."""
    pred, u, gt_u, h = _predict(model, sample, cfg, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        alphas, info = model.solve(pred, u, tol=cfg.train.solver_tol, max_iter=cfg.train.solver_max_iter)
    loss, parts = compute_losses(model, pred, alphas, gt_u, sample.gt_normals.astype(np.float64), cKDTree(gt_u), h,
                                 cfg.loss, cfg.samples, rng, cfg.data.gt_grid_points)
    parts["unknowns"] = int(sum(len(lv) for lv in pred.levels))
    parts["cg_iters"] = info["forward"].iterations
    parts["_solver"] = info
    return loss, parts


def _same_run(a: dict | None, b: dict) -> bool:
    """Checkpoint config equal up to the budget keys (steps, max_minutes, checkpoint_every, threads)."""
    if not isinstance(a, dict):
        return False

    def strip(c: dict) -> dict:
        c = json.loads(json.dumps(c))
        for key in ("steps", "max_minutes", "checkpoint_every", "threads", "pretrain_minutes"):
            c.get("train", {}).pop(key, None)
        c.pop("output", None)
        return c

    try:
        return strip(a) == strip(b)
    except (TypeError, ValueError, AttributeError):  # a damaged config is not this run's
        return False


def train(*args, **kwargs) -> Path:
    """Train the learned kernel (see :func:`_train` for the arguments); torch's thread count is
    restored afterwards, so an in-process call leaves no global state behind."""
    old = torch.get_num_threads()
    try:
        return _train(*args, **kwargs)
    finally:
        torch.set_num_threads(old)


def _train(config: str | os.PathLike | dict | TrainConfig | None = None, resume: bool = True,
          steps: int | None = None, out_dir: str | None = None, log: Callable[[str], None] | None = None,
          command: str | None = None) -> Path:
    """Train (or continue) the learned kernel and write the weights.

    Args:
        config: YAML path, dict or :class:`TrainConfig` (None = defaults).
        resume: continue from the checkpoint in ``cache_dir`` when its config matches.
        steps: override ``train.steps``.
        out_dir: write the weights (and JSON record) into this folder instead of ``output``'s.
        log: line printer (default: stderr).
        command: the command line recorded in the weights.

    Returns:
        Path of the written weights.
    """
    cfg, src = load_config_as(TrainConfig, config, "pass --config configs/train/kernel-train.yaml")
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {steps}", None, "pass a positive number of steps")
        cfg.train.steps = steps
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out_folder = _abs(out_dir) if out_dir is not None else _abs(cfg.output).parent
    check_writable_folder(out_folder, option="--out")  # before hours of training, not after
    check_writable_folder(_abs(cfg.cache_dir), option="cache_dir")
    oc = cfg.train
    torch.set_num_threads(max(1, oc.threads))
    device = resolve_torch_device(cfg.device)
    t_start = time.time()
    torch.manual_seed(cfg.seed)
    model = LearnedKernelModel(cfg.model).to(device)
    cache = _abs(cfg.cache_dir)
    log(f"building training shapes (cache: {cache})")
    shapes = D.shape_pool(cfg.data.n_procedural, cfg.data.meshes, _abs(cfg.mesh_dir), cfg.seed, cache,
                          cfg.data.n_dense, log)
    if not shapes:
        raise ConfigError("no training shapes", None, "set data.n_procedural > 0 or point mesh_dir at the meshes")
    t_data = time.time() - t_start
    log(f"{len(shapes)} shapes ready in {t_data:.0f} s; device {device}")
    opt = torch.optim.AdamW(model.parameters(), lr=oc.lr, weight_decay=oc.weight_decay, amsgrad=True)

    def cosine(hi: float, lo: float, i: int, n: int) -> float:
        return lo + 0.5 * (hi - lo) * (1 + np.cos(np.pi * min(i, n) / max(n, 1)))

    def lr_at(step: int) -> float:
        if step < pretrain_end:
            return cosine(oc.pretrain_lr, oc.lr, step, oc.pretrain_steps)
        return cosine(oc.lr, oc.lr_min, step - pretrain_end, oc.steps)

    cfg_dict = to_dict(cfg)
    ckpt = cache / "checkpoint.pt"
    step, history, t_train, runs = 0, [], 0.0, []
    pretrain_end = oc.pretrain_steps  # lowered when the stage-1 budget ends stage 1 early
    rng = np.random.default_rng(cfg.seed)
    if resume and ckpt.is_file():
        st = load_tensors(ckpt, what="learned-kernel training checkpoint", fix=CHECKPOINT_FIX)
        if _same_run(st.get("config"), cfg_dict):
            try:
                model.load_state_dict(st["model"])
                opt.load_state_dict(st["opt"])
                rng.bit_generator.state = st["rng"]
                torch.set_rng_state(st["torch_rng"])
                step, history, t_train = int(st["step"]), list(st["history"]), float(st["t_train"])
                runs, pretrain_end = list(st.get("runs", [])), int(st.get("pretrain_end", pretrain_end))
            except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
                raise InputError(f"checkpoint does not fit this model ({describe_error(e)})", ckpt,
                                 CHECKPOINT_FIX) from None
            log(f"resumed from {ckpt} at step {step}")
        else:
            log(f"checkpoint {ckpt} is from another config; starting fresh")
    start_step = step

    def save_ckpt() -> None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save(to_plain({"config": cfg_dict, "model": model.state_dict(), "opt": opt.state_dict(),
                             "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step,
                             "history": history, "t_train": t_train, "runs": runs,
                             "pretrain_end": pretrain_end}), tmp)
        os.replace(tmp, ckpt)

    interrupted = False
    t0 = time.time() - t_train
    model.train()
    try:
        while step < pretrain_end + oc.steps:
            if (time.time() - t0) / 60 > oc.max_minutes:
                log(f"time budget of {oc.max_minutes} min reached at step {step}")
                break
            stage1 = step < pretrain_end
            if stage1 and oc.pretrain_minutes > 0 and (time.time() - t0) / 60 > oc.pretrain_minutes:
                log(f"stage-1 budget of {oc.pretrain_minutes} min reached at step {step}; starting stage 2")
                pretrain_end, stage1 = step, False
            shape = shapes[rng.integers(len(shapes))]
            sample = D.draw_sample(shape, rng, cfg.data.n_min, cfg.data.n_max, cfg.data.sigmas, cfg.data.normal_prob)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            ts = time.time()
            loss, parts = (pretrain_step if stage1 else train_step)(model, sample, cfg, rng, device)
            opt.zero_grad()
            loss.backward()
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), oc.grad_clip))
            if np.isfinite(gnorm):
                opt.step()
            step += 1
            t_train = time.time() - t0
            solver = parts.pop("_solver")
            rec = {"step": step, "stage": 1 if stage1 else 2, "loss": float(loss.detach()), **parts,
                   "grad_norm": gnorm,
                   "adjoint_iters": solver["adjoint"].iterations if "adjoint" in solver else 0,
                   "n_points": len(sample.points), "sigma": sample.sigma, "normals": sample.has_normals,
                   "shape": sample.name, "seconds": round(time.time() - ts, 2), "minutes": round(t_train / 60, 2)}
            history.append(rec)
            terms = " ".join(f"{k} {parts[k]:.3f}" for k in LOSS_KEYS if k in parts)
            log(f"step {step}/{pretrain_end + oc.steps} [stage {rec['stage']}] loss {rec['loss']:.3f} ({terms}) "
                f"N {rec['n_points']} sigma {sample.sigma} nrm {int(sample.has_normals)} V {parts['unknowns']} "
                f"cg {parts['cg_iters']}/{rec['adjoint_iters']} {rec['seconds']}s [{t_train / 60:.1f} min]")
            if step % max(1, oc.checkpoint_every) == 0:
                save_ckpt()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: saving checkpoint")
    t_train = time.time() - t0
    runs = runs + [{"steps_config": oc.steps, "resumed_at_step": start_step, "ended_at_step": step}]
    save_ckpt()
    if interrupted:
        log(f"checkpoint saved to {ckpt}; rerun with --resume to continue")
        raise SystemExit(130)
    out = _abs(cfg.output)
    if out_dir is not None:
        out = _abs(out_dir) / out.name
    tail = history[-50:]
    final = {k: float(np.mean([h[k] for h in tail if k in h])) for k in ("loss",) + LOSS_KEYS
             if any(k in h for h in tail)}
    model.meta = {"command": command or f"recon train kernel --config {src or '<defaults>'}", "config": cfg_dict,
                  "seed": cfg.seed, "steps": step, "runs": runs, "train_minutes": round(t_train / 60, 2),
                  "data_minutes": round(t_data / 60, 2), "device": str(device), "torch": str(torch.__version__),
                  "pretrain_steps": pretrain_end, "shapes": [s.name for s in shapes],
                  "train_meshes": list(cfg.data.meshes), "final_losses_mean_last_50": final}
    model.save(out)
    record = dict(model.meta)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    hist = out.with_name(out.stem + "_history.csv")
    keys = ["step", "stage", "loss", *LOSS_KEYS, "n_points", "sigma", "normals", "unknowns", "cg_iters", "seconds",
            "minutes"]
    hist.write_text(",".join(keys) + "\n" + "".join(",".join(str(h.get(k, "")) for k in keys) + "\n" for h in history))
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), {hist.name}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m recon.backends.kernel.learned.train",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train/kernel-train.yaml")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint if it matches the config")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    cmd = "python -m recon.backends.kernel.learned.train " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        train(a.config, resume=a.resume, steps=a.steps, out_dir=a.out, command=cmd)
    except ReconError as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
