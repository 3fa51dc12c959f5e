"""Benchmark the VolSDF backend on rendered multiview scenes (and real photographs).

Protocol (issue 5), per mesh (bunny, spot, armadillo from ../shared/data/meshes):

* the mesh is normalised (unit longest side, centred, faces outward) and rendered with
  ``recon.render.render_views`` into 48 views of 128 x 128 (seed 0, procedural texture, alpha masks),
  written as a render folder (transforms.json + COLMAP + cameras.npz) under benchmarks/.cache/multiview/;
* the folder is read back with ``recon.io.cameras.load_views``; every 8th view (index % 8 == 0) is
  held out; the 42 training views are normalised into the unit sphere (``normalize_views``, with masks)
  and their images read at full size (``read_view_images``);
* VolSDF trains with a time budget (default 20 minutes of training; evaluation time excluded) on one
  process; every ``--eval-every`` training seconds the mesh (marching cubes at 192) is scored, which
  gives the time at which F@1% first reaches 0.8;
* at the end: mesh at 256, F-score at 0.5 % and 1 % of the GT's longest side, Chamfer-L1 (world units,
  i.e. fractions of the longest side), normal consistency (``recon.eval.evaluate_meshes``, 100k samples,
  seed 0), and the PSNR of the 6 held-out views (whole 128 x 128 images, background included).

``--real`` adds the Middlebury temple (39 photographs, no masks): the mesh and a screenshot.

    python benchmarks/bench_multiview.py                     # 3 meshes x 20 min -> results/multiview.md
    python benchmarks/bench_multiview.py --minutes 3 --meshes bunny --out /tmp/mv.md
    python benchmarks/bench_multiview.py --preset configs/volsdf-gpu.yaml --device cuda --minutes 10
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
from common import (  # noqa: E402
    CACHE_DIR, EVAL_SAMPLES, EVAL_SEED, MESH_DIR, RESULTS_DIR, SHARED_DATA, fmt, load_mesh_any, machine_info,
    markdown_table, normalise_mesh, now_utc, orient_outward, run_isolated,
)

MESHES = {
    "bunny": "continuous-remeshing/bunny.obj",
    "spot": "common-3d-test-models/spot.obj",
    "armadillo": "continuous-remeshing/armadillo.obj",
}
REAL = {"temple": "multiview/middlebury_temple"}
N_VIEWS, SIZE, RENDER_SEED, HOLD_EVERY = 48, 128, 0, 8
TAUS = (0.005, 0.01)
TARGET_F = 0.8
IMAGES = RESULTS_DIR / "images"
MV_CACHE = CACHE_DIR / "multiview"


# --------------------------------------------------------------------------- data


def render_folder(name: str) -> tuple[Path, Path]:
    """Render ``name`` once into benchmarks/.cache/multiview/<name>/ and save the normalised GT mesh.

    Returns:
        (render folder, GT .npz with vertices and faces).
    """
    from recon.render import render_views, write_render_folder

    folder = MV_CACHE / f"{name}_{N_VIEWS}x{SIZE}_s{RENDER_SEED}"
    gt_file = MV_CACHE / f"{name}_gt.npz"
    if (folder / "transforms.json").is_file() and gt_file.is_file():
        return folder, gt_file
    mesh, note = load_mesh_any(MESH_DIR / MESHES[name])
    if mesh is None:
        raise RuntimeError(f"{name}: cannot read the mesh ({note})")
    gt, _ = orient_outward(normalise_mesh(mesh))
    MV_CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(gt_file, vertices=gt.vertices, faces=gt.faces)
    res = render_views(gt, n_views=N_VIEWS, size=SIZE, seed=RENDER_SEED)
    write_render_folder(res, folder, force=True)
    return folder, gt_file


def subset_views(views, idx: np.ndarray):
    """The views whose indices are ``idx`` (cameras and paths)."""
    from recon.types import Cameras, Views

    c = views.cameras
    cams = Cameras(c.K[idx], c.cam_to_world[idx], c.width, c.height,
                   None if c.distortion is None else c.distortion[idx])

    def pick(paths):
        return None if paths is None else [paths[i] for i in idx]

    return Views(cams, pick(views.image_paths), pick(views.mask_paths), pick(views.depth_paths))


def normalise_with(views, to_world: np.ndarray):
    """Apply the normalisation x_n = (x_w - centre) / radius of ``to_world`` to other views' cameras."""
    from recon.types import Cameras, Views

    c = views.cameras
    c2w = c.cam_to_world.copy()
    radius, centre = to_world[0, 0], to_world[:3, 3]
    c2w[:, :3, 3] = (c2w[:, :3, 3] - centre) / radius
    return Views(Cameras(c.K, c2w, c.width, c.height, c.distortion), views.image_paths, views.mask_paths,
                 views.depth_paths)


