"""Normal estimation benchmark: HDFE vs PCA (ours and Open3D), orientation, speed.

Run (about 25-40 minutes on the shared 2-core machine)::

    python benchmarks/bench_normals.py            # writes benchmarks/results/normals.md
    python benchmarks/bench_normals.py --quick    # 2 meshes, 1000 queries, no orientation/speed
    python benchmarks/bench_normals.py --skip-accuracy --only feline   # orientation + speed only

The results file is rewritten after every mesh and every section, so an interrupted
run keeps what it measured (sections still running say so).

Threads: accuracy and orientation run on one thread (``OMP_NUM_THREADS=1``, HDFE
``threads=1``, orientation children pinned to one core); only the speed section uses
two threads (``OMP_NUM_THREADS=2``, HDFE on both cores).

Protocol (PCPNet-style, unoriented):

* every mesh in ../shared/data/meshes that trimesh can read, 100k area-weighted surface
  samples with exact face normals, under six conditions (Gaussian noise 0 / 0.125 % /
  0.6 % / 1.2 % of the bounding-box diagonal; "stripes" and "gradient" density
  variations, see ``recon.normals.hdfe.data``), seeds disjoint from training;
* 5000 random query points per cloud; error = RMS over queries of arccos|n . n_gt|
  in degrees; a condition's score is the mean over meshes, the average the mean over
  the six conditions;
* PCA at k in {10, 20, 50, 100} neighbours (plus the point), ours (numpy) and Open3D
  (``estimate_normals(KDTreeSearchParamKNN(k + 1))``); "best k" = the k with the lowest
  average over all conditions;
* HDFE with the committed weights; the training meshes overlap the benchmark, so the
  tables are also given for the held-out meshes only (the headline).
"""

from __future__ import annotations

import os

# Set before numpy/torch/Open3D start their thread pools; spawned children inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (RESULTS_DIR, SHARED_DATA, list_meshes, machine_info, markdown_table, mesh_name,  # noqa: E402
                    now_utc, run_isolated)

from recon.meshing.cleanup import mesh_volume  # noqa: E402
from recon.normals.hdfe import data as D  # noqa: E402
from recon.normals.hdfe.model import DEFAULT_WEIGHTS  # noqa: E402
from recon.types import Mesh  # noqa: E402

KS = (10, 20, 50, 100)
#: Open3D PCA is run at one k (it matches our numpy PCA to 1e-9 deg at every k; checked on fandisk/feline).
KS_O3D = (20,)
N_POINTS = 100_000
N_QUERIES = 5000
SEED = 20_000  # training uses seeds < 10_000
COND_LABEL = {"noise0": "None", "noise1": "Low", "noise2": "Med", "noise3": "High", "stripes": "Stripe",
              "gradient": "Grad"}
#: Speed targets for HDFE + orientation at 1M points (from the issue).
TARGET_S, TARGET_GIB = 90.0, 4.0
#: Open3D estimate + tangent-plane orientation: timed at 200k, then at 1M with this cap (s); when
#: the 1M run does not finish, the 200k time scaled by n log n gives a lower-bound estimate.
O3D_ORIENT_1M_TIMEOUT = 600.0


def rmse_deg(pred: np.ndarray, gt: np.ndarray) -> float:
    """Unoriented angle RMSE (degrees) of (M, 3) normals vs (M, 3) ground truth."""
    pred = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-30)
    gt = gt / np.maximum(np.linalg.norm(gt, axis=1, keepdims=True), 1e-30)
    c = np.clip(np.abs(np.sum(pred * gt, axis=1)), 0, 1)
    return float(np.degrees(np.sqrt(np.mean(np.arccos(c) ** 2))))


def pca_at(points: np.ndarray, q: np.ndarray, ks: tuple[int, ...], tree) -> dict[int, np.ndarray]:
    """(M, 3) PCA normals of the M query points for several k (k neighbours plus the point)."""
    _, idx = tree.query(points[q], k=max(ks) + 1, workers=1)
    out = {}
    for k in ks:  # a few k
        nb = points[idx[:, :k + 1]]
        nb = nb - nb.mean(axis=1, keepdims=True)
        _, v = np.linalg.eigh(np.einsum("mki,mkj->mij", nb, nb))
        out[k] = v[:, :, 0]
    return out


