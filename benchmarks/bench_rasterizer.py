"""Benchmark the pure-PyTorch Gaussian tile rasteriser (recon/backends/gvkf/rasterizer.py) on the CPU.

Scene: N flat Gaussians tangent to the unit sphere (a trained object looks like this: Gaussians
on a surface), sized so that neighbours overlap (1-sigma tangent scale ~ 0.8 * the mean spacing,
normal scale 0.1x that), opacity 0.8, random colours; one camera at distance 2.5 looking at the
centre with a 50 degree field of view (the sphere covers ~55 % of the image width). The 1-sigma
footprint is ~1-2 px at 128^2 and 20k Gaussians.

Reports medians over repeats, one torch thread, of:
- forward only (``torch.no_grad``, all outputs; and rgb/alpha only with ``compute_extras=False``);
- forward + backward of a loss on all five outputs;
at 128x128 with 20k Gaussians, plus the growth over Gaussians {5k, 10k, 20k, 40k} at 128^2 and
over pixels {64^2, 128^2, 256^2} at 20k Gaussians. Writes benchmarks/results/rasterizer.md.

    python benchmarks/bench_rasterizer.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, machine_info, markdown_table, now_utc  # noqa: E402
from recon.backends.gvkf.gaussians import GaussianSet, rotmat_to_quat  # noqa: E402
from recon.backends.gvkf.rasterizer import rasterize  # noqa: E402


def sphere_gaussians(n: int, seed: int = 0) -> GaussianSet:
    """``n`` flat Gaussians on a Fibonacci-jittered unit sphere, local z along the normal."""
    rng = np.random.default_rng(seed)
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = math.pi * (1 + 5 ** 0.5) * i
    p = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], -1)
    p += rng.normal(scale=0.2 * math.sqrt(4 * math.pi / n), size=p.shape)
    nrm = p / np.linalg.norm(p, axis=1, keepdims=True)
    a = np.cross(nrm, rng.normal(size=(n, 3)))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = np.cross(nrm, a)
    R = np.stack([a, b, nrm], -1)                                   # columns: local axes
    spacing = math.sqrt(4 * math.pi / n)
    s = 0.8 * spacing * np.exp(rng.normal(scale=0.2, size=(n, 2)))
    scales = np.concatenate([s, 0.1 * s[:, :1]], 1)
    quats = rotmat_to_quat(torch.as_tensor(R, dtype=torch.float64)).float()
    return GaussianSet.from_values(torch.as_tensor(p, dtype=torch.float32), torch.as_tensor(scales, dtype=torch.float32),
                                   quats, 0.8, torch.as_tensor(rng.uniform(0.1, 0.9, (n, 3)), dtype=torch.float32))


def camera(size: int, distance: float = 2.5, fov_deg: float = 50.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, cam_to_world) of a ``size`` x ``size`` camera on the -y axis looking at the origin, z up."""
    f = 0.5 * size / math.tan(math.radians(fov_deg) / 2)
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]], dtype=torch.float32)
    c2w = torch.eye(4)
    c2w[:3, 0] = torch.tensor([1.0, 0, 0])
    c2w[:3, 1] = torch.tensor([0, 0, -1.0])
    c2w[:3, 2] = torch.tensor([0, 1.0, 0])
    c2w[:3, 3] = torch.tensor([0, -distance, 0.3])
    return K, c2w