def screenshot(meshes: list, path: Path, size: int = 256) -> None:
    """A row of 4 normal-shaded views per mesh (same cameras for each mesh), written as PNG."""
    from PIL import Image

    from recon.render import render_views

    rows = []
    for m in meshes:
        r = render_views(m, n_views=4, size=size, seed=1, supersample=1)
        rows.append(np.concatenate([(0.5 + 0.5 * r.normals[i]) * (r.depth[i] > 0)[..., None] for i in range(4)], 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.concatenate(rows, 0) * 255).astype(np.uint8)).save(path)


# --------------------------------------------------------------------------- one case (child process)


def preset_options(preset: str | None) -> dict:
    """The "volsdf" section of a preset (or a flat preset's keys); {} without one."""
    from recon.config import load_yaml

    if not preset:
        return {}
    data = load_yaml(preset)
    return dict(data.get("volsdf", {})) if "backend" in data or "volsdf" in data else dict(data)


def run_case(name: str, minutes: float, eval_every: float, preset: str | None, device: str, threads: int | None,
             image: str, mesh_out: str) -> dict:
    """Render/load ``name``, train VolSDF with a time budget, score it. Runs in a spawned process."""
    import torch

    from recon.backends.volsdf import VolSDFBackend, VolSDFConfig
    from recon.backends.volsdf.trainer import psnr
    from recon.config import from_dict
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
    opts = preset_options(preset)
    opts.update(time_budget=60.0 * minutes, steps=10**9)
    if threads:
        opts["threads"] = threads
    cfg = from_dict(VolSDFConfig, opts, source=preset)
    images, masks, cams = read_view_images(train_n, max_size=cfg.max_image_size)
    t_images, _, t_cams = read_view_images(test_n, max_size=cfg.max_image_size)

    curve: list[dict] = []

    def evaluate(trainer, resolution: int, samples: int) -> dict:
        mesh = trainer.field().extract_mesh(resolution=resolution)
        m = evaluate_meshes(mesh, gt, n_samples=samples, tau=TAUS, seed=EVAL_SEED)
        return {"mesh": mesh, "f@0.01": m.f_at(0.01), "f@0.005": m.f_at(0.005), "chamfer_l1": m.chamfer_l1,
                "normal_consistency": m.normal_consistency}

    def callback(trainer) -> None:
        t0 = time.perf_counter()
        e = evaluate(trainer, 192, 50_000)
        curve.append({"step": trainer.stats.step, "seconds": trainer.stats.elapsed, "f@0.01": e["f@0.01"],
                      "chamfer_l1": e["chamfer_l1"], "beta": trainer.stats.beta,
                      "eval_seconds": time.perf_counter() - t0})
        print(f"  [{name}] {trainer.stats.elapsed:6.0f} s step {trainer.stats.step:6d} F@1% {e['f@0.01']:.3f} "
              f"CD {e['chamfer_l1']:.5f} beta {trainer.stats.beta:.4f}", flush=True)

    backend = VolSDFBackend(cfg)
    t0 = time.perf_counter()
    backend.fit_arrays(images, masks, cams, to_world=to_world, device=device, callback=callback,
                       callback_every=eval_every, whole_run=False)  # the protocol: training seconds alone
    wall = time.perf_counter() - t0
    trainer = backend.trainer
    callback(trainer)
    final = evaluate(trainer, 256, EVAL_SAMPLES)
    ps = []
    for i in range(len(t_cams)):
        out = trainer.render_view(t_cams.K[i], t_cams.cam_to_world[i], t_cams.width, t_cams.height)
        ps.append(psnr(float(((out["rgb"] - t_images[i]) ** 2).mean())))
    reach = next((c["seconds"] for c in curve if c["f@0.01"] >= TARGET_F), None)
    mesh = final.pop("mesh")
    Mesh.to_trimesh(mesh).export(mesh_out)
    screenshot([gt, mesh], Path(image))
    return {"name": name, "steps": trainer.stats.step, "train_seconds": trainer.stats.elapsed, "wall_seconds": wall,
            "psnr_heldout": float(np.mean(ps)), "psnr_views": ps, "seconds_to_f80": reach, "curve": curve,
            "beta": trainer.stats.beta, "faces": mesh.n_faces, "threads": torch.get_num_threads(),
            "config": {k: v for k, v in opts.items()}, **final}


