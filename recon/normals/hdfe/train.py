"""Train the HDFE normal head: seeded, resumable, with cached encodings.

Usage::

    python -m recon.normals.hdfe.train --config configs/train/normals-hdfe.yaml [--resume | --fresh]

The training set is built from procedural SDF shapes (:mod:`recon.synthetic`) and the
training meshes of :data:`recon.normals.hdfe.data.TRAIN_MESHES` under the six PCPNet-style
conditions; the held-out meshes give a validation score (model vs PCA RMSE) every epoch.
A checkpoint (model, optimiser, RNG state, epoch) is written every
``train.checkpoint_every`` epochs and on Ctrl-C; ``resume=True`` continues from it.
The final weights are written to ``output`` with the command, config, data list,
seed and timings in ``meta`` and in a JSON file next to them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from recon.config import load_config_as, to_dict
from recon.errors import ConfigError, InputError, ReconError
from recon.io.outputs import check_writable_folder
from recon.io.torch_files import describe_error, load_tensors, to_plain
from recon.normals.hdfe import data as D
from recon.normals.hdfe.model import EncoderSpec, HDFEModel, HeadSpec

REPO = Path(__file__).resolve().parents[3]
#: what to do about a checkpoint that cannot be resumed
CHECKPOINT_FIX = "delete it (or rerun with --fresh) to start training again"


def _default_cache() -> str:
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "recon", "hdfe")


def _default_meshes() -> str:
    root = os.environ.get("RECON_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    return os.path.join(root, "meshes")


@dataclass
class DataConfig:
    n_points: int = 100_000  # points per training cloud (PCPNet clouds have 100k)
    queries_per_cloud: int = 2500  # patches drawn from each (shape, condition) cloud
    val_queries_per_cloud: int = 300  # patches per held-out (mesh, condition) cloud
    procedural: bool = True  # include the procedural SDF shapes
    meshes: list[str] = field(default_factory=lambda: list(D.TRAIN_MESHES))  # relative to mesh_dir
    held_out: list[str] = field(default_factory=lambda: list(D.HELD_OUT_MESHES))  # validation meshes
    conditions: list[str] = field(default_factory=lambda: list(D.CONDITIONS))


@dataclass
class OptimConfig:
    epochs: int = 60  # passes over the cached training set
    batch: int = 256
    lr: float = 1e-3  # Adam learning rate
    lr_min: float = 2e-5  # cosine decay floor
    weight_decay: float = 1e-5
    checkpoint_every: int = 2  # epochs between checkpoints
    max_minutes: float = 30.0  # wall-clock budget for the optimisation (stops early, saves)
    threads: int = 1  # torch threads


@dataclass
class TrainConfig:
    seed: int = 0  # seeds data sampling, query choice, init and batch order
    output: str = "recon/normals/hdfe/weights/hdfe_v2.pt"  # final weights, relative to the repo root
    cache_dir: str = field(default_factory=_default_cache)  # cached encodings and the checkpoint
    mesh_dir: str = field(default_factory=_default_meshes)  # the shared meshes folder
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    head: HeadSpec = field(default_factory=HeadSpec)
    data: DataConfig = field(default_factory=DataConfig)
    train: OptimConfig = field(default_factory=OptimConfig)


def _abs(p: str) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else REPO / q


def build_dataset(cfg: TrainConfig, theta: np.ndarray, log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Cached training and validation arrays: Xtr, Ytr, Xva, Yva (features float16, normals float32)."""
    cache = _abs(cfg.cache_dir)
    dc, enc = cfg.data, cfg.encoder
    conds = tuple(dc.conditions)
    xs, ys = [], []
    if dc.procedural:
        for i, (name, (f, b)) in enumerate(sorted(D.procedural_shapes().items())):  # shapes
            X, Y = D.cached_features(f"proc_{name}", lambda f=f, b=b, i=i: D.sdf_sampler(f, b, cfg.seed + i), conds,
                                     enc, theta, dc.n_points, dc.queries_per_cloud, cfg.seed + 11 * i, cache, log)
            xs.append(X)
            ys.append(Y)
    mesh_dir = _abs(cfg.mesh_dir)
    for i, rel in enumerate(dc.meshes):  # meshes
        path = mesh_dir / rel
        if not path.is_file():
            log(f"[skip] training mesh {path} not found")
            continue
        X, Y = D.cached_features(f"mesh_{rel}", lambda path=path: D.mesh_sampler(path), conds, enc, theta,
                                 dc.n_points, dc.queries_per_cloud, cfg.seed + 100 + i, cache, log)
        xs.append(X)
        ys.append(Y)
    vx, vy = [], []
    for i, rel in enumerate(dc.held_out):
        path = mesh_dir / rel
        if not path.is_file():
            log(f"[skip] held-out mesh {path} not found")
            continue
        X, Y = D.cached_features(f"val_{rel}", lambda path=path: D.mesh_sampler(path), conds, enc, theta,
                                 dc.n_points, dc.val_queries_per_cloud, cfg.seed + 500 + i, cache, log)
        vx.append(X)
        vy.append(Y)
    if not xs:
        raise ConfigError("no training data (procedural off and no mesh found)", None,
                          "set data.procedural: true or point mesh_dir at the shared meshes")
    out = {"Xtr": np.concatenate(xs), "Ytr": np.concatenate(ys)}
    if vx:
        out["Xva"], out["Yva"] = np.concatenate(vx), np.concatenate(vy)
    return out


