"""VolSDF under a short whole-run budget, as a user runs it (issue 22: "a 2-minute VolSDF run produces the
best surface it can, never the initial sphere; F@1% >= 0.5 on the bench_multiview scenes").

Per scene (bunny, spot, armadillo rendered by bench_multiview.render_folder: 48 views of 128 px, all views
used): ``recon reconstruct FOLDER -o mesh.ply --backend volsdf --time-budget 2m --json`` as its own
process, timed from start to exit; the mesh is scored against the normalised GT mesh with
``recon.eval.evaluate_meshes`` (100k samples, tau relative to the GT's longest side = 1). The summary's
notes (steps trained, the mesh resolution, the budget that would suffice) are kept.

    python benchmarks/photos_short_budget.py [--minutes 2] [--meshes bunny spot armadillo]
        -> benchmarks/results/photos_short_budget.md (and .json, resumable with --resume)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from bench_multiview import MESHES, render_folder  # noqa: E402
from common import EVAL_SAMPLES, EVAL_SEED, RESULTS_DIR, machine_info, markdown_table, now_utc  # noqa: E402

from recon.eval import evaluate_meshes  # noqa: E402
from recon.io.meshes import load_mesh  # noqa: E402
from recon.types import Mesh  # noqa: E402

TARGET_F1 = 0.5


def run_scene(name: str, minutes: float, work: Path) -> dict:
    """One whole-process run and its scores."""
    folder, gt_file = render_folder(name)
    out = work / f"{name}_volsdf.ply"
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-m", "recon_apps.cli", "reconstruct", str(folder), "-o", str(out),
                           "--backend", "volsdf", "--time-budget", f"{minutes * 60:.0f}s", "--json", "-q",
                           "--checkpoint-dir", str(work / f"{name}.ckpt")],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"mesh": name, "error": proc.stderr.strip()[-300:], "wall_s": wall, "load": load}
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    gt = np.load(gt_file)
    m = evaluate_meshes(load_mesh(out), Mesh(gt["vertices"], gt["faces"]), n_samples=EVAL_SAMPLES,
                        tau=(0.005, 0.01), seed=EVAL_SEED)
    return {"mesh": name, "wall_s": round(wall, 1), "load": round(load, 1), "f1_1": round(m.fscore[1], 4),
            "f1_05": round(m.fscore[0], 4), "chamfer_l1": round(m.chamfer_l1, 6), "faces": summary.get("faces"),
            "notes": summary.get("notes", [])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--meshes", nargs="*", default=list(MESHES))
    ap.add_argument("--resume", action="store_true", help="keep the scenes already in the JSON")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "photos_short_budget.md")
    args = ap.parse_args()
    store = args.out.with_suffix(".json")
    done = json.loads(store.read_text()) if args.resume and store.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.meshes:
            if name in done:
                continue
            done[name] = run_scene(name, args.minutes, Path(tmp))
            print(json.dumps(done[name]), flush=True)
            store.write_text(json.dumps(done, indent=1))
    rows = [[r["mesh"], r.get("wall_s"), r.get("load"), r.get("f1_1", "error"), r.get("f1_05", ""),
             r.get("chamfer_l1", ""), r.get("faces", ""), "yes" if r.get("f1_1", 0) >= TARGET_F1 else "no"]
            for r in done.values()]
    notes = "\n".join(f"- {r['mesh']}: " + "; ".join(r.get("notes", [])) for r in done.values())
    text = (f"# VolSDF at a {args.minutes:g}-minute whole-run budget\n\n{__doc__.split(chr(10) * 2)[1]}\n\n"
            f"- Written {now_utc()}; {', '.join(f'{k} {v}' for k, v in machine_info().items())}\n- Target: F@1% >= {TARGET_F1}\n\n"
            + markdown_table(["mesh", "wall s", "load avg", "F@1%", "F@0.5%", "CD-L1", "faces", "target met"], rows)
            + f"\n\nSummary notes per run:\n\n{notes}\n")
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
