"""Benchmark the GVKF backend against VolSDF on the rendered multiview scenes of bench_multiview.py.

Same data and protocol as ``bench_multiview.py`` (its functions are imported, so the scenes, the held-out
views, the normalisation and the metrics are identical): bunny, spot and armadillo rendered into 48 views
of 128 x 128 with alpha masks, every 8th view held out. Per mesh:

* VolSDF trains with a time budget (``--volsdf-minutes``, default 6, as results/multiview.md) in its own
  process; with ``--volsdf-cached`` its numbers are read from the last bench_multiview.py run instead
  (benchmarks/.cache/multiview/results.json) and marked so;
* GVKF trains from the masks' visual hull for at most ``--steps`` steps (default: the config's) and at most
  ``--gvkf-share`` (default 0.3) of VolSDF's training budget in seconds, whichever ends first, then meshes;
  its wall time is training + mesh extraction, measured in its own process. Both backends are thus on a
  wall-clock budget: with a fixed step count only, the wall ratio would follow the machine's speed (on a
  shared machine running at half speed, 1000 GVKF steps on the bunny took 276 s against VolSDF's 371 s)
  while VolSDF's quality fell with it. ``--gvkf-share 0`` trains the step count alone;
* both meshes are scored by ``recon.eval.evaluate_meshes`` (100k samples, seed 0; tau relative to the unit
  longest side); GVKF's held-out PSNR is that of the 6 held-out views rendered by the rasteriser, and its
  frame rate the median forward-only rendering time of those views at 128 x 128 on this CPU.

Targets (issue 8): F@1% at least VolSDF's on each scene in at most half of VolSDF's wall time; rendering at
least 10 frames per second at 128 x 128; held-out PSNR at least 26 dB.

    python benchmarks/bench_gvkf.py                              # both backends, 3 meshes -> results/gvkf.md
    python benchmarks/bench_gvkf.py --volsdf-cached --meshes bunny --out /tmp/gvkf.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402,F401 - puts the repository on sys.path
from bench_multiview import (  # noqa: E402
    HOLD_EVERY, IMAGES, MESHES, MV_CACHE, TAUS, render_folder, run_case as volsdf_case, normalise_with,
    subset_views,
)
from common import EVAL_SAMPLES, EVAL_SEED, RESULTS_DIR, fmt, machine_info, markdown_table, now_utc, run_isolated  # noqa: E402


def gvkf_case(name: str, steps: int | None, threads: int | None, image: str, mesh_out: str,
              gaussians_out: str, time_budget: float | None = None, volsdf_mesh: str | None = None) -> dict:
    """Render/load ``name``, train GVKF, mesh, score, time the rendering. Runs in a spawned process."""
    import torch

    from recon.backends.gvkf import GVKFBackend, GVKFConfig
    from recon.backends.gvkf.rasterizer import rasterize
    from recon.backends.gvkf.trainer import psnr
    from recon.eval.metrics import evaluate_meshes
    from recon.io.cameras import load_views, normalize_views
    from recon.io.images import read_view_images
    from recon.types import Mesh

    folder, gt_file = render_folder(name)
    with np.load(gt_file) as z:
        gt = Mesh(z["vertices"], z["faces"])
    views = load_views(folder)
    idx = np.arange(len(views))
    test_idx, train_idx = idx[idx % HOLD_EVERY == 0], idx[idx % HOLD_EVERY != 0]
    train_n, to_world = normalize_views(subset_views(views, train_idx))
    test_n = normalise_with(subset_views(views, test_idx), to_world)
    opts: dict = {"init": "hull"}
    if steps:
        opts["steps"] = steps
    if threads:
        opts["threads"] = threads
    if time_budget:
        opts["time_budget"] = time_budget
    cfg = GVKFConfig(**opts)
    images, masks, cams = read_view_images(train_n, max_size=cfg.max_image_size)
    t_images, _, t_cams = read_view_images(test_n, max_size=cfg.max_image_size)

    backend = GVKFBackend(cfg)
    t0 = time.perf_counter()
    field = backend.fit_arrays(images, masks, cams, to_world=to_world, whole_run=False)  # training seconds alone
    t_fit = time.perf_counter() - t0
    t1 = time.perf_counter()
    mesh = field.extract_mesh()
    t_mesh = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    m = evaluate_meshes(mesh, gt, n_samples=EVAL_SAMPLES, tau=TAUS, seed=EVAL_SEED)
    trainer = backend.trainer
    ps, times = [], []
    torch.set_num_threads(threads or 1)
    with torch.no_grad():
        for i in range(len(t_cams)):
            K = torch.as_tensor(t_cams.K[i], dtype=torch.float32)
            c2w = torch.as_tensor(t_cams.cam_to_world[i], dtype=torch.float32)
            for rep in range(3):  # the first call warms caches
                t = time.perf_counter()
                out = rasterize(trainer.gaussians, K, c2w, t_cams.width, t_cams.height, background=trainer.background,
                                tile_size=cfg.tile_size, compute_extras=False)
                if rep:
                    times.append(time.perf_counter() - t)
            ps.append(psnr(float(((out.rgb.numpy() - t_images[i]) ** 2).mean())))
    Mesh.to_trimesh(mesh).export(mesh_out)
    field.world_gaussians().save(gaussians_out)
    panels = [gt]
    vol = Path(volsdf_mesh) if volsdf_mesh else MV_CACHE / f"{name}_volsdf.ply"
    if vol.is_file():
        import trimesh

        tm = trimesh.load(vol, process=False)
        panels.append(Mesh(np.asarray(tm.vertices), np.asarray(tm.faces)))
    panels.append(mesh)
    from bench_multiview import screenshot

    screenshot(panels, Path(image))
    s = trainer.stats
    return {"name": name, "steps": s.step, "gaussians": s.count, "train_seconds": s.elapsed, "fit_seconds": t_fit,
            "mesh_seconds": t_mesh, "wall_seconds": wall, "f@0.01": m.f_at(0.01), "f@0.005": m.f_at(0.005),
            "chamfer_l1": m.chamfer_l1, "normal_consistency": m.normal_consistency,
            "psnr_heldout": float(np.mean(ps)), "render_seconds": float(np.median(times)),
            "faces": mesh.n_faces, "threads": torch.get_num_threads(), "init": s.init_method,
            "history": s.history[-1:] if s.history else []}


def gvkf_budget(args: argparse.Namespace) -> float | None:
    """GVKF's training budget in seconds (``--gvkf-share`` of VolSDF's), or None for steps only."""
    return args.gvkf_share * 60.0 * args.volsdf_minutes or None


def write_markdown(out: Path, rows: list[dict], args: argparse.Namespace) -> None:
    info = machine_info()
    src = "the last bench_multiview.py run (cached; same scenes and metrics)" if args.volsdf_cached else \
        f"this run ({args.volsdf_minutes:g} min training budget, in its own process)"
    lines = [
        "# Multiview reconstruction: GVKF vs VolSDF",
        "",
        f"Generated by `benchmarks/bench_gvkf.py` on {now_utc()}.",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram']}; {info['versions']}.",
        "",
        "Protocol: the scenes of `bench_multiview.py` (48 rendered views of 128 x 128 with alpha masks, every 8th "
        "held out; metrics `recon.eval.evaluate_meshes`, 100k samples, tau relative to the unit longest side). "
        f"VolSDF numbers from {src}. GVKF: default config (`recon.backends.gvkf.config`), "
        f"at most {'steps ' + str(args.steps) if args.steps else 'its default steps'}"
        + (f" and at most {args.gvkf_share:g} x VolSDF's training budget "
           f"({gvkf_budget(args):.0f} s), whichever ends first" if gvkf_budget(args) else "")
        + ", initialised from the masks' visual "
        "hull (the render folders also carry COLMAP points3D sampled on the true surface; they are not used, "
        "so both backends see images, masks and cameras only). GVKF wall = training + mesh extraction; VolSDF "
        "wall = its training run (evaluation callbacks included, final meshing excluded). fps: median "
        "forward-only rasterisation of the held-out views at 128 x 128, one thread.",
        "",
        "Targets (issue 8): GVKF F@1% >= VolSDF's in <= 0.5x its wall time; >= 10 fps; held-out PSNR >= 26 dB.",
        "",
    ]
    table = []
    for r in rows:
        g, v = r.get("gvkf", {}), r.get("volsdf", {})
        if g.get("error") or v.get("error") or not g or not v:
            table.append([r["name"], "error: " + str(g.get("error") or v.get("error") or "missing")[:80]] + ["-"] * 9)
            continue
        ratio = g["wall_seconds"] / v["wall_seconds"]
        fps = 1.0 / g["render_seconds"]
        ok = g["f@0.01"] >= v["f@0.01"] and ratio <= 0.5 and fps >= 10 and g["psnr_heldout"] >= 26
        table.append([r["name"], fmt(v["f@0.01"]), fmt(g["f@0.01"]), fmt(v["chamfer_l1"]), fmt(g["chamfer_l1"]),
                      f"{v['wall_seconds']:.0f}", f"{g['wall_seconds']:.0f} ({g['train_seconds']:.0f} + "
                      f"{g['mesh_seconds']:.0f})", f"{ratio:.2f}", f"{v['psnr_heldout']:.1f} / {g['psnr_heldout']:.1f}",
                      f"{fps:.0f}", "yes" if ok else "no"])
    lines.append(markdown_table(["mesh", "VolSDF F@1%", "GVKF F@1%", "VolSDF CD", "GVKF CD", "VolSDF wall s",
                                 "GVKF wall s (train + mesh)", "wall ratio", "PSNR held-out V / G", "GVKF fps",
                                 "targets met"], table))
    lines.append("")
    detail = []
    for r in rows:
        g, v = r.get("gvkf", {}), r.get("volsdf", {})
        if g and not g.get("error"):
            detail.append([r["name"], str(v.get("steps", "-")), str(g["steps"]), str(g["gaussians"]), fmt(g["f@0.005"]),
                           fmt(g["normal_consistency"]), str(g["faces"]), f"{1000 * g['render_seconds']:.0f} ms"])
    if detail:
        lines += ["GVKF details:", "", markdown_table(["mesh", "VolSDF steps", "GVKF steps", "Gaussians", "F@0.5%", "NC", "faces",
                                                      "frame time"], detail), ""]
    for r in rows:
        g = r.get("gvkf", {})
        if g and not g.get("error"):
            lines += [f"### {r['name']}", "", f"![{r['name']}](images/gvkf_{r['name']}.png)", "",
                      "Rows: ground truth, VolSDF, GVKF (normals shaded, the same 4 cameras).", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.md")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meshes", nargs="*", default=list(MESHES), help=f"subset of {', '.join(MESHES)}")
    ap.add_argument("--steps", type=int, default=None, help="GVKF training steps (default: the config's)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for GVKF (default: the config's)")
    ap.add_argument("--volsdf-minutes", type=float, default=6.0, help="VolSDF training budget per mesh")
    ap.add_argument("--gvkf-share", type=float, default=0.3,
                    help="GVKF training budget as a share of VolSDF's (0: steps only)")
    ap.add_argument("--volsdf-cached", action="store_true", help="read VolSDF's numbers from the last bench_multiview run")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "gvkf.md", help="results markdown")
    args = ap.parse_args(argv)
    unknown = [m for m in args.meshes if m not in MESHES]
    if unknown:
        print(f"unknown meshes {unknown}; choose from {list(MESHES)}", file=sys.stderr)
        return 2
    IMAGES.mkdir(parents=True, exist_ok=True)
    cached = {}
    if args.volsdf_cached:
        cache = MV_CACHE / "results.json"
        if not cache.is_file():
            print(f"no cached VolSDF results at {cache}: run bench_multiview.py first", file=sys.stderr)
            return 2
        cached = {r["name"]: r for r in json.loads(cache.read_text())}
    rows = []
    for name in args.meshes:
        row = {"name": name}
        # A fresh VolSDF run keeps its mesh and picture apart from bench_multiview.py's (results/multiview.md).
        vol_mesh = MV_CACHE / (f"{name}_volsdf.ply" if args.volsdf_cached else f"{name}_volsdf_gvkf_bench.ply")
        if args.volsdf_cached:
            row["volsdf"] = cached.get(name, {"error": "not in the cache"})
        else:
            print(f"{name}: VolSDF {args.volsdf_minutes:g} min ...", flush=True)
            row["volsdf"] = run_isolated(volsdf_case, {
                "name": name, "minutes": args.volsdf_minutes, "eval_every": 60.0 * args.volsdf_minutes,
                "preset": None, "device": "cpu", "threads": None, "image": str(MV_CACHE / f"gvkf_bench_volsdf_{name}.png"),
                "mesh_out": str(vol_mesh)}, timeout=60.0 * args.volsdf_minutes * 3 + 1800)
        print(f"{name}: GVKF ...", flush=True)
        row["gvkf"] = run_isolated(gvkf_case, {
            "name": name, "steps": args.steps, "threads": args.threads, "image": str(IMAGES / f"gvkf_{name}.png"),
            "mesh_out": str(MV_CACHE / f"{name}_gvkf.ply"), "gaussians_out": str(MV_CACHE / f"{name}_gaussians.npz"),
            "time_budget": gvkf_budget(args), "volsdf_mesh": str(vol_mesh)},
            timeout=3600)
        g, v = row["gvkf"], row["volsdf"]
        if g.get("error"):
            print(f"  GVKF error: {g['error']}\n{g.get('traceback', '')}", flush=True)
        else:
            print(f"  GVKF F@1% {g['f@0.01']:.3f} (VolSDF {v.get('f@0.01', float('nan')):.3f}) wall {g['wall_seconds']:.0f} s "
                  f"(VolSDF {v.get('wall_seconds', float('nan')):.0f} s) PSNR {g['psnr_heldout']:.2f} dB "
                  f"{1 / g['render_seconds']:.0f} fps", flush=True)
        rows.append(row)
        write_markdown(args.out, rows, args)
    (MV_CACHE / "gvkf_results.json").write_text(json.dumps(rows, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