def run_real(name: str, minutes: float, preset: str | None, device: str, threads: int | None, image: str,
             mesh_out: str) -> dict:
    """Train on a real photograph set (no ground truth): mesh and screenshot only."""
    from recon.backends.volsdf import VolSDFBackend, VolSDFConfig
    from recon.config import from_dict
    from recon.io.cameras import load_views

    views = load_views(SHARED_DATA / REAL[name])
    opts = preset_options(preset)
    opts.update(time_budget=60.0 * minutes, steps=10**9)
    if threads:
        opts["threads"] = threads
    cfg = from_dict(VolSDFConfig, opts, source=preset)
    backend = VolSDFBackend(cfg)
    field = backend.fit_views(views, device=device, whole_run=False)
    mesh = field.extract_mesh()
    mesh.to_trimesh().export(mesh_out)
    if mesh.n_faces:
        screenshot([mesh], Path(image))
    s = backend.trainer.stats
    return {"name": name, "views": len(views), "steps": s.step, "train_seconds": s.elapsed,
            "psnr_batch": s.psnr, "faces": mesh.n_faces, "beta": s.beta}


# --------------------------------------------------------------------------- driver


def write_markdown(out: Path, rows: list[dict], real: list[dict], args: argparse.Namespace) -> None:
    info = machine_info()
    lines = [
        "# Multiview reconstruction: VolSDF",
        "",
        f"Generated by `benchmarks/bench_multiview.py` on {now_utc()}.",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram']}; {info['versions']}.",
        "",
        f"Protocol: each mesh normalised to unit longest side, rendered by `recon.render` ({N_VIEWS} views, "
        f"{SIZE}x{SIZE}, seed {RENDER_SEED}, procedural texture, alpha masks, black background), read back through "
        f"the transforms.json loader; every {HOLD_EVERY}th view held out ({N_VIEWS // HOLD_EVERY} views). Training "
        f"budget {args.minutes:g} min of training time per mesh (evaluation excluded), device {args.device}, "
        f"preset {args.preset or 'defaults'}. Metrics: `recon.eval.evaluate_meshes` ({EVAL_SAMPLES} samples, seed "
        f"{EVAL_SEED}); tau relative to the GT's longest side (= 1); Chamfer-L1 in those units. Held-out PSNR over "
        f"the whole images. 'to F@1%={TARGET_F}': training seconds at the first periodic evaluation (every "
        f"{args.eval_every:g} s, mesh at 192) reaching it. Targets (issue 5): F@1% >= 0.85 and PSNR >= 26 dB.",
        "",
    ]
    table = []
    for r in rows:
        if r.get("error"):
            table.append([r["name"], "error: " + r["error"][:80]] + ["-"] * 8)
            continue
        table.append([r["name"], str(r["steps"]), f"{r['train_seconds']:.0f}", fmt(r["f@0.01"]), fmt(r["f@0.005"]),
                      fmt(r["chamfer_l1"]), fmt(r["normal_consistency"]), f"{r['psnr_heldout']:.2f}",
                      "-" if r["seconds_to_f80"] is None else f"{r['seconds_to_f80']:.0f} s",
                      "yes" if r["f@0.01"] >= 0.85 and r["psnr_heldout"] >= 26 else "no"])
    lines.append(markdown_table(["mesh", "steps", "train s", "F@1%", "F@0.5%", "CD-L1", "NC", "PSNR held-out",
                                 f"to F@1%={TARGET_F}", "targets met"], table))
    lines.append("")
    for r in rows:
        if r.get("error") or not r.get("curve"):
            continue
        lines += [f"### {r['name']}", "", f"![{r['name']}](images/multiview_{r['name']}.png)", "",
                  "Top: ground truth; bottom: VolSDF (normals shaded, the same 4 cameras).", ""]
        lines.append(markdown_table(["train s", "step", "F@1%", "CD-L1", "beta"],
                                    [[f"{c['seconds']:.0f}", str(c["step"]), fmt(c["f@0.01"]), fmt(c["chamfer_l1"]),
                                      fmt(c["beta"])] for c in r["curve"]]))
        lines.append("")
    if real:
        lines += ["## Real photographs", ""]
        for r in real:
            if r.get("error"):
                lines += [f"- {r['name']}: error {r['error']}", ""]
                continue
            lines += [f"- {r['name']}: {r['views']} views, {r['steps']} steps in {r['train_seconds']:.0f} s, "
                      f"{r['faces']} faces, batch PSNR {r['psnr_batch']:.2f} dB", "",
                      f"![{r['name']}](images/multiview_{r['name']}.png)", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.md")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meshes", nargs="*", default=list(MESHES), help=f"subset of {', '.join(MESHES)}")
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget per mesh (default 20)")
    ap.add_argument("--eval-every", type=float, default=60.0, help="training seconds between evaluations")
    ap.add_argument("--preset", default=None, help="a VolSDF YAML preset (default: the config defaults)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the preset's)")
    ap.add_argument("--real", action="store_true", help="also reconstruct the Middlebury temple photographs")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "multiview.md", help="results markdown")
    args = ap.parse_args(argv)

    unknown = [m for m in args.meshes if m not in MESHES]
    if unknown:
        print(f"unknown meshes {unknown}; choose from {list(MESHES)}", file=sys.stderr)
        return 2
    IMAGES.mkdir(parents=True, exist_ok=True)
    MV_CACHE.mkdir(parents=True, exist_ok=True)
    timeout = 60.0 * args.minutes * 3 + 1800
    rows, real = [], []
    for name in args.meshes:
        print(f"{name}: training {args.minutes:g} min ...", flush=True)
        res = run_isolated(run_case, {"name": name, "minutes": args.minutes, "eval_every": args.eval_every,
                                      "preset": args.preset, "device": args.device, "threads": args.threads,
                                      "image": str(IMAGES / f"multiview_{name}.png"),
                                      "mesh_out": str(MV_CACHE / f"{name}_volsdf.ply")}, timeout=timeout)
        res.setdefault("name", name)
        if res.get("error"):
            print(f"  {name}: {res['error']}\n{res.get('traceback', '')}", flush=True)
        else:
            print(f"  {name}: F@1% {res['f@0.01']:.3f} F@0.5% {res['f@0.005']:.3f} CD {res['chamfer_l1']:.5f} "
                  f"PSNR {res['psnr_heldout']:.2f} dB, to F@1%={TARGET_F}: {res['seconds_to_f80']}", flush=True)
        rows.append(res)
        write_markdown(args.out, rows, real, args)
    if args.real:
        for name in REAL:
            print(f"{name}: training {args.minutes:g} min ...", flush=True)
            res = run_isolated(run_real, {"name": name, "minutes": args.minutes, "preset": args.preset,
                                          "device": args.device, "threads": args.threads,
                                          "image": str(IMAGES / f"multiview_{name}.png"),
                                          "mesh_out": str(MV_CACHE / f"{name}_volsdf.ply")}, timeout=timeout)
            res.setdefault("name", name)
            real.append(res)
            write_markdown(args.out, rows, real, args)
    (MV_CACHE / "results.json").write_text(json.dumps(rows + real, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