def _median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall and median process-CPU seconds of ``fn()`` over ``repeats`` after a warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def measure(n: int, size: int, repeats: int, tile_size: int = 8) -> dict:
    """Median seconds of forward (all outputs / rgb only) and forward+backward; work counters."""
    gs = sphere_gaussians(n)
    K, c2w = camera(size)

    def fwd(extras: bool):
        with torch.no_grad():
            return rasterize(gs, K, c2w, size, size, compute_extras=extras, tile_size=tile_size)

    def fwd_bwd():
        for p in gs.parameters():
            p.requires_grad_(True)
            p.grad = None
        out = rasterize(gs, K, c2w, size, size, tile_size=tile_size)
        loss = out.rgb.mean() + out.alpha.mean() + 0.1 * out.depth.mean() + out.normal.mean() + out.distortion.mean()
        loss.backward()
        for p in gs.parameters():
            p.requires_grad_(False)

    out = fwd(True)
    r = {"n": n, "size": size, "tile": tile_size, "visible": int(out.visible.sum()),
         "radius": float(out.radii[out.radii > 0].median()), "coverage": float(out.alpha.mean())}
    for key, fn in (("fwd", lambda: fwd(True)), ("fwd_rgb", lambda: fwd(False)), ("fwd_bwd", fwd_bwd)):
        r[key], r[key + "_cpu"] = _median_time(fn, repeats)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "rasterizer.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cases = [(20_000, 128, 8)] + [(n, 128, 8) for n in (5_000, 10_000, 40_000)] + \
        [(20_000, s, 8) for s in (64, 256)] + [(20_000, 128, t) for t in (4, 16)]
    res = {}
    for n, size, tile in cases:
        res[(n, size, tile)] = r = measure(n, size, args.repeats, tile)
        print(f"N={n:6d} {size:4d}^2 tile {tile:2d}  fwd {r['fwd'] * 1e3:7.1f} ms  fwd(rgb) {r['fwd_rgb'] * 1e3:7.1f} ms  "
              f"fwd+bwd {r['fwd_bwd'] * 1e3:7.1f} ms (cpu {r['fwd_bwd_cpu'] * 1e3:7.1f})  visible {r['visible']}  "
              f"median 3-sigma radius {r['radius']:.2f} px", flush=True)

    def row(r):
        ms = lambda k: f"{r[k] * 1e3:.1f} ({r[k + '_cpu'] * 1e3:.1f})"  # noqa: E731
        return [str(r["n"]), f"{r['size']}^2", str(r["tile"]), ms("fwd"), ms("fwd_rgb"), ms("fwd_bwd"),
                f"{1.0 / r['fwd_rgb']:.0f} ({1.0 / r['fwd_rgb_cpu']:.0f})", str(r["visible"]), f"{r['radius']:.2f}"]

    head = ["Gaussians", "pixels", "tile", "forward ms", "forward rgb-only ms", "fwd+bwd ms", "fps (rgb-only)",
            "visible", "median 3-sigma radius px"]
    m = machine_info()
    lines = [
        "# Gaussian tile rasteriser (pure PyTorch, CPU)",
        "",
        f"Generated by `python benchmarks/bench_rasterizer.py --repeats {args.repeats} --threads {args.threads}` "
        f"on {now_utc()}.",
        f"Machine: {m['cpu']}, {m['cores']} cores visible, torch threads = {args.threads}; {m['versions']}.",
        "",
        "Scene: N flat Gaussians tangent to the unit sphere (1-sigma tangent scale 0.8x the mean spacing, "
        "opacity 0.8), camera at distance 2.5 with a 50 degree field of view; chunk 32, "
        "early stop at T < 1e-4, no per-tile cap. Times are medians of "
        f"{args.repeats} repeats after one warm-up, wall clock with the process CPU time in brackets "
        "(the machine is shared, so wall time includes waiting). \"forward\" renders rgb, alpha, depth, "
        "normal and distortion under `torch.no_grad`; \"rgb-only\" passes `compute_extras=False`; "
        "\"fwd+bwd\" back-propagates a loss on all five outputs to all five Gaussian tensors.",
        "",
        "## 128x128, 20k Gaussians",
        "",
        markdown_table(head, [row(res[(20_000, 128, 8)])]),
        "",
        "## Growth with the number of Gaussians (128x128)",
        "",
        markdown_table(head, [row(res[(n, 128, 8)]) for n in (5_000, 10_000, 20_000, 40_000)]),
        "",
        "## Growth with the number of pixels (20k Gaussians)",
        "",
        markdown_table(head, [row(res[(20_000, s, 8)]) for s in (64, 128, 256)]),
        "",
        "## Tile size (128x128, 20k Gaussians)",
        "",
        "Cost follows the padded (pixel, Gaussian) pairs: a smaller tile wastes fewer pixels on each "
        "Gaussian's box but gathers Gaussian parameters more often.",
        "",
        markdown_table(head, [row(res[(20_000, 128, t)]) for t in (4, 8, 16)]),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