def o3d_at(points: np.ndarray, q: np.ndarray, ks: tuple[int, ...]) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """Open3D PCA normals (whole cloud, then the queries) and seconds per k."""
    import open3d as o3d

    out, secs = {}, {}
    for k in ks:
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        t = time.perf_counter()
        pcd.estimate_normals(search_param=o3d.geometry.KDTreeSearchParamKNN(k + 1))
        secs[k] = time.perf_counter() - t
        out[k] = np.asarray(pcd.normals)[q]
    return out, secs


def split_of(path: Path) -> str:
    rel = f"{path.parent.name}/{path.name}"
    return "held-out" if rel in D.HELD_OUT_MESHES else ("train" if rel in D.TRAIN_MESHES else "unused")


def accuracy(meshes: list[Path], n_queries: int, log, rows: list[dict], flush) -> None:
    """Appends one row per (mesh, condition) to ``rows``; calls ``flush()`` after each mesh."""
    from scipy.spatial import cKDTree

    from recon.normals.hdfe import hdfe_normals

    for mi, path in enumerate(meshes):  # meshes
        name = mesh_name(path)
        try:
            draw = D.mesh_sampler(path)
        except Exception as e:  # noqa: BLE001
            log(f"[skip] {name}: {type(e).__name__}: {str(e)[:100]}")
            continue
        for ci, cond in enumerate(D.CONDITIONS):  # six conditions
            s = SEED + 100 * mi + ci
            p, n = D.make_cloud(draw, N_POINTS, cond, s)
            p = p - p.mean(axis=0)
            q = np.random.default_rng(s).choice(len(p), size=n_queries, replace=False)
            tree = cKDTree(p)
            pca = pca_at(p, q, KS, tree)
            o3, _ = o3d_at(p, q, KS_O3D)
            t = time.perf_counter()
            h = hdfe_normals(p, query=q, threads=1)
            th = time.perf_counter() - t
            row = {"mesh": name, "split": split_of(path), "cond": cond, "hdfe": rmse_deg(h, n[q]), "hdfe_s": th}
            for k in KS:
                row[f"pca{k}"] = rmse_deg(pca[k], n[q])
            for k in KS_O3D:
                row[f"o3d{k}"] = rmse_deg(o3[k], n[q])
            rows.append(row)
            log(f"{name:40s} {cond:8s} hdfe {row['hdfe']:6.2f}  pca " +
                " ".join(f"{row[f'pca{k}']:6.2f}" for k in KS))
        flush()


def summarise(rows: list[dict], title: str) -> tuple[str, dict]:
    """Markdown table of condition means (over meshes) and the average over conditions."""
    if not rows:
        return f"### {title}\n\n(no rows yet)\n", {}
    methods = [f"pca{k}" for k in KS] + [f"o3d{k}" for k in KS_O3D] + ["hdfe"]
    table = {m: [] for m in methods}
    for cond in D.CONDITIONS:
        sel = [r for r in rows if r["cond"] == cond]
        for m in methods:
            table[m].append(float(np.mean([r[m] for r in sel])) if sel else float("nan"))
    avg = {m: float(np.mean(v)) for m, v in table.items()}
    best = min(KS, key=lambda k: avg[f"pca{k}"])
    best_o3 = min(KS_O3D, key=lambda k: avg[f"o3d{k}"])
    names = {f"pca{k}": f"PCA k={k}" for k in KS}
    names.update({f"o3d{k}": f"Open3D PCA k={k}" for k in KS_O3D})
    names["hdfe"] = "**HDFE**"
    body = []
    for m in [f"pca{k}" for k in KS] + [f"o3d{best_o3}", "hdfe"]:
        label = names[m] + (" (best k)" if m == f"pca{best}" else "")
        body.append([label] + [f"{v:.2f}" for v in table[m]] + [f"{avg[m]:.2f}"])
    hdr = ["method"] + [COND_LABEL[c] for c in D.CONDITIONS] + ["Avg"]
    ratio = avg["hdfe"] / avg[f"pca{best}"]
    n_mesh = len({r["mesh"] for r in rows})
    md = (f"### {title} ({n_mesh} meshes)\n\n" + markdown_table(hdr, body) + "\n\n"
          f"HDFE / best-k PCA average: **{ratio:.3f}** (target <= 0.85: "
          f"{'met' if ratio <= 0.85 else f'NOT met, gap {ratio - 0.85:+.3f}'}).\n")
    return md, {"ratio": ratio, "hdfe": avg["hdfe"], "pca_best": avg[f"pca{best}"], "best_k": best}


