"""How torch's thread waiting policy (OMP_WAIT_POLICY) changes training speed, quiet and shared.

Each case is a fresh process (the policy is read when torch loads): 20 VolSDF steps (default config,
no sphere fit) on a rendered bunny, 48 views of 128 px, with 1 or 2 torch threads and libgomp's
ACTIVE (spinning, its default) or PASSIVE waiting. The load average is printed with each row, so a
run on a busy machine shows as one.

    python benchmarks/bench_omp_wait.py                 # -> benchmarks/results/omp_wait.md (appends a run)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "omp_wait.md"

CHILD = r"""
import sys, time
from recon.backends.posed import BACKGROUNDS
from recon.backends.volsdf.backend import VolSDFBackend
from recon.backends.volsdf.config import VolSDFConfig
from recon.io.cameras import load_views, normalize_views
from recon.io.images import read_view_images
cfg = VolSDFConfig(init_fit_steps=0, threads=int(sys.argv[2]))
be = VolSDFBackend(cfg)
norm, to_world = normalize_views(load_views(sys.argv[1]))
images, masks, cams = read_view_images(norm, max_size=cfg.max_image_size, background=BACKGROUNDS.get(cfg.background))
tr = be.make_trainer(images, masks, cams, device="cpu", to_world=to_world, checkpoint_dir=None)
tr.train(max_steps=2)
t = time.perf_counter()
tr.train(max_steps=20)
print(f"{(time.perf_counter() - t) / 20:.4f}")
"""


def render_scene(folder: Path) -> None:
    """The bunny rendered as in bench_multiview (48 views, 128 px)."""
    from common import SHARED_DATA  # noqa: E402 (benchmarks/ on sys.path when run as a script)

    mesh = SHARED_DATA / "meshes" / "common-3d-test-models" / "stanford-bunny.obj"
    subprocess.run([sys.executable, "-m", "recon_apps.cli", "render", str(mesh), "-o", str(folder), "--views", "48",
                    "--size", "128"], check=True, capture_output=True)


#: the waiting settings compared: libgomp's default (spin ~0.3 s), a short spin then sleep, passive
POLICIES = {"ACTIVE (default)": {}, "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
            "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}


def step_seconds(folder: Path, threads: int, policy: str) -> float:
    """Seconds per step of a fresh process with this thread count and waiting setting (a POLICIES key)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(threads)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bunny"
        render_scene(folder)
        for threads in (1, 2):
            for policy in POLICIES:
                load = os.getloadavg()[0]
                s = step_seconds(folder, threads, policy)
                rows.append(f"| {threads} | {policy} | {s:.3f} | {load:.1f} |")
                print(rows[-1], flush=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    new = not args.out.exists()
    with open(args.out, "a", encoding="utf-8") as fh:
        if new:
            fh.write("# torch thread waiting: OMP_WAIT_POLICY\n\n" + __doc__.split("\n\n")[1].replace("\n", " ")
                     + "\n\nThe recon commands, tests and benchmarks set GOMP_SPINCOUNT=10000 unless the user set a waiting "
                     "policy (apps/__init__.py).\n")
        fh.write(f"\n## {stamp}, `python benchmarks/bench_omp_wait.py`\n\n| threads | wait policy | s per step | "
                 "load average (1 min) before |\n|---:|:---|---:|---:|\n" + "\n".join(rows) + "\n")
    print(f"appended to {args.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    main()
