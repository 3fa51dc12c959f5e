"""Learned neural kernel vs the training-free kernel and Open3D Poisson (issue 9), side by side.

Reuses ``bench_points.py`` (its ``run_case`` for the training-free kernel and Poisson, its
``estimate_case_normals`` for the PCA + MST normals) and ``common.py`` (inputs, isolation,
tables), so one command runs every method on the same inputs in fresh processes:

* ``sparse-noisy-nonormals``: 3,000 points, sigma 0.005, **no normals**: learned (its own
  estimate + normal head) vs the training-free kernel and Poisson d8/d9 with PCA + MST normals;
* ``noisy`` (b): 200k points, sigma 0.005, exact normals: learned vs training-free;
* ``sparse`` (c): 5k clean points, exact normals: learned vs training-free;
* ``clean`` (a): 200k clean points, exact normals: learned vs training-free (Chamfer and time).

    python benchmarks/bench_learned_kernel.py                     # default mesh subset
    python benchmarks/bench_learned_kernel.py --meshes all        # every shared mesh
    python benchmarks/bench_learned_kernel.py --weights W.pt --sets sparse-noisy-nonormals

Writes benchmarks/results/learned_kernel.md (+ images/learned_kernel_loss.png from the weights'
training history). Per-case results are cached in .cache/learned_kernel_results.json keyed by the
weights file's hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_points  # noqa: E402
from common import (CACHE_DIR, EVAL_SEED, RESULTS_DIR, Timer, list_meshes, load_case, machine_info,  # noqa: E402
                    markdown_table, mean_finite, now_utc, peak_rss_mib, prepare_input, run_isolated)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO / "recon/backends/kernel/learned/weights/learned_kernel.pt"
DEFAULT_MESHES = ("stanford-bunny", "armadillo", "dragon", "fandisk", "buddha", "plate_holes", "spot")
SETTINGS = {  # name: (variant, points, sigma, methods, normals: "gt" | "pca")
    "sparse-noisy-nonormals": ("noisy", 3000, 0.005, ("learned", "kernel", "poisson8", "poisson9"), "pca"),
    "noisy": ("noisy", 200_000, 0.005, ("learned", "kernel"), "gt"),
    "sparse": ("clean", 5000, 0.0, ("learned", "kernel"), "gt"),
    "clean": ("clean", 200_000, 0.0, ("learned", "kernel"), "gt"),
}


def run_learned(cache_file: str, weights: str, eval_samples: int, use_normals: bool) -> dict:
    """Reconstruct one prepared input with the learned kernel and score it (spawned process)."""
    import warnings

    import torch

    from recon.backends.kernel import KernelConfig, KernelReconstructor
    from recon.backends.kernel.learned.infer import load_model
    from recon.eval.metrics import evaluate_meshes

    gt, cloud = load_case(cache_file)
    cfg = KernelConfig(model="learned", weights=weights, device="cpu")
    load_model(cfg, torch.device("cpu"))  # loading the weights is not part of the timed work
    from recon.normals import estimate_normals  # noqa: F401 (import before the timer)

    with Timer() as t:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            field = KernelReconstructor(cfg).reconstruct(cloud.points, cloud.normals if use_normals else None)
        t_fit = time.perf_counter()
        mesh = field.extract_mesh()
    info = {k: round(v, 3) for k, v in field.timings.items()}
    info["mesh"] = round(time.perf_counter() - t_fit, 3)
    info.update(voxel_size=field.voxel_size, iterations=field.solver_info.iterations,
                unknowns=field.solver_info.unknowns)
    out = {"fit_seconds": t.seconds, "peak_rss_mib": peak_rss_mib(), "faces": int(mesh.n_faces), "stages": info}
    d = evaluate_meshes(mesh, gt, n_samples=eval_samples, tau=bench_points.TAUS, relative=True,
                        seed=EVAL_SEED).to_dict()
    out.update({"chamfer_l1": d["chamfer_l1"], "f@0.005": d["f@0.005"], "f@0.01": d["f@0.01"],
                "nc": d["normal_consistency"]})
    return out


def _sha(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12] if path.is_file() else "missing"


def plot_history(weights: Path, image: Path) -> str:
    """Loss curves from the weights' ``_history.csv``: a PNG (matplotlib) and a small markdown table."""
    hist = weights.with_name(weights.stem + "_history.csv")
    if not hist.is_file():
        return "_no training history found next to the weights_"
    import csv

    rows = list(csv.DictReader(hist.open()))
    keys = [k for k in ("loss", "value", "normal", "tsdf", "udf", "structure", "normal_direct") if k in rows[0]]
    step = np.array([int(r["step"]) for r in rows])
    stage = np.array([int(r.get("stage") or 2) for r in rows])
    vals = {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in keys}

    def smooth(v: np.ndarray, w: int = 20) -> np.ndarray:
        """Trailing mean over the last ``w`` finite entries' window (NaN where the loss is not computed)."""
        ok = np.isfinite(v)
        c = np.cumsum(np.insert(np.where(ok, v, 0.0), 0, 0.0))
        n = np.cumsum(np.insert(ok.astype(float), 0, 0.0))
        lo = np.maximum(0, np.arange(len(v)) + 1 - w)
        cnt = n[1:] - n[lo]
        return np.where(ok & (cnt > 0), (c[1:] - c[lo]) / np.maximum(cnt, 1), np.nan)

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, (len(keys) + 1) // 2, figsize=(4 * ((len(keys) + 1) // 2), 6))
        for ax, k in zip(axes.ravel(), keys):
            ax.plot(step, vals[k], lw=0.5, alpha=0.4)
            ax.plot(step, smooth(vals[k]), lw=1.5)
            if (stage == 1).any() and (stage == 2).any():
                ax.axvline(step[stage == 2][0], color="k", lw=0.8, ls="--")
            ax.set_title(k)
            ax.set_xlabel("step (dashed: stage 2 starts)" if (stage == 1).any() else "step")
            ax.set_yscale("log")
        for ax in axes.ravel()[len(keys):]:
            ax.axis("off")
        fig.tight_layout()
        image.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(image, dpi=80)
        plt.close(fig)
        pic = f"![loss curves](images/{image.name})\n\n"
    except ImportError:
        pic = ""
    chunks = [c for st in (1, 2) for c in np.array_split(np.nonzero(stage == st)[0], min(8, int((stage == st).sum())))
              if (stage == st).any() and len(c)]
    body = [[f"{step[c[0]]}-{step[c[-1]]}", str(stage[c[0]])] +
            [f"{np.nanmean(vals[k][c]):.4f}" if np.isfinite(vals[k][c]).any() else "" for k in keys] for c in chunks]
    return (pic + "Mean losses per block of steps (noisy: every step draws a new shape, size, noise and normal "
            "mode; stage 1 trains without the solve, so the field terms are blank there; the total is each "
            "stage's own weighted sum):\n\n" + markdown_table(["steps", "stage"] + keys, body))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meshes", nargs="*", default=None, help="names/substrings, or 'all' (default: a 7-mesh subset)")
    ap.add_argument("--sets", nargs="*", default=list(SETTINGS), help=f"subset of {list(SETTINGS)}")
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--eval-samples", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "learned_kernel.md")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--timeout", type=float, default=1200.0)
    args = ap.parse_args(argv)
    args.counts = {"computed": 0, "cached": 0}
    only = None if args.meshes == ["all"] else (args.meshes or list(DEFAULT_MESHES))
    paths = list_meshes(only=only)
    store_file = CACHE_DIR / "learned_kernel_results.json"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    store: dict = {} if args.fresh or not store_file.exists() else json.loads(store_file.read_text())
    wtag = _sha(args.weights)
    rows: list[dict] = []
    t_all = time.perf_counter()
    meta = {}
    mj = args.weights.with_suffix(".json")
    if mj.is_file():
        meta = json.loads(mj.read_text())
    seen = {Path(m).stem for m in meta.get("train_meshes", [])}

    def flush() -> None:
        store_file.write_text(json.dumps(store, indent=1, default=float))
        args.out.write_text(render(rows, args, meta, seen, time.perf_counter() - t_all))

    for setting in args.sets:
        variant, n, sigma, methods, nmode = SETTINGS[setting]
        for path in paths:
            cs = prepare_input(path, variant, n_points=n, sigma=sigma if variant == "noisy" else 0.005)
            if cs is None:
                continue
            normals_file = None
            if nmode == "pca":
                normals_file = str(Path(cs.cache_file).with_suffix(".pca_normals.npy"))
                if not Path(normals_file).exists():
                    bench_points.estimate_case_normals(str(cs.cache_file), normals_file)
            for method in methods:
                version = wtag if method == "learned" else bench_points.KERNEL_VERSION
                key = f"{setting}|{cs.cache_file.name}|{method}|{version}|e{args.eval_samples}"
                res = store.get(key)
                args.counts["cached"] += 1
                if res is None or res.get("error"):
                    args.counts["cached"] -= 1
                    args.counts["computed"] += 1
                    if method == "learned":
                        kw = dict(cache_file=str(cs.cache_file), weights=str(args.weights),
                                  eval_samples=args.eval_samples, use_normals=nmode == "gt")
                        res = run_isolated(run_learned, kw, timeout=args.timeout)
                    else:
                        kw = dict(cache_file=str(cs.cache_file), method=method, eval_samples=args.eval_samples,
                                  normals_file=normals_file)
                        res = run_isolated(bench_points.run_case, kw, timeout=args.timeout)
                    store[key] = res
                rows.append({"setting": setting, "mesh": cs.name, "method": method, **res})
                print(f"{setting:24s} {cs.name:40s} {method:9s} CD {res.get('chamfer_l1', float('nan')):.6f} "
                      f"t {res.get('fit_seconds', float('nan')):.2f}s {res.get('error') or ''}", flush=True)
                flush()
    flush()
    return 0