def pcpnet_armadillo(log) -> tuple[str, dict]:
    from scipy.spatial import cKDTree

    from recon.normals.hdfe import hdfe_normals

    root = SHARED_DATA / "normals" / "pcpnet_partial"
    xyz = root / "armadillo100k_first45292.xyz"
    if not xyz.is_file():
        return "(PCPNet armadillo files not found)\n", {}
    p = np.loadtxt(xyz)
    n_all = np.loadtxt(root / "armadillo100k.normals", max_rows=len(p))
    pidx = np.loadtxt(root / "armadillo100k.pidx", dtype=np.int64)
    q = pidx[pidx < len(p)]
    p = p - p.mean(axis=0)
    pca = pca_at(p, q, KS, cKDTree(p))
    o3, _ = o3d_at(p, q, KS)
    h = hdfe_normals(p, query=q, threads=1)
    res = {"hdfe": rmse_deg(h, n_all[q])}
    for k in KS:
        res[f"pca{k}"] = rmse_deg(pca[k], n_all[q])
        res[f"o3d{k}"] = rmse_deg(o3[k], n_all[q])
    log(f"pcpnet armadillo: {res}")
    hdr = ["method"] + [f"PCA k={k}" for k in KS] + [f"Open3D k={k}" for k in KS] + ["HDFE"]
    body = [["RMSE (deg)"] + [f"{res[f'pca{k}']:.2f}" for k in KS] + [f"{res[f'o3d{k}']:.2f}" for k in KS]
            + [f"{res['hdfe']:.2f}"]]
    md = (f"PCPNet armadillo100k, clean (no noise), {len(p)} of 100k points (the partial copy), "
          f"{len(q)} of the 5000 .pidx queries (indices < {len(p)}). Armadillo is a held-out shape for HDFE "
          "(the continuous-remeshing armadillo is not in training). Note the cloud is 45 % as dense as the "
          "original, so these are not comparable to published PCPNet numbers.\n\n" + markdown_table(hdr, body) + "\n")
    return md, res


def _pin_one_core() -> None:
    """Restrict this (child) process to one core, so every library uses one thread's worth."""
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass


#: Open3D's tangent-plane orientation is capped per mesh (it took 266 s on fandisk at 100k points); the cap
#: is generous so that every closed mesh is compared (issue 4 asks for "every shared closed mesh").
O3D_ORIENT_TIMEOUT = 900.0


