"""Kernel backend on a CUDA GPU: time and quality at 1M points (run on a lent GPU machine).

Inputs are prepared here, on the CPU machine, from ../shared/data (which does not travel):

    python benchmarks/bench_kernel_gpu.py --prepare .gpu       # writes .gpu/<mesh>_1m.npz

and the measurement runs on the GPU machine over those files:

    python benchmarks/bench_kernel_gpu.py .gpu/*.npz --out results.md

Each file holds the normalised GT mesh (gt_vertices, gt_faces) and 1M area-weighted surface
samples with normals (points, normals). Reported: fit time (hierarchy, assembly, solve), mesh
extraction time, Chamfer-L1 / F-score / NC against the GT (recon.eval), solver iterations.
A warm-up run on a 50k subset comes first so CUDA initialisation is not counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def prepare(folder: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import common

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("continuous-remeshing/bunny.obj", "common-3d-test-models/spot.obj"):
        case = common.prepare_input(common.MESH_DIR / name, "clean", n_points=1_000_000)
        with np.load(case.cache_file) as z:
            out = folder / (Path(name).stem + "_1m.npz")
            np.savez(out, gt_vertices=z["gt_vertices"], gt_faces=z["gt_faces"],
                     points=z["points"].astype(np.float32), normals=z["normals"].astype(np.float32))
        print(f"wrote {out}")


def measure(path: Path, device: str) -> dict:
    import torch

    from recon.backends.kernel import KernelConfig, KernelReconstructor
    from recon.eval import evaluate_meshes
    from recon.types import Mesh

    with np.load(path) as z:
        gt = Mesh(z["gt_vertices"], z["gt_faces"])
        pts, nrm = z["points"], z["normals"]

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    cfg = KernelConfig(device=device)
    p = torch.from_numpy(pts).to(device)
    n = torch.from_numpy(nrm).to(device)
    warm = KernelReconstructor(cfg).reconstruct(p[:50_000], n[:50_000])
    warm.extract_mesh()
    sync()
    t0 = time.perf_counter()
    field = KernelReconstructor(cfg).reconstruct(p, n)
    sync()
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    mesh = field.extract_mesh()
    sync()
    t_mesh = time.perf_counter() - t0
    m = evaluate_meshes(mesh, gt, n_samples=100_000, tau=[0.005, 0.01])
    info = field.solver_info
    return {
        "input": path.stem, "points": int(len(pts)), "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "fit_s": round(t_fit, 3), "mesh_s": round(t_mesh, 3), "total_s": round(t_fit + t_mesh, 3),
        "faces": mesh.n_faces, "chamfer_l1": m.chamfer_l1, "f@0.005": m.f_at(0.005), "f@0.01": m.f_at(0.01),
        "nc": m.normal_consistency, "solver": getattr(info, "__dict__", str(info)),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.startswith("cuda") else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", type=Path)
    ap.add_argument("--prepare", type=Path, default=None, help="write the 1M-point inputs into this folder")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=None, help="markdown table to write")
    a = ap.parse_args()
    if a.prepare:
        prepare(a.prepare)
        return
    rows = []
    for f in a.inputs:
        r = measure(f, a.device)
        print(json.dumps(r, default=str), flush=True)
        rows.append(r)
    if a.out:
        lines = ["| input | points | device | fit s | mesh s | total s | faces | CD-L1 | F@0.005 | F@0.01 | NC | peak GPU MiB |",
                 "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['input']} | {r['points']:,} | {r['gpu']} | {r['fit_s']:.2f} | {r['mesh_s']:.2f} | "
                         f"{r['total_s']:.2f} | {r['faces']:,} | {r['chamfer_l1']:.6f} | {r['f@0.005']:.4f} | "
                         f"{r['f@0.01']:.4f} | {r['nc']:.4f} | {r['peak_gpu_mib']} |")
        a.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