def _mean(rows: list[dict], setting: str, method: str, key: str = "chamfer_l1", meshes: set | None = None) -> float:
    v, _ = mean_finite(r.get(key, float("nan")) for r in rows if r["setting"] == setting and r["method"] == method
                       and (meshes is None or r["mesh"] in meshes))
    return v


def render(rows: list[dict], args, meta: dict, seen: set, seconds: float) -> str:
    mi = machine_info()
    wname = args.weights.relative_to(REPO) if REPO in args.weights.resolve().parents else args.weights
    out = ["# Learned neural kernel vs training-free kernel and Poisson", "",
           f"- Command: `python benchmarks/bench_learned_kernel.py"
           f"{' --meshes ' + ' '.join(args.meshes) if args.meshes else ''}`; written {now_utc()}, "
           f"{seconds / 60:.1f} min into the run. It imports `bench_points.py` (`run_case`, "
           "`estimate_case_normals`) and `common.py`, so the training-free kernel and Poisson run side by side "
           "with the learned kernel on the same inputs (each case in a fresh process). Cases computed in this "
           f"invocation: {args.counts['computed']}; read from `.cache/learned_kernel_results.json` (computed by an "
           f"earlier invocation with the same inputs, weights and settings): {args.counts['cached']}.",
           f"- Machine: {mi.get('cpu', '')}; {mi.get('cores', '')} cores; shared with other jobs (compare times "
           "within a row).",
           f"- Weights: `{wname}`"
           f" ({meta.get('steps', '?')} steps, {meta.get('train_minutes', '?')} min of training, "
           f"command `{meta.get('command', '?')}`).",
           "- Meshes normalised to unit longest side (`benchmarks/common.py`). Methods: `learned` = "
           "`KernelConfig(model='learned')`; `kernel` = `KernelConfig()` (training-free); `poisson8/9` = Open3D "
           "screened Poisson. In `sparse-noisy-nonormals` the learned kernel gets no normals (it estimates PCA + MST "
           "normals and refines them with its normal head); kernel and Poisson get the same PCA + MST normals.",
           f"- Meshes seen in training (marked *): {', '.join(sorted(seen)) or 'none'}; all others are held out.",
           "- Metrics: `recon.eval.evaluate_meshes` (CD-L1 = 0.5 (acc + comp), F at 0.005 / 0.01, NC), "
           f"{args.eval_samples:,} samples per surface.", ""]
    out += ["## Means per setting", ""]
    table = []
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in rows)]
    for s in settings:
        for m in SETTINGS[s][3]:
            rr = [r for r in rows if r["setting"] == s and r["method"] == m]
            if not rr:
                continue
            table.append([s, m, f"{_mean(rows, s, m):.6f}", f"{_mean(rows, s, m, 'f@0.01'):.4f}",
                          f"{_mean(rows, s, m, 'nc'):.4f}", f"{_mean(rows, s, m, 'fit_seconds'):.2f}",
                          sum(1 for r in rr if not r.get("error"))])
    out += [markdown_table(["setting", "method", "CD-L1", "F@0.01", "NC", "time s", "meshes"], table), ""]
    out += ["## Targets (issue 9)", ""]

    def ratio(s: str, a: str, b: str, key: str = "chamfer_l1", meshes=None) -> float:
        return _mean(rows, s, a, key, meshes) / _mean(rows, s, b, key, meshes)

    def verdict(ok: bool) -> str:
        return "**PASS**" if ok else "**MISS**"

    held = {r["mesh"] for r in rows} - {r["mesh"] for r in rows if Path(r["mesh"]).stem in seen}
    if "sparse-noisy-nonormals" in settings:
        s = "sparse-noisy-nonormals"
        rk = ratio(s, "learned", "kernel")
        bp = min(_mean(rows, s, "poisson8"), _mean(rows, s, "poisson9"))
        rp = _mean(rows, s, "learned") / bp
        out += [f"- sparse + noisy, no normals: CD learned / training-free kernel = {rk:.3f} (target <= 0.8): "
                f"{verdict(rk <= 0.8)}; learned / better Poisson = {rp:.3f} (target <= 0.8): {verdict(rp <= 0.8)}"
                f"; held-out meshes only: {ratio(s, 'learned', 'kernel', meshes=held):.3f} vs kernel"]
    for s in ("noisy", "sparse"):
        if s in settings:
            r = ratio(s, "learned", "kernel")
            out += [f"- ({'b' if s == 'noisy' else 'c'}) {s}: CD learned / training-free = {r:.3f} (target <= 0.9): "
                    f"{verdict(r <= 0.9)}; held-out only {ratio(s, 'learned', 'kernel', meshes=held):.3f}"]
    if "clean" in settings:
        r = ratio("clean", "learned", "kernel")
        rt = ratio("clean", "learned", "kernel", "fit_seconds")
        out += [f"- (a) dense clean 200k: CD learned / training-free = {r:.3f} (target <= 1.05): {verdict(r <= 1.05)}; "
                f"time ratio = {rt:.2f} (target <= 2): {verdict(rt <= 2.0)}"]
    out += ["", "## Per mesh", ""]
    per = []
    for s in settings:
        for mesh in sorted({r["mesh"] for r in rows if r["setting"] == s}):
            cells = [s, mesh + (" *" if Path(mesh).stem in seen else "")]
            for m in ("learned", "kernel", "poisson8", "poisson9"):
                rr = [r for r in rows if r["setting"] == s and r["mesh"] == mesh and r["method"] == m]
                cells.append("" if not rr else (rr[0].get("error") or
                                                f"{rr[0]['chamfer_l1']:.6f} / {rr[0]['fit_seconds']:.1f}s"))
            per.append(cells)
    out += [markdown_table(["setting", "mesh", "learned CD / time", "kernel", "poisson8", "poisson9"], per), ""]
    out += ["## Training", ""]
    if meta:
        fl = meta.get("final_losses_mean_last_50", {})
        n_proc = sum(1 for s in meta.get("shapes", []) if s.startswith("proc"))
        p1 = meta.get("pretrain_steps", 0)
        stages = (f" ({p1} in stage 1 without the solve, {meta.get('steps', 0) - p1} through the solve)" if p1 else "")
        out += [f"- Command: `{meta.get('command')}`; seed {meta.get('seed')}; {meta.get('steps')} steps{stages} in "
                f"{meta.get('train_minutes')} min of training (shape building {meta.get('data_minutes')} min; 0 = read from "
                "the shape cache), "
                f"device {meta.get('device')}, torch {meta.get('torch')}.",
                f"- Data: {len(meta.get('shapes', []))} shapes ({n_proc}"
                f" procedural CSG, meshes {', '.join(meta.get('train_meshes', []))}).",
                "- Final losses (mean of the last 50 steps): " + ", ".join(f"{k} {v:.4f}" for k, v in fl.items()), ""]
    out += [plot_history(args.weights, RESULTS_DIR / "images" / "learned_kernel_loss.png"), ""]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