def _orient_cloud(path: str, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Clean 100k cloud (recentred) with OUTWARD ground-truth normals, and whether the file is wound inward."""
    tm = D.load_mesh_file(path)
    vol = mesh_volume(Mesh(np.asarray(tm.vertices, np.float64), np.asarray(tm.faces, np.int64)))
    p, n = D.make_cloud(D.mesh_sampler(path), N_POINTS, "noise0", seed)
    n = n if vol >= 0 else -n  # inward-wound file: outward GT = -face normal
    return p - p.mean(axis=0), n, bool(vol < 0)


def _orient_case(path: str, seed: int) -> dict:
    """HDFE + MST and PCA + MST (estimate_normals) on one core: share against the outward GT."""
    _pin_one_core()
    import recon.normals.hdfe  # noqa: F401 - registers "hdfe"
    from recon.normals import estimate_normals

    p, n, flipped = _orient_cloud(path, seed)
    out: dict = {"gt_flipped": flipped}
    for method in ("hdfe", "pca"):
        t = time.perf_counter()
        est = estimate_normals(p, method=method, orient="mst")
        out[f"{method}_s"] = time.perf_counter() - t
        dots = np.sum(est * n, axis=1)
        out[method] = float(np.mean(dots < 0))
        # orientation errors only: among normals at least 17 deg from the tangent plane (|cos| >= 0.3)
        clear = np.abs(dots) >= 0.3
        out[f"{method}_clear"] = float(np.mean(dots[clear] < 0)) if clear.any() else float("nan")
    return out


def _orient_case_o3d(path: str, seed: int) -> dict:
    """Open3D PCA (k=20) + orient_normals_consistent_tangent_plane(10) on one core, same cloud."""
    _pin_one_core()
    import open3d as o3d

    p, n, _ = _orient_cloud(path, seed)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    t = time.perf_counter()
    pcd.estimate_normals(search_param=o3d.geometry.KDTreeSearchParamKNN(21))
    pcd.orient_normals_consistent_tangent_plane(10)
    return {"o3d_s": time.perf_counter() - t,
            "o3d": float(np.mean(np.sum(np.asarray(pcd.normals) * n, axis=1) < 0))}


def _facing(share: float) -> str:
    return "outward" if share < 0.5 else "INWARD"


def orientation(meshes: list[Path], log, rows: list[list[str]], flush) -> None:
    """Appends one table row per closed mesh to ``rows``; calls ``flush()`` after each."""
    import trimesh

    for mi, path in enumerate(meshes):
        try:
            tm = D.load_mesh_file(path)
            closed = bool(trimesh.Trimesh(tm.vertices, tm.faces, process=True).is_watertight)
        except Exception:  # noqa: BLE001
            continue
        if not closed:
            continue
        kw = {"path": str(path), "seed": SEED + 7000 + mi}
        r = run_isolated(_orient_case, kw, timeout=900)
        if r.get("error"):
            log(f"orientation {mesh_name(path)}: {r['error']}")
            rows.append([mesh_name(path), "error: " + r["error"][:60], "", "", "", "", "", "", ""])
            flush()
            continue
        ro = run_isolated(_orient_case_o3d, kw, timeout=O3D_ORIENT_TIMEOUT)
        log(f"orientation {mesh_name(path)}: {r} | open3d: {ro}")
        if ro.get("error"):
            o3_cells = [f"n/a ({ro['error'][:40]})", "n/a"]
            o3_s = f"> {O3D_ORIENT_TIMEOUT:.0f}" if "timeout" in ro["error"] else "error"
        else:
            o3_cells = [f"{100 * ro['o3d']:.2f} ({_facing(ro['o3d'])})", f"{100 * min(ro['o3d'], 1 - ro['o3d']):.2f}"]
            o3_s = f"{ro['o3d_s']:.1f}"
        rows.append([mesh_name(path), split_of(path), "yes" if r["gt_flipped"] else "no",
                     f"{100 * r['hdfe']:.2f} ({_facing(r['hdfe'])})", f"{100 * r['pca']:.2f} ({_facing(r['pca'])})"]
                    + o3_cells + [f"{r['hdfe_s']:.1f} / {r['pca_s']:.1f} / {o3_s}",
                                  f"{100 * r['hdfe_clear']:.2f} / {100 * r['pca_clear']:.2f}"])
        flush()


def orientation_md(rows: list[list[str]], done: bool) -> str:
    if not rows:
        return "(not run)" if done else "(running...)"
    hdr = ["closed mesh", "split", "file wound inward (GT flipped)", "HDFE + MST: % against GT",
           "PCA k=20 + MST: %", "Open3D PCA + tangent-plane MST (k=10): %", "Open3D ignoring a global flip: %",
           "seconds (HDFE / PCA / Open3D)", "% against GT where |n . n_gt| >= 0.3 (HDFE / PCA)"]
    stats = ""
    ok = [r for r in rows if len(r) == 9]
    if ok:
        def col(i: int) -> np.ndarray:
            return np.array([float(r[i].split()[0]) if r[i][:1].isdigit() else np.nan for r in ok])

        out = {m: int(np.sum(col(i) < 50)) for m, i in (("HDFE", 3), ("PCA", 4), ("Open3D", 5))}
        n_o3 = int(np.isfinite(col(5)).sum())
        stats = (f"\n\nMean share against GT over {len(ok)} meshes: HDFE + MST {col(3).mean():.2f} %, "
                 f"PCA + MST {col(4).mean():.2f} %; Open3D over the {n_o3} meshes it finished "
                 f"{np.nanmean(col(5)) if n_o3 else float('nan'):.2f} % (ignoring its global sign: "
                 f"{np.nanmean(col(6)) if n_o3 else float('nan'):.2f} %). Meshes that ended outward-facing "
                 f"(majority): HDFE {out['HDFE']}/{len(ok)}, PCA {out['PCA']}/{len(ok)}, "
                 f"Open3D {out['Open3D']}/{n_o3}.")
        o3, o3f = col(5), col(6)
        fin = np.isfinite(o3)
        for name, i in (("PCA + MST", 4), ("HDFE + MST", 3)):
            # shares are printed to 0.01 %, so compare at that resolution
            at_most = int(np.sum(np.round(col(i)[fin], 2) <= np.round(o3[fin], 2)))
            at_most_f = int(np.sum(np.round(col(i)[fin], 2) <= np.round(o3f[fin], 2)))
            stats += (f" {name}: at or below Open3D's share on {at_most}/{int(fin.sum())} meshes Open3D finished "
                      f"({at_most_f}/{int(fin.sum())} against Open3D's share ignoring its global sign).")
    return ("Clean 100k-point samples of every watertight shared mesh (one core per case). Share of normals with "
            "n . n_gt < 0 after orientation (lower is better); the ground truth is made outward: when the file's "
            "signed volume is negative (faces wound inward) its face normals are negated. In brackets: whether the "
            "majority of the oriented normals ended facing outward. Our MST orientation ends with an outward vote; "
            "Open3D's propagation has no outward rule, so its whole-cloud sign is arbitrary and the next column "
            f"shows min(share, 1 - share). Open3D is stopped after {O3D_ORIENT_TIMEOUT:.0f} s per mesh (n/a: it did "
            "not finish). The last column counts only normals at least 17 degrees away from the tangent plane "
            "(|n . n_gt| >= 0.3): a normal estimated nearly perpendicular to the true one (HDFE picking the "
            "other face at a sharp edge) is against the ground truth half the time whatever its sign, so that "
            "column separates orientation errors from estimation errors. HDFE normals take their signs from "
            "the MST-oriented PCA normals (see recon.normals.estimate_normals).\n\n" + markdown_table(hdr, rows) + stats
            + ("" if done else "\n\n(running...)") + "\n")


def _speed_case(n: int, which: str) -> dict:
    import torch

    torch.set_num_threads(2)
    path = SHARED_DATA / "meshes" / "continuous-remeshing" / "armadillo.obj"
    p, _ = D.make_cloud(D.mesh_sampler(path), n, "noise1", SEED + 999)
    p = p - p.mean(axis=0)
    from common import peak_rss_mib

    base = peak_rss_mib()
    out: dict = {}
    t = time.perf_counter()
    if which in ("hdfe", "pca"):
        import recon.normals.hdfe  # noqa: F401
        from recon.normals import estimate_normals

        estimate_normals(p, method=which, orient="mst")
    else:
        import open3d as o3d

        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
        pcd.estimate_normals(search_param=o3d.geometry.KDTreeSearchParamKNN(21))
        out["estimate_s"] = time.perf_counter() - t
        if which == "o3d_orient":
            pcd.orient_normals_consistent_tangent_plane(10)
    out.update({"seconds": time.perf_counter() - t, "rss_before_mib": base})
    return out


def speed(log, state: dict, flush) -> None:
    """Fills ``state["speed"]`` (markdown) step by step; 2 threads (OMP_NUM_THREADS=2)."""
    os.environ["OMP_NUM_THREADS"] = "2"  # inherited by the spawned children
    rows: list[list[str]] = []
    res: dict[str, dict] = {}
    header = ("1,000,000 points (armadillo, low noise), one fresh process per row, **2 threads** "
              f"(OMP_NUM_THREADS=2, torch 2 threads). Load average before this section: {state['load_speed']}. "
              f"Target for HDFE + orientation: <= {TARGET_S:.0f} s and <= {TARGET_GIB:.0f} GB peak RSS.\n\n")
    hdr = ["method", "seconds", "peak RSS (GiB)", "RSS after loading the cloud (GiB)", "vs target"]

    def render(note: str = "") -> None:
        state["speed"] = header + markdown_table(hdr, rows) + "\n" + note
        flush()

    for which, label in (("hdfe", "HDFE + MST (estimate_normals(method='hdfe'))"),
                         ("pca", "PCA k=20 + MST (estimate_normals(method='pca'))"),
                         ("o3d", "Open3D estimate_normals(KNN 21) only")):
        r = run_isolated(_speed_case, {"n": 1_000_000, "which": which}, timeout=1200)
        res[which] = r
        log(f"speed {which}: {r}")
        if r.get("error"):
            rows.append([label, r["error"], "", "", ""])
        else:
            gib = r["process_peak_rss_mib"] / 1024
            gap = ""
            if which == "hdfe":
                gap = ("met" if r["seconds"] <= TARGET_S and gib <= TARGET_GIB else
                       f"NOT met: {r['seconds'] - TARGET_S:+.1f} s, {gib - TARGET_GIB:+.2f} GiB")
            rows.append([label, f"{r['seconds']:.1f}", f"{gib:.2f}", f"{r['rss_before_mib'] / 1024:.2f}", gap])
        render("\n(running...)\n")
    # Open3D's orientation: 200k (a reference point), then 1M capped at O3D_ORIENT_1M_TIMEOUT.
    small = None
    for n, cap in ((200_000, 600.0), (1_000_000, O3D_ORIENT_1M_TIMEOUT)):
        r = run_isolated(_speed_case, {"n": n, "which": "o3d_orient"}, timeout=cap)
        log(f"speed o3d_orient {n}: {r}")
        label = f"Open3D estimate_normals(KNN 21) + orient_normals_consistent_tangent_plane(10), {n:,} points"
        if r.get("error"):
            rows.append([label, f"> {cap:.0f} (stopped)" if "timeout" in r["error"] else r["error"], "", "", ""])
        else:
            if n < 1_000_000:
                small = r
            rows.append([label + " (measured)", f"{r['seconds']:.1f}", f"{r['process_peak_rss_mib'] / 1024:.2f}",
                         f"{r['rss_before_mib'] / 1024:.2f}", ""])
        render("\n(running...)\n")
    note = ""
    if rows[-1][1].startswith(">") and small is not None:
        o_small = small["seconds"] - small["estimate_s"]
        est = o_small * (1_000_000 * np.log(1_000_000)) / (200_000 * np.log(200_000))
        note = (f"\nThe 1M Open3D orientation did not finish within {O3D_ORIENT_1M_TIMEOUT:.0f} s. For reference, its "
                f"orientation step took {o_small:.1f} s at 200k points; scaled by n log n that would be only "
                f"~{est:.0f} s at 1M, so its cost grows faster than n log n on this cloud.\n")
    render(note)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 meshes, 1000 queries, no orientation/speed")
    ap.add_argument("--only", nargs="*", help="mesh name filters")
    ap.add_argument("--out", default=str(RESULTS_DIR / "normals.md"))
    ap.add_argument("--queries", type=int, default=None, help="queries per cloud (default 5000; 1000 with --quick)")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-orient", action="store_true")
    a = ap.parse_args(argv)

    def log(s: str) -> None:
        print(s, flush=True)

    meshes = list_meshes(only=a.only)
    if a.quick:
        meshes = [m for m in meshes if "feline" in m.name or "fandisk" in m.name]
    n_queries = a.queries or (1000 if a.quick else N_QUERIES)
    cmd = "python benchmarks/bench_normals.py" + ("" if argv is None and len(sys.argv) < 2 else
                                                  " " + " ".join(sys.argv[1:] if argv is None else argv))
    t0 = time.time()
    state: dict = {"started": now_utc(), "load_start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
                   "load_speed": "n/a", "pcp": "(not run)" if a.skip_accuracy else "(running...)",
                   "speed": "(not run)" if a.quick or a.skip_speed else "(pending)"}
    rows: list[dict] = []
    orow: list[list[str]] = []
    orient_done = [a.quick or a.skip_orient]
    acc_done = [a.skip_accuracy]
    mi = machine_info()
    out = Path(a.out)

    def flush() -> None:
        md_ho, s_ho = summarise([r for r in rows if r["split"] == "held-out"],
                                "Held-out meshes only (not seen in training)")
        md_all, s_all = summarise(rows, "All shared meshes")
        md_tr, _ = summarise([r for r in rows if r["split"] == "train"], "Training meshes only (seen in training)")
        state["ratios"] = (s_ho.get("ratio"), s_all.get("ratio"))
        per_mesh = markdown_table(
            ["mesh", "split", "cond", "HDFE"] + [f"PCA k={k}" for k in KS] + [f"Open3D k={k}" for k in KS_O3D],
            [[r["mesh"], r["split"], COND_LABEL[r["cond"]], f"{r['hdfe']:.2f}"] + [f"{r[f'pca{k}']:.2f}" for k in KS]
             + [f"{r[f'o3d{k}']:.2f}" for k in KS_O3D] for r in rows])
        load_end = "; at the end: " + state["load_end"] if "load_end" in state else ""
        status = ("finished" if state.get("finished") else "**partial: still running** (rewritten after every "
                  "mesh and section)")
        text = f"""# Normal estimation: HDFE vs PCA vs Open3D

Generated by `{cmd}`, started {state['started']}, {status}, {time.time() - t0:.0f} s so far.
Machine: {mi['cpu']}, {mi['cores']} cores, {mi['ram']} RAM; {mi['versions']}.
Load average (1/5/15 min) at the start: {state['load_start']}{load_end}.
The machine is shared with other engineers' jobs, so wall-clock figures carry that load.

Weights: `recon/normals/hdfe/weights/{DEFAULT_WEIGHTS.name}` (see `{DEFAULT_WEIGHTS.with_suffix('.json').name}` for the
training command, config, data and seed). Training used procedural SDF shapes and the meshes
{', '.join('`' + m + '`' for m in D.TRAIN_MESHES)};
held out: {', '.join('`' + m + '`' for m in D.HELD_OUT_MESHES)}. Because the training meshes are also benchmark
meshes (with different samples and seeds), **the held-out table is the honest generalisation number**.

## Unoriented normal RMSE (degrees, lower is better)

Protocol: 100k surface samples per mesh, {n_queries} random queries per cloud, RMS of arccos|n . n_gt|; noise
sigma 0 / 0.125 % / 0.6 % / 1.2 % of the bounding-box diagonal; Stripe/Grad density variations without noise.
One thread. Target: HDFE average <= 0.85 x PCA average at its best k in {{10, 20, 50, 100}}.
{'' if acc_done[0] else chr(10) + '(accuracy still running: the tables below cover the meshes done so far)' + chr(10)}
{md_ho}
{md_all}
{md_tr}
## PCPNet armadillo (partial copy)

{state['pcp']}

## Orientation

{orientation_md(orow, orient_done[0])}

## Speed and memory

{state['speed']}

## Per mesh and condition

{per_mesh}
"""
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".md.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)

    flush()
    if not a.skip_accuracy:
        accuracy(meshes, n_queries, log, rows, flush)
        acc_done[0] = True
        state["pcp"], _ = pcpnet_armadillo(log)
        flush()
    if not orient_done[0]:
        orientation(meshes, log, orow, flush)
        orient_done[0] = True
        flush()
    if not (a.quick or a.skip_speed):
        state["load_speed"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        state["speed"] = "(running...)"
        flush()
        speed(log, state, flush)
    state["finished"] = True
    state["load_end"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    flush()
    log(f"wrote {out}; held-out ratio {state['ratios'][0]}, all ratio {state['ratios'][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
