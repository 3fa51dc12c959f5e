"""Benchmark the kernel backend against Open3D Poisson (depth 8 and 9) on the shared meshes and scans.

Settings (every mesh normalised to unit longest side; inputs from ``common.prepare_input``):

* (a) ``clean``:   200k samples with the exact normals;
* (b) ``noisy``:   200k samples + N(0, 0.005^2) per coordinate, exact normals;
* (c) ``sparse``:  5k clean samples, exact normals;
* (d) ``large``:   1M clean samples on a few meshes, time and peak RSS (plus the growth
  100k -> 1M -> 3M points on one mesh, plotted to results/images/points_growth.png);
* (e) ``est-*``:   (a)-(c) again with normals from ``recon.normals.estimate_normals`` (PCA + MST),
  the same estimated normals for every method (estimated once per input, cached);
* real scans (gargoyle, PCL table scene, chunked Autzen lidar): no error, share of mesh vertices
  farther than 2 finest voxels from every input point, and a screenshot each.

Every reconstruction runs in a fresh spawned process (``common.run_isolated``); metrics come from
``recon.eval.evaluate_meshes``. Results are cached per case in benchmarks/.cache/points_results.json
(keyed by the input file and :data:`KERNEL_VERSION`) and the markdown is rewritten after every case.

    python benchmarks/bench_points.py                 # full run -> results/points.md
    python benchmarks/bench_points.py --quick         # 3 meshes, smaller inputs, no 1M/3M, no scans
    python benchmarks/bench_points.py --meshes spot bunny --sets clean sparse
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import (  # noqa: E402
    CACHE_DIR, EVAL_SEED, NOISE_SIGMA, RESULTS_DIR, Timer, list_meshes, load_case, machine_info, markdown_table,
    mean_finite, now_utc, peak_rss_mib, prepare_input, run_isolated,
)

KERNEL_VERSION = "k7"  # bump when the kernel backend changes so cached kernel results refresh
TAUS = (0.005, 0.01)
METHODS = ("kernel", "poisson8", "poisson9")
LARGE_MESHES = ("stanford-bunny", "armadillo", "dragon")
EST_MESHES = ("stanford-bunny", "armadillo", "fandisk")
GROWTH_MESH = "stanford-bunny"
GROWTH_SIZES = (100_000, 1_000_000, 3_000_000)
SCANS = (
    ("gargoyle", "srb_gargoyle/gargoyle.ply", None),
    ("table_scene_mug", "pcl/table_scene_mug_stereo_textured.pcd", None),
    ("autzen (chunked)", "lidar/autzen_trim.laz", 0.25),
)
IMAGES = RESULTS_DIR / "images"


# --------------------------------------------------------------------------- cases (child processes)


def run_case(cache_file: str, method: str, eval_samples: int, normals_file: str | None = None,
             evaluate: bool = True) -> dict:
    """Reconstruct one prepared input with one method and score it; runs in a spawned process.

    Args:
        cache_file: prepared input (.npz from ``common.prepare_input``).
        method: "kernel", "poisson8" or "poisson9".
        eval_samples: samples per surface for the metrics.
        normals_file: .npy of (N, 3) estimated normals replacing the exact ones (setting e).
        evaluate: compute the metrics (False for the pure timing runs of setting d).

    Returns:
        metrics, ``fit_seconds`` (reconstruction incl. meshing, wall s), ``peak_rss_mib`` after it.
    """
    import warnings

    from recon.types import PointCloud

    gt, cloud = load_case(cache_file)
    if normals_file:
        cloud = PointCloud(cloud.points, np.load(normals_file))
    info: dict = {}
    # imports before the timer (torch / open3d loading is not part of either method's time)
    import open3d  # noqa: F401

    from recon.backends.kernel import KernelConfig, KernelReconstructor
    from recon.backends.kernel.precond import have_fast_smoother  # noqa: F401 (imports pyamg)
    from recon.backends.poisson import PoissonBackend, PoissonConfig

    with Timer() as t:
        if method == "kernel":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                field = KernelReconstructor(KernelConfig(device="cpu")).reconstruct(cloud.points, cloud.normals)
            t_fit = time.perf_counter()
            mesh = field.extract_mesh()
            info = {k: round(v, 3) for k, v in field.timings.items()}
            info["mesh"] = round(time.perf_counter() - t_fit, 3)
            info["voxel_size"] = field.voxel_size
            info["iterations"] = field.solver_info.iterations
            info["unknowns"] = field.solver_info.unknowns
        else:
            mesh = PoissonBackend(PoissonConfig(depth=int(method[-1]))).fit(cloud)
    rss = peak_rss_mib()
    out = {"fit_seconds": t.seconds, "peak_rss_mib": rss, "faces": int(mesh.n_faces), "stages": info}
    if evaluate:
        from recon.eval.metrics import evaluate_meshes

        d = evaluate_meshes(mesh, gt, n_samples=eval_samples, tau=TAUS, relative=True, seed=EVAL_SEED).to_dict()
        out.update({"chamfer_l1": d["chamfer_l1"], "f@0.005": d["f@0.005"], "f@0.01": d["f@0.01"],
                    "nc": d["normal_consistency"]})
    return out


def estimate_case_normals(cache_file: str, out_file: str) -> dict:
    """Estimate (PCA + MST) normals of a prepared input once and store them (.npy)."""
    from recon.normals import estimate_normals

    _, cloud = load_case(cache_file)
    with Timer() as t:
        n = estimate_normals(cloud.points, method="pca", orient="mst")
    np.save(out_file, n.astype(np.float32))
    agree = float(np.mean(np.sum(n * cloud.normals, 1) > 0))
    return {"seconds": t.seconds, "agree": agree}


def run_scan(path: str, chunk_fraction: float | None, image: str) -> dict:
    """Reconstruct a real scan with the kernel backend, measure far vertices, save a screenshot."""
    import warnings

    from scipy.spatial import cKDTree

    from recon.backends.kernel import KernelConfig, KernelReconstructor
    from recon.io import load_point_cloud

    cloud = load_point_cloud(path)
    ext = float(np.ptp(cloud.points, axis=0).max())
    chunk = chunk_fraction * ext if chunk_fraction else None
    with Timer() as t:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            field = KernelReconstructor(KernelConfig(device="cpu", chunk_size=chunk)).reconstruct(
                cloud.points, cloud.normals, getattr(cloud, "sensors", None))
        mesh = field.extract_mesh()
    rss = peak_rss_mib()
    h = field.voxel_size
    d, _ = cKDTree(cloud.points).query(mesh.vertices, workers=-1) if mesh.n_vertices else (np.zeros(0), None)
    far = float(np.mean(d > 2 * h)) if len(d) else float("nan")
    _screenshot(mesh, image)
    return {"fit_seconds": t.seconds, "peak_rss_mib": rss, "points": int(len(cloud.points)), "voxel_size": h,
            "faces": int(mesh.n_faces), "far_share": far, "max_dist_voxels": float(d.max() / h) if len(d) else 0.0,
            "chunk_size": chunk, "tiles": len(field.fields) if hasattr(field, "fields") else 1,
            "normals": "file" if cloud.normals is not None else "estimated"}


def _screenshot(mesh, image: str) -> None:
    import pyvista as pv

    faces = np.hstack([np.full((mesh.n_faces, 1), 3), mesh.faces]).astype(np.int64).ravel()
    pl = pv.Plotter(off_screen=True, window_size=(900, 700))
    pl.add_mesh(pv.PolyData(np.asarray(mesh.vertices, dtype=np.float64), faces), color="lightsteelblue",
                smooth_shading=True)
    pl.view_isometric()
    pl.screenshot(image)
    pl.close()


# --------------------------------------------------------------------------- driver


def _floor(cache_file: Path, eval_samples: int) -> float:
    from recon.ops.sampling import face_areas_normals

    gt, _ = load_case(cache_file)
    area = float(face_areas_normals(gt.vertices, gt.faces)[0].sum())
    return 0.5 / (eval_samples / area) ** 0.5


def _watertight(cache_file: Path) -> bool:
    import trimesh

    gt, _ = load_case(cache_file)
    return bool(trimesh.Trimesh(gt.vertices, gt.faces, process=True).is_watertight)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meshes", nargs="*", help="subset: names, stems or substrings (default: all)")
    ap.add_argument("--quick", action="store_true", help="3 meshes, 50k/2k points, 20k eval samples, no d/scans")
    ap.add_argument("--sets", nargs="*", default=None,
                    help="subset of: clean noisy sparse large est-clean est-noisy est-sparse growth scans")
    ap.add_argument("--out", type=Path, default=None, help="results markdown (default results/points.md)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached per-case results")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per case")
    args = ap.parse_args(argv)

    n_dense, n_sparse = (50_000, 2_000) if args.quick else (200_000, 5_000)
    eval_samples = 20_000 if args.quick else 100_000
    all_sets = ["clean", "noisy", "sparse", "large", "est-clean", "est-noisy", "est-sparse", "growth", "scans"]
    sets = args.sets or (["clean", "noisy", "sparse"] if args.quick else all_sets)
    only = args.meshes or (["stanford-bunny", "spot", "fandisk"] if args.quick else None)
    out = args.out or RESULTS_DIR / ("points_quick.md" if args.quick else "points.md")
    store_file = CACHE_DIR / "points_results.json"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    store: dict = {} if args.fresh or not store_file.exists() else json.loads(store_file.read_text())
    rows: list[dict] = []
    extra: dict = {"growth": [], "scans": [], "normals": {}}
    t_all = time.perf_counter()

    def flush() -> None:
        store_file.write_text(json.dumps(store, indent=1, default=float))
        out.write_text(render(rows, extra, sets, n_dense, n_sparse, eval_samples, time.perf_counter() - t_all))

    def case(key: str, fn, kwargs: dict) -> dict:
        res = store.get(key)
        if res is None or res.get("error"):
            res = run_isolated(fn, kwargs, timeout=args.timeout)
            store[key] = res
        return res

    def tag(method: str) -> str:
        return f"{method}{KERNEL_VERSION}" if method == "kernel" else method

    paths = list_meshes(only=only)
    plan = []  # (setting, variant, n, normals from estimation?, mesh paths, evaluate)
    for s in sets:
        if s in ("clean", "noisy", "sparse", "est-clean", "est-noisy", "est-sparse"):
            base = s.replace("est-", "")
            variant = "noisy" if base == "noisy" else "clean"
            n = n_sparse if base == "sparse" else n_dense
            meshes = paths
            if s.startswith("est-") and not args.meshes:
                meshes = [p for p in paths if any(k in common.mesh_name(p) for k in EST_MESHES)]
            plan.append((s, variant, n, s.startswith("est-"), meshes, True))
        elif s == "large":
            meshes = paths if args.meshes else [p for p in paths if any(k in common.mesh_name(p)
                                                                           for k in LARGE_MESHES)][:3]
            plan.append((s, "clean", 1_000_000, False, meshes, False))
    for setting, variant, n, est, meshes, evaluate in plan:
        for path in meshes:
            cs = prepare_input(path, variant, n_points=n, sigma=NOISE_SIGMA)
            if cs is None:
                continue
            normals_file = None
            if est:
                normals_file = str(cs.cache_file.with_suffix(".est_normals.npy"))
                nkey = f"{cs.cache_file.stem}|estnormals"
                if not Path(normals_file).exists():
                    store.pop(nkey, None)
                extra["normals"][f"{cs.name} {setting}"] = case(nkey, estimate_case_normals,
                                                               {"cache_file": str(cs.cache_file),
                                                                "out_file": normals_file})
            floor = _floor(cs.cache_file, eval_samples)
            wt = _watertight(cs.cache_file) if setting == "clean" else None
            methods = ("kernel", "poisson9") if setting == "large" else METHODS
            for m in methods:
                key = f"{cs.cache_file.stem}|{setting}|{tag(m)}|e{eval_samples}"
                res = case(key, run_case, {"cache_file": str(cs.cache_file), "method": m,
                                           "eval_samples": eval_samples, "normals_file": normals_file,
                                           "evaluate": evaluate})
                rows.append({"setting": setting, "mesh": cs.name, "method": m, "floor": floor, "watertight": wt,
                             **res})
                _print(rows[-1])
                flush()
    if "growth" in sets:
        gp = list_meshes(only=[GROWTH_MESH])[:1]
        for n in GROWTH_SIZES:
            cs = prepare_input(gp[0], "clean", n_points=n)
            for m in ("kernel", "poisson9"):
                key = f"{cs.cache_file.stem}|growth|{tag(m)}"
                res = case(key, run_case, {"cache_file": str(cs.cache_file), "method": m,
                                           "eval_samples": eval_samples, "evaluate": False})
                extra["growth"].append({"n": n, "method": m, **res})
                print(f"growth {n:>9,} {m:9s} {res.get('fit_seconds', float('nan')):.1f}s "
                      f"{res.get('peak_rss_mib', float('nan')):.0f}MiB {res.get('error') or ''}", flush=True)
                flush()
        _plot_growth(extra["growth"])
        flush()
    if "scans" in sets:
        root = common.SHARED_DATA / "scans"
        for name, rel, frac in SCANS:
            img = IMAGES / f"points_scan_{name.split()[0]}.png"
            key = f"scan|{rel}|{KERNEL_VERSION}"
            if not img.exists():
                store.pop(key, None)
            res = case(key, run_scan, {"path": str(root / rel), "chunk_fraction": frac, "image": str(img)})
            extra["scans"].append({"name": name, "file": rel, "image": img.name, **res})
            print(f"scan {name}: {res}", flush=True)
            flush()
    flush()
    print(f"wrote {out}")
    return 0


def _print(r: dict) -> None:
    if r.get("error"):
        print(f"{r['setting']:10s} {r['mesh']:38s} {r['method']:9s} ERROR {r['error']}", flush=True)
        return
    cd = f"CD {r['chamfer_l1']:.5f} F01 {r['f@0.01']:.3f} NC {r['nc']:.4f}" if "chamfer_l1" in r else ""
    print(f"{r['setting']:10s} {r['mesh']:38s} {r['method']:9s} {cd} {r['fit_seconds']:.1f}s "
          f"{r['peak_rss_mib']:.0f}MiB", flush=True)


def _plot_growth(growth: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for m, style in (("kernel", "o-"), ("poisson9", "s--")):
        g = [r for r in growth if r["method"] == m and not r.get("error")]
        if not g:
            continue
        ax[0].plot([r["n"] for r in g], [r["fit_seconds"] for r in g], style, label=m)
        ax[1].plot([r["n"] for r in g], [r["peak_rss_mib"] / 1024 for r in g], style, label=m)
    for a, yl in zip(ax, ("wall time (s)", "peak RSS (GiB)")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("input points")
        a.set_ylabel(yl)
        a.grid(True, which="both", alpha=0.3)
        a.legend()
    fig.suptitle(f"{GROWTH_MESH}: growth with the number of points (fresh process per run)")
    fig.tight_layout()
    fig.savefig(IMAGES / "points_growth.png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- report

_COLS = ("chamfer_l1", "floor", "f@0.005", "f@0.01", "nc", "fit_seconds", "peak_rss_mib")


def _means(rows: list[dict], setting: str, method: str) -> tuple[list[float], int]:
    sel = [r for r in rows if r["setting"] == setting and r["method"] == method and not r.get("error")]
    return [mean_finite(r.get(c) for r in sel)[0] for c in _COLS], len(sel)


def _verdicts(rows: list[dict], setting: str) -> list[str]:
    """PASS/MISS lines for one setting against the targets of the task."""
    k, nk = _means(rows, setting, "kernel")
    p8, _ = _means(rows, setting, "poisson8")
    p9, n9 = _means(rows, setting, "poisson9")
    if nk == 0 or n9 == 0:
        return []
    out = []
    fmt = common.fmt
    base = setting.replace("est-", "")
    if base == "clean":
        ratio = k[0] / p9[0]
        out.append(f"- Chamfer kernel / Poisson d9 = {ratio:.3f} (target <= 1.1): **{'PASS' if ratio <= 1.1 else 'MISS'}**")
        wt = [r for r in rows if r["setting"] == setting and r["method"] == "kernel" and r.get("watertight")
              and not r.get("error")]
        bad = [f"{r['mesh']} ({r['f@0.01']:.3f})" for r in wt if r["f@0.01"] < 0.99]
        if wt and setting == "clean":
            out.append(f"- F@0.01 >= 0.99 on every watertight mesh ({len(wt)}): "
                       f"**{'PASS' if not bad else 'MISS'}**" + (f", below: {', '.join(bad)}" if bad else ""))
    elif base in ("noisy", "sparse"):
        best = min(p8[0], p9[0])
        ratio = k[0] / best
        out.append(f"- Chamfer kernel / better Poisson ({fmt(best)}) = {ratio:.3f} (target <= 0.9): "
                   f"**{'PASS' if ratio <= 0.9 else 'MISS'}**")
        pnc = p8[4] if p8[0] <= p9[0] else p9[4]
        out.append(f"- NC kernel {fmt(k[4])} vs that Poisson {fmt(pnc)} (target >=): "
                   f"**{'PASS' if k[4] >= pnc else 'MISS'}**")
    return out


def render(rows: list[dict], extra: dict, sets: list[str], n_dense: int, n_sparse: int, eval_samples: int,
           total: float) -> str:
    mi = machine_info()
    cmd = "python benchmarks/bench_points.py" + ("" if not sys.argv[1:] else " " + " ".join(sys.argv[1:]))
    head = [
        "# Kernel backend vs Open3D Poisson: points benchmark",
        "",
        f"- Command: `{cmd}`; written {now_utc()}, {total / 60:.1f} min into the run "
        f"(load average {os.getloadavg()[0]:.1f}: the 2-core machine is shared, so compare times within a row).",
        f"- Machine: {mi['cpu']}, {mi['cores']} cores, {mi['ram']} RAM, no GPU; {mi['versions']}",
        "- Inputs: each mesh normalised to unit longest side (`benchmarks/common.py`); area-weighted samples "
        f"(seed 0) with exact normals. clean/noisy: {n_dense:,} points (noisy: + N(0, {NOISE_SIGMA}^2) per "
        f"coordinate); sparse: {n_sparse:,} clean points; large: 1M clean points. `est-*`: the same inputs with "
        "normals from `recon.normals.estimate_normals(method='pca', orient='mst')` (same normals for all methods).",
        "- Methods: `kernel` = `KernelConfig()` defaults (time includes meshing); `poisson8/9` = "
        "`PoissonConfig(depth=8|9)` (density trim 0.02). Each case in a fresh process; peak RSS = ru_maxrss of "
        "that process right after the reconstruction (interpreter, libraries and input included).",
        f"- Metrics: `recon.eval.evaluate_meshes`, {eval_samples:,} samples per surface; CD-L1 = 0.5 (acc + comp); "
        "F at tau 0.005 / 0.01; NC. `floor` = 0.5 / sqrt(samples / GT area): the CD-L1 of a perfect "
        "reconstruction with this many samples (~0.0021 on these shapes), so ratios near the floor are compressed.",
        "",
    ]
    parts = head
    settings = [s for s in ("clean", "noisy", "sparse", "est-clean", "est-noisy", "est-sparse", "large")
                if any(r["setting"] == s for r in rows)]
    summary, verdicts = [], []
    for s in settings:
        for m in METHODS:
            means, n = _means(rows, s, m)
            if n:
                summary.append([s, m, *means, str(n)])
        ks, _ = _means(rows, s, "kernel")
        p9s, _ = _means(rows, s, "poisson9")
        if s != "large" and summary:
            summary.append([s, "**kernel / poisson9**", ks[0] / p9s[0], "", "", "", "", ks[5] / p9s[5],
                            ks[6] / p9s[6], ""])
        v = _verdicts(rows, s)
        if v:
            verdicts += [f"**{s}**", *v, ""]
    if "large" in settings:
        k, nk = _means(rows, "large", "kernel")
        p, n9 = _means(rows, "large", "poisson9")
        tr = k[5] / p[5]
        summary.append(["large", "**kernel / poisson9**", "", "", "", "", "", tr, k[6] / p[6], ""])
        verdicts += ["**large (1M)**",
                     f"- time kernel / Poisson d9 = {tr:.2f} (target <= 0.5): **{'PASS' if tr <= 0.5 else 'MISS'}**",
                     f"- peak RSS kernel {k[6] / 1024:.2f} GiB (target <= 4): "
                     f"**{'PASS' if k[6] <= 4096 else 'MISS'}**", ""]
    parts += ["## Mean per setting", "",
              markdown_table(["setting", "method", "CD-L1", "floor", "F@0.005", "F@0.01", "NC", "time s",
                              "peak RSS MiB", "meshes"], summary), "", "## Targets", "", *verdicts]
    if extra["growth"]:
        g = extra["growth"]
        tab = [[f"{r['n']:,}", r["method"], r.get("fit_seconds"), r.get("peak_rss_mib"),
                _stages(r) if r["method"] == "kernel" else (r.get("error") or "")] for r in g]
        parts += ["## Growth with the number of points (one mesh)", "",
                  markdown_table(["points", "method", "time s", "peak RSS MiB", "kernel stages s"], tab), "",
                  "![growth](images/points_growth.png)", ""]
    if extra["scans"]:
        tab = [[s["name"], s.get("points"), s.get("normals", ""), s.get("voxel_size"), s.get("tiles"),
                s.get("fit_seconds"), s.get("peak_rss_mib"), s.get("faces"), s.get("far_share"),
                s.get("error") or "ok"] for s in extra["scans"]]
        parts += ["## Real scans (kernel defaults)", "",
                  "`far` = share of mesh vertices farther than 2 finest voxels from every input point (sheets "
                  "away from the data; trimming removes faces beyond 2 voxels, so this should be ~0).", "",
                  markdown_table(["scan", "points", "normals", "voxel", "tiles", "time s", "peak RSS MiB", "faces",
                                  "far", "status"], tab), ""]
        parts += [f"![{s['name']}](images/{s['image']})" for s in extra["scans"] if not s.get("error")] + [""]
    if extra["normals"]:
        tab = [[k, v.get("seconds"), v.get("agree")] for k, v in extra["normals"].items()]
        parts += ["## Normal estimation for the est-* settings", "",
                  markdown_table(["input", "seconds", "share agreeing with GT orientation"], tab), ""]
    for s in settings:
        tab = []
        for r in rows:
            if r["setting"] != s:
                continue
            if r.get("error"):
                tab.append([r["mesh"], r["method"], "error: " + r["error"][:70], "", "", "", "", "", "", ""])
                continue
            tab.append([r["mesh"], r["method"], r.get("chamfer_l1"), r["floor"], r.get("f@0.005"), r.get("f@0.01"),
                        r.get("nc"), r["fit_seconds"], r["peak_rss_mib"],
                        _stages(r) if r["method"] == "kernel" else ""])
        parts += [f"## {s}", "", markdown_table(["mesh", "method", "CD-L1", "floor", "F@0.005", "F@0.01", "NC",
                                                 "time s", "peak RSS MiB", "kernel stages s"], tab), ""]
    return "\n".join(parts).rstrip() + "\n"


def _stages(r: dict) -> str:
    st = r.get("stages") or {}
    keys = ("hierarchy", "assembly", "solve", "mesh")
    s = " / ".join(f"{st[k]:.1f}" for k in keys if k in st)
    if "iterations" in st:
        s += f" ({st['iterations']} it, h {st.get('voxel_size', 0):.4g})"
    return s


if __name__ == "__main__":
    raise SystemExit(main())