def _same_run(a: dict | None, b: dict) -> bool:
    """Whether a checkpoint's config matches, ignoring the budget keys (train.epochs,
    train.max_minutes, train.checkpoint_every, train.threads), which may change on resume."""
    if not isinstance(a, dict):
        return False

    def strip(c: dict) -> dict:
        c = json.loads(json.dumps(c))
        for key in ("epochs", "max_minutes", "checkpoint_every", "threads"):
            c.get("train", {}).pop(key, None)
        return c

    try:
        return strip(a) == strip(b)
    except (TypeError, ValueError, AttributeError):  # a damaged config is not this run's
        return False


def sin_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |pred x target| (sine of the unoriented angle) over a (B, 3) batch of unit vectors."""
    return torch.linalg.norm(torch.cross(pred, target, dim=1), dim=1).mean()


def rmse_deg(pred: np.ndarray, target: np.ndarray) -> float:
    """Unoriented angle RMSE in degrees between (M, 3) unit vectors."""
    c = np.clip(np.abs(np.sum(pred * target, axis=1)), 0.0, 1.0)
    return float(np.degrees(np.sqrt(np.mean(np.arccos(c) ** 2))))


def train(config: str | os.PathLike | dict | TrainConfig | None = None, resume: bool = True,
          log: Callable[[str], None] | None = None) -> Path:
    """Train (or continue training) the HDFE head and write the weights.

    Args:
        config: YAML path, dict or :class:`TrainConfig` (None = defaults).
        resume: continue from the checkpoint in ``cache_dir`` when it matches the config.
        log: line printer (default: print to stderr, flushed).

    Returns:
        Path of the written weights file.
    """
    cfg, src = load_config_as(TrainConfig, config, "pass --config configs/train/normals-hdfe.yaml")
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    check_writable_folder(_abs(cfg.output).parent, option="output")  # before training, not after
    check_writable_folder(_abs(cfg.cache_dir), option="cache_dir")
    oc = cfg.train
    torch.set_num_threads(max(1, oc.threads))
    t_start = time.time()
    model = HDFEModel.new(cfg.encoder, cfg.head, seed=cfg.seed)
    log(f"building training set (cache: {_abs(cfg.cache_dir)})")
    ds = build_dataset(cfg, model.theta, log)
    t_data = time.time() - t_start
    Xtr, Ytr = torch.from_numpy(ds["Xtr"]), torch.from_numpy(ds["Ytr"])
    log(f"training patches: {len(Xtr)}, features: {Xtr.shape[1]}, data {t_data:.0f} s")
    opt = torch.optim.AdamW(model.head.parameters(), lr=oc.lr, weight_decay=oc.weight_decay)
    steps_per_epoch = (len(Xtr) + oc.batch - 1) // oc.batch
    total = oc.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (oc.lr_min + 0.5 * (oc.lr - oc.lr_min) * (1 + np.cos(np.pi * min(s, total) / total))) / oc.lr)
    ckpt = _abs(cfg.cache_dir) / "checkpoint.pt"
    cfg_dict = to_dict(cfg)
    epoch, history, t_train = 0, [], 0.0
    gen = torch.Generator().manual_seed(cfg.seed)
    st_runs: list[dict] = []
    if resume and ckpt.is_file():
        st = load_tensors(ckpt, what="HDFE training checkpoint", fix=CHECKPOINT_FIX)
        if _same_run(st.get("config"), cfg_dict):
            try:
                model.head.load_state_dict(st["head"])
                opt.load_state_dict(st["opt"])
                sched.load_state_dict(st["sched"])
                gen.set_state(st["gen"])
                epoch, history, t_train = int(st["epoch"]), list(st["history"]), float(st["t_train"])
                st_runs = st.get("runs", [{"epochs_config": st["config"]["train"]["epochs"],
                                           "resumed_at_epoch": 0, "ended_at_epoch": epoch}])
            except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
                raise InputError(f"checkpoint does not fit this model ({describe_error(e)})", ckpt,
                                 CHECKPOINT_FIX) from None
            log(f"resumed from {ckpt} at epoch {epoch}")
        else:
            log(f"checkpoint {ckpt} is from another config; starting fresh")

    def save_ckpt() -> None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save(to_plain({"config": cfg_dict, "head": model.head.state_dict(), "opt": opt.state_dict(),
                             "sched": sched.state_dict(), "gen": gen.get_state(), "epoch": epoch,
                             "history": history, "t_train": t_train}), tmp)
        os.replace(tmp, ckpt)

    def validate() -> tuple[float, float]:
        if "Xva" not in ds:
            return float("nan"), float("nan")
        model.head.eval()
        pred = model.predict_local(ds["Xva"].astype(np.float32))
        model.head.train()
        pca = np.zeros_like(pred)
        pca[:, 2] = 1.0
        return rmse_deg(pred, ds["Yva"]), rmse_deg(pca, ds["Yva"])

    interrupted = False
    start_epoch = epoch
    t0 = time.time() - t_train
    try:
        model.head.train()
        while epoch < oc.epochs:  # epochs
            if (time.time() - t0) / 60 > oc.max_minutes:
                log(f"time budget of {oc.max_minutes} min reached at epoch {epoch}")
                break
            perm = torch.randperm(len(Xtr), generator=gen)
            tot = 0.0
            for s in range(0, len(Xtr), oc.batch):  # mini-batches
                b = perm[s:s + oc.batch]
                loss = sin_loss(model.head(Xtr[b].float()), Ytr[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                tot += loss.detach().item() * len(b)
            epoch += 1
            t_train = time.time() - t0
            va, vp = validate()
            history.append({"epoch": epoch, "loss": tot / len(Xtr), "val_rmse": va, "val_pca_rmse": vp,
                            "minutes": t_train / 60})
            log(f"epoch {epoch}/{oc.epochs} loss {tot / len(Xtr):.4f} held-out RMSE {va:.2f} deg "
                f"(PCA frame {vp:.2f}) [{t_train / 60:.1f} min]")
            if epoch % max(1, oc.checkpoint_every) == 0:
                save_ckpt()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: saving checkpoint")
    t_train = time.time() - t0
    save_ckpt()
    if interrupted:
        log(f"checkpoint saved to {ckpt}; rerun with --resume to continue")
        raise SystemExit(130)
    runs = (st_runs if resume and ckpt.is_file() else [])
    model.meta = {"command": f"python -m recon.normals.hdfe.train --config {src or '<defaults>'}",
                  "runs": runs + [{"epochs_config": oc.epochs, "resumed_at_epoch": start_epoch,
                                   "ended_at_epoch": epoch}],
                  "config": cfg_dict, "seed": cfg.seed, "epochs": epoch, "train_patches": int(len(Xtr)),
                  "train_minutes": round(t_train / 60, 2), "data_minutes": round(t_data / 60, 2),
                  "procedural_shapes": sorted(D.procedural_shapes()) if cfg.data.procedural else [],
                  "train_meshes": list(cfg.data.meshes), "held_out_meshes": list(cfg.data.held_out),
                  "history": history, "torch": str(torch.__version__)}
    out = _abs(cfg.output)
    model.save(out)
    meta = dict(model.meta)
    meta["history"] = history[-5:]
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m recon.normals.hdfe.train", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="YAML config (configs/train/normals-hdfe.yaml)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--resume", dest="resume", action="store_true", default=True,
                   help="continue from the checkpoint if it matches the config (default)")
    g.add_argument("--fresh", dest="resume", action="store_false", help="ignore any checkpoint")
    a = ap.parse_args(argv)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _stop)  # also when started in the background (SIGINT ignored)
    signal.signal(signal.SIGTERM, _stop)  # `kill PID` saves a checkpoint as well

    try:
        train(a.config, resume=a.resume)
    except ReconError as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
