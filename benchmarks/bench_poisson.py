"""Benchmark the Open3D screened-Poisson backend on the shared meshes.

For each mesh in ../shared/data/meshes x {clean, noisy} x {depth 8, depth 9}:
normalise the mesh (unit longest side, centred), sample 200k points with exact
normals (noisy: + N(0, 0.005^2) on positions), reconstruct in a fresh process,
and score against the normalised mesh (Chamfer-L1, F@0.005, F@0.01, NC from 100k
samples per surface), with the reconstruction's wall time and the process's peak RSS.

    python benchmarks/bench_poisson.py                      # full run -> results/poisson.md
    python benchmarks/bench_poisson.py --meshes spot fandisk --quick

Per-case results are cached in benchmarks/.cache/poisson_results.json, so an
interrupted run resumes; pass --fresh to recompute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from recon.ops.sampling import face_areas_normals  # noqa: E402
from common import (  # noqa: E402
    CACHE_DIR, EVAL_SAMPLES, EVAL_SEED, N_INPUT_POINTS, NOISE_SIGMA, RESULTS_DIR, Timer, list_meshes, load_case,
    machine_info, markdown_table, mean_finite, now_utc, peak_rss_mib, prepare_input, run_isolated,
)

TAUS = (0.005, 0.01)


def run_case(cache_file: str, depth: int, eval_samples: int, density_quantile: float) -> dict:
    """One reconstruction + evaluation; runs in a spawned process."""
    from recon.backends.poisson import PoissonBackend, PoissonConfig
    from recon.eval.metrics import evaluate_meshes

    gt, cloud = load_case(cache_file)
    rss_before = peak_rss_mib()
    backend = PoissonBackend(PoissonConfig(depth=depth, density_quantile=density_quantile))
    with Timer() as t:
        mesh = backend.fit(cloud)
    rss_fit = peak_rss_mib()
    m = evaluate_meshes(mesh, gt, n_samples=eval_samples, tau=TAUS, relative=True, seed=EVAL_SEED)
    d = m.to_dict()
    return {
        "chamfer_l1": d["chamfer_l1"], "f@0.005": d["f@0.005"], "f@0.01": d["f@0.01"],
        "nc": d["normal_consistency"], "fit_seconds": t.seconds, "peak_rss_mib": rss_fit,
        "rss_before_fit_mib": rss_before, "faces": mesh.n_faces, "gt_scale": d["gt_scale"],
    }


def _key(case_file: Path, depth: int, eval_samples: int, q: float) -> str:
    # the input file name carries a hash of the mesh file and the input protocol
    return f"{case_file.stem}|d{depth}|e{eval_samples}|q{q}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meshes", nargs="*", help="subset: names, stems or substrings (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="depth 8, clean only, 50k points, 20k eval samples; prints, writes only with --out")
    ap.add_argument("--depths", type=int, nargs="*", default=None, help="override depths (default 8 9)")
    ap.add_argument("--out", type=Path, default=None, help="results markdown (default results/poisson.md)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached per-case results")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    args = ap.parse_args(argv)

    depths = args.depths or ([8] if args.quick else [8, 9])
    variants = ["clean"] if args.quick else ["clean", "noisy"]
    n_points = 50_000 if args.quick else N_INPUT_POINTS
    eval_samples = 20_000 if args.quick else EVAL_SAMPLES
    q = 0.02
    out = args.out if args.out is not None else (None if args.quick else RESULTS_DIR / "poisson.md")

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    store_file = CACHE_DIR / "poisson_results.json"
    store: dict = {} if args.fresh or not store_file.exists() else json.loads(store_file.read_text())

    paths = list_meshes(only=args.meshes)
    if not paths:
        print("no meshes found", file=sys.stderr)
        return 1
    skipped: list[str] = []
    flipped: set[str] = set()
    floors: dict[Path, float] = {}  # expected CD-L1 of a perfect reconstruction (sampling floor)
    rows: list[dict] = []
    t_all = time.perf_counter()
    for path in paths:
        for variant in variants:
            case = prepare_input(path, variant, n_points=n_points, sigma=NOISE_SIGMA)
            if case is None:
                skipped.append(common.mesh_name(path))
                break
            if case.flipped:
                flipped.add(case.name)
            if case.cache_file not in floors:
                gt, _ = load_case(case.cache_file)
                area = float(face_areas_normals(gt.vertices, gt.faces)[0].sum())
                floors[case.cache_file] = 0.5 / (eval_samples / area) ** 0.5
            for depth in depths:
                key = _key(case.cache_file, depth, eval_samples, q)
                res = store.get(key)
                if res is None or res.get("error"):
                    res = run_isolated(run_case, {"cache_file": str(case.cache_file), "depth": depth,
                                                  "eval_samples": eval_samples, "density_quantile": q},
                                       timeout=args.timeout)
                    store[key] = res
                    store_file.write_text(json.dumps(store, indent=1, default=float))
                row = {"mesh": case.name, "variant": variant, "depth": depth, "floor": floors[case.cache_file],
                       **res}
                rows.append(row)
                if res.get("error"):
                    print(f"{case.name:40s} {variant:5s} d{depth}  ERROR {res['error']}", flush=True)
                else:
                    print(f"{case.name:40s} {variant:5s} d{depth}  CD {res['chamfer_l1']:.5f}  "
                          f"F@.005 {res['f@0.005']:.3f}  F@.01 {res['f@0.01']:.3f}  NC {res['nc']:.4f}  "
                          f"{res['fit_seconds']:.1f}s  {res['peak_rss_mib']:.0f}MiB", flush=True)
    total = time.perf_counter() - t_all

    md = render(rows, depths, variants, skipped, sorted(flipped), n_points, eval_samples, q, total, args)
    print(md)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        print(f"wrote {out}")
    return 0


def render(rows: list[dict], depths: list[int], variants: list[str], skipped: list[str], flipped: list[str],
           n_points: int,
           eval_samples: int, q: float, total: float, args: argparse.Namespace) -> str:
    mi = machine_info()
    case_minutes = sum(float(r.get("process_seconds") or 0.0) for r in rows) / 60.0
    cmd = "python benchmarks/bench_poisson.py" + ("" if not sys.argv[1:] else " " + " ".join(sys.argv[1:]))
    head = [
        "# Poisson (Open3D screened Poisson) benchmark",
        "",
        f"- Command: `{cmd}`",
        f"- Date: {now_utc()}; {len(rows)} cases, {case_minutes:.1f} min of case processes in all "
        "(each case runs in a fresh spawned process; cases are run one after another)",
        f"- Machine: {mi['cpu']}, {mi['cores']} cores, {mi['ram']} RAM, no GPU; {mi['versions']}",
        "- Input: each mesh normalised to unit longest bounding-box side, centred at the origin; "
        f"{n_points:,} area-weighted surface samples (seed 0) with the exact face normals. "
        f"`noisy` adds N(0, {NOISE_SIGMA}^2) per coordinate to the positions (normals stay exact).",
        f"- Backend: `PoissonConfig(depth=d, scale=1.1, linear_fit=False, density_quantile={q})`, all cores.",
        f"- Metrics (`recon.eval.evaluate_meshes`): {eval_samples:,} samples per surface (seed 0); "
        "Chamfer-L1 = 0.5 (accuracy + completeness), unsquared; F-score at tau = 0.005 and 0.01 relative to "
        "the GT's longest side (= 1 here, so absolute too); NC = mean |cos| of matched face normals, both ways. "
        "Column `floor` = 0.5 / sqrt(samples / GT area), the Chamfer-L1 that a perfect reconstruction scores with "
        "this many samples (mean nearest-sample spacing); it also caps F@0.005 on large-area meshes "
        "(thingi10k/50736 has area 4.8 and floor 0.0035).",
        "- Time = wall seconds of `PoissonBackend.fit` only; peak RSS = ru_maxrss of the case's fresh process "
        "right after the fit (includes the interpreter, Open3D and the loaded input). "
        f"Load average when this file was written: {os.getloadavg()[0]:.1f}; the machine may be shared with "
        "other jobs, so treat times as upper bounds.",
    ]
    if flipped:
        head.append(f"- Wound inside out in the source files (negative volume), faces reversed before sampling so "
                    f"the input normals point outward: {', '.join(flipped)}")
    if skipped:
        head.append(f"- Skipped (no reader produced triangles): {', '.join(skipped)}")
    parts = ["\n".join(head), ""]
    cols = ["mesh", "CD-L1", "floor", "F@0.005", "F@0.01", "NC", "time s", "peak RSS MiB", "faces"]
    summary = []
    for variant in variants:
        for depth in depths:
            sel = [r for r in rows if r["variant"] == variant and r["depth"] == depth]
            if not sel:
                continue
            table = []
            for r in sel:
                if r.get("error"):
                    table.append([r["mesh"], "error: " + r["error"][:60], "", "", "", "", "", "", ""])
                else:
                    table.append([r["mesh"], r["chamfer_l1"], r["floor"], r["f@0.005"], r["f@0.01"], r["nc"],
                                  r["fit_seconds"], r["peak_rss_mib"], str(r["faces"])])
            ok = [r for r in sel if not r.get("error")]
            means = [mean_finite(r[c] for r in ok)[0] for c in
                     ("chamfer_l1", "floor", "f@0.005", "f@0.01", "nc", "fit_seconds", "peak_rss_mib")]
            label = f"**mean** ({len(ok)} meshes)"
            table.append([label, *means, ""])
            summary.append([f"{variant}, depth {depth}", *means, str(len(ok))])
            parts += [f"## {variant}, depth {depth}", "", markdown_table(cols, table), ""]
    summ = markdown_table(["setting", "CD-L1", "floor", "F@0.005", "F@0.01", "NC", "time s", "peak RSS MiB",
                           "meshes"],
                          summary)
    parts[2:2] = ["## Mean per setting", "", summ, ""]
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
