"""Benchmark ``recon batch`` (out-of-core tiles on Dask) -> results/batch.md.

Sections (``--sections``, all by default):

* ``memory``:     synthetic scenes of ``--sizes`` points (default 5M and 20M) through ``recon batch``
  with 2 workers and ``--memory-limit 2GB``: peak RSS of the driver (its own ru_maxrss, the
  embedded scheduler included) and of every worker (ru_maxrss reported by each tile task), and
  their growth from the smallest to the largest scene (targets: worker <= 2 GB, driver <= 1 GB,
  growth < 10 %);
* ``throughput``: one scene (``--throughput-points``) with 1 and with 2 workers on the same tiles:
  core points per second of the tile phase (target: 2 workers >= 0.8 x twice 1 worker);
* ``faults``:     kill -9 of the whole run (driver, scheduler and workers: the process group) when
  half of the tiles are meshed, then ``--resume``: it must finish, recompute no finished tile and
  write a merged mesh byte-identical to the uninterrupted 2-worker run; then a worker process killed
  with SIGKILL while it fits a tile: the scheduler re-runs the tile and the job succeeds;
* ``chamfer``:    a ``--chamfer-points`` scene (default 2M) tiled vs one process (the kernel backend
  on all points at once, same voxel size): CD-L1 of each against the noise-free scene samples
  (target: tiled within 5 % of one process), CD-L1 between the two, and the seams: open edges on
  tile border planes in the tiled mesh vs on the same planes in the one-process mesh;
* ``autzen``:     ../shared/data/scans/lidar/autzen_trim.laz through ``recon batch`` with small tiles
  (estimated normals, oriented up), with a screenshot.

Every run is a separate ``recon batch`` process (``python -m recon_apps.batch_cli``), so memory and
time are those a user sees. Scenes and job folders live in ``benchmarks/.cache/batch/``; section
results are cached in ``benchmarks/.cache/batch_results.json`` (``--fresh`` recomputes) and the
markdown is rewritten after every section.

    python benchmarks/bench_batch.py                       # the full protocol (long: 20M points)
    python benchmarks/bench_batch.py --quick               # 300k / 600k points, small everything
    python benchmarks/bench_batch.py --sizes 1M 4M --sections memory
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CACHE_DIR, REPO, RESULTS_DIR, SHARED_DATA, fmt, machine_info, markdown_table, now_utc, run_isolated,
)

WORK = CACHE_DIR / "batch"
RESULTS_JSON = CACHE_DIR / "batch_results.json"
SECTIONS = ("memory", "throughput", "faults", "chamfer", "autzen")
GB = 1e9
BENCH_VERSION = "b1"


# --------------------------------------------------------------------------- helpers


def parse_count(text: str) -> int:
    from recon.tiling.synth_scene import parse_count as pc

    return pc(text)


def scene(n: int, seed: int = 0) -> Path:
    """The synthetic scene of ``n`` points (generated once, streamed to LAZ)."""
    from recon.tiling.synth_scene import SceneSpec, write_scene

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"scene_{n}_{seed}.laz"
    if not path.exists():
        t = time.perf_counter()
        write_scene(path, SceneSpec(n, seed=seed))
        print(f"[scene] {path.name}: {n:,} points in {time.perf_counter() - t:.1f} s", flush=True)
    return path


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", PYTHONPATH=str(REPO))


def batch_cmd(inputs: list[str], out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "recon_apps.batch_cli", "batch", *inputs, "-o", str(out), "--json", "--quiet",
            *args]


def run_batch(inputs: list[str], out: Path, *args: str, timeout: float = 7200.0, fresh: bool = True) -> dict:
    """One ``recon batch`` process; returns its JSON summary plus ``wall``, ``rc`` and worker peaks."""
    import shutil

    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    p = subprocess.run(batch_cmd(inputs, out, *args), capture_output=True, text=True, env=_env(), timeout=timeout)
    wall = time.perf_counter() - t
    try:
        summary = json.loads(p.stdout)
    except json.JSONDecodeError:
        summary = {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]}
    summary.update(rc=p.returncode, wall=wall, workers_rss=worker_peaks(out))
    print(f"[batch] {out.name}: rc {p.returncode}, {wall:.1f} s, {summary.get('tiles')} tiles, "
          f"driver {fmt(summary.get('driver_rss_mib'))} MiB, workers {summary['workers_rss']}", flush=True)
    return summary


def manifest_rows(out: Path, sql: str) -> list[tuple]:
    if not (out / "manifest.sqlite").exists():
        return []
    db = sqlite3.connect(f"file:{out / 'manifest.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()


def worker_peaks(out: Path) -> dict[int, float]:
    """Peak RSS (MiB) per worker process id, from the tile tasks' reports."""
    rows = manifest_rows(out, "SELECT pid, MAX(rss_mib) FROM events WHERE pid IS NOT NULL GROUP BY pid")
    return {int(p): round(float(r), 1) for p, r in rows}


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.exists() else "-"


def load_results(fresh: bool) -> dict:
    if fresh or not RESULTS_JSON.exists():
        return {}
    data = json.loads(RESULTS_JSON.read_text())
    return data if data.get("version") == BENCH_VERSION else {}


def save_results(res: dict) -> None:
    res["version"] = BENCH_VERSION
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(res, indent=1, default=str))


# --------------------------------------------------------------------------- sections


def bench_memory(sizes: list[int], memory_limit: str) -> dict:
    rows = []
    for n in sizes:
        s = run_batch([str(scene(n))], WORK / f"mem_{n}", "--workers", "2", "--memory-limit", memory_limit,
                      "--no-preview")
        peaks = s["workers_rss"]
        rows.append({"points": n, "rc": s["rc"], "tiles": s.get("tiles"), "wall": s["wall"],
                     "tile_seconds": s.get("seconds", {}).get("tiles"), "driver": s.get("driver_rss_mib"),
                     "worker_max": max(peaks.values()) if peaks else None, "workers": peaks,
                     "faces": s.get("faces"), "failed": s.get("failed"), "notes": s.get("notes"),
                     "error": s.get("error")})
    return {"rows": rows, "memory_limit": memory_limit}


def bench_throughput(n: int, max_tile_points: int) -> dict:
    path = str(scene(n))
    out = {}
    for w in (1, 2):
        s = run_batch([path], WORK / f"tp_{n}_w{w}", "--workers", str(w), "--max-tile-points", str(max_tile_points),
                      "--no-preview")
        tiles_s = s.get("seconds", {}).get("tiles")
        cpu = manifest_rows(WORK / f"tp_{n}_w{w}", "SELECT SUM(cpu_seconds), SUM(seconds) FROM events WHERE status = 'done'")
        share = (cpu[0][0] / cpu[0][1]) if cpu and cpu[0][1] else None
        out[str(w)] = {"rc": s["rc"], "tiles": s.get("tiles"), "wall": s["wall"], "tile_seconds": tiles_s,
                       "cpu_share": share,
                  "rate": n / tiles_s if tiles_s else None, "total_rate": n / s["wall"], "mesh_sha1":
                  sha1(WORK / f"tp_{n}_w{w}" / "scene.ply"), "error": s.get("error")}
    r1, r2 = out["1"]["rate"], out["2"]["rate"]
    return {"points": n, "max_tile_points": max_tile_points, "runs": out,
            "efficiency": (r2 / (2 * r1)) if r1 and r2 else None,
            "same_mesh": out["1"]["mesh_sha1"] == out["2"]["mesh_sha1"]}


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(30)


def bench_kill_resume(n: int, max_tile_points: int) -> dict:
    """kill -9 of the whole run when half the tiles are meshed, then --resume."""
    import shutil

    ref = WORK / f"tp_{n}_w2" / "scene.ply"
    if not ref.exists():
        bench_throughput(n, max_tile_points)
    out = WORK / f"kill_{n}"
    shutil.rmtree(out, ignore_errors=True)
    args = ("--workers", "2", "--max-tile-points", str(max_tile_points), "--no-preview")
    p = subprocess.Popen(batch_cmd([str(scene(n))], out, *args), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    t0 = time.perf_counter()
    killed_at = None
    while p.poll() is None and time.perf_counter() - t0 < 7200:
        rows = manifest_rows(out, "SELECT mesh_status, COUNT(*) FROM tiles GROUP BY mesh_status")
        counts = dict(rows)
        total = sum(counts.values())
        if total and counts.get("done", 0) >= total / 2:
            _kill_group(p)
            killed_at = time.perf_counter() - t0
            break
        time.sleep(0.3)
    leftovers = _processes_in_session(p.pid)
    fit_done = {r[0] for r in manifest_rows(out, "SELECT id FROM tiles WHERE fit_status = 'done'")}
    mesh_done = {r[0] for r in manifest_rows(out, "SELECT id FROM tiles WHERE mesh_status = 'done'")}
    n_events = len(manifest_rows(out, "SELECT id FROM events"))
    tiles = len(manifest_rows(out, "SELECT id FROM tiles"))
    s = run_batch([str(scene(n))], out, *args, "--resume", fresh=False)
    new = manifest_rows(out, f"SELECT tile, phase FROM events WHERE id > {n_events} AND status = 'done'")
    refit = sorted({t for t, ph in new if ph == "fit"} & fit_done)
    remesh = sorted({t for t, ph in new if ph == "mesh"} & mesh_done)
    return {"points": n, "killed_after_s": killed_at, "tiles": tiles, "fit_done_at_kill": len(fit_done),
            "mesh_done_at_kill": len(mesh_done), "leftover_processes": leftovers, "resume_rc": s["rc"],
            "resume_failed": s.get("failed"), "reused_fits": s.get("reused_fits"),
            "reused_meshes": s.get("reused_meshes"), "refitted_done_tiles": refit, "remeshed_done_tiles": remesh,
            "identical": sha1(out / "scene.ply") == sha1(ref), "resume_wall": s["wall"]}


def _processes_in_session(sid: int, grace: float = 5.0) -> int:
    """Live (non-zombie) processes still in the killed run's session after ``grace`` seconds, via /proc."""
    deadline = time.perf_counter() + grace
    while True:
        n = 0
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if os.getsid(int(d.name)) == sid and (d / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    n += 1
            except (OSError, IndexError):
                pass
        if n == 0 or time.perf_counter() > deadline:
            return n
        time.sleep(0.5)


def bench_worker_kill(n: int, max_tile_points: int) -> dict:
    """SIGKILL one worker process while it fits a tile; the job must still succeed."""
    import shutil

    import psutil

    out = WORK / f"wkill_{n}"
    shutil.rmtree(out, ignore_errors=True)
    args = ("--workers", "2", "--max-tile-points", str(max_tile_points), "--no-preview")
    p = subprocess.Popen(batch_cmd([str(scene(n))], out, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=_env(), start_new_session=True)
    t0 = time.perf_counter()
    victim = None
    while p.poll() is None and time.perf_counter() - t0 < 7200 and victim is None:
        fits = dict(manifest_rows(out, "SELECT fit_status, COUNT(*) FROM tiles GROUP BY fit_status"))
        if fits.get("done", 0) >= 1 and fits.get("pending", 0) >= 2:
            workers = [c for c in psutil.Process(p.pid).children(recursive=True)
                       if "spawn_main" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())]
            busy = sorted(workers, key=lambda c: c.cpu_percent(interval=0.2), reverse=True)
            if busy:
                victim = busy[0].pid
                os.kill(victim, signal.SIGKILL)
                break
        time.sleep(0.3)
    stdout, _ = p.communicate(timeout=7200)
    try:
        summary = json.loads(stdout)
    except json.JSONDecodeError:
        summary = {}
    pids = {r[0] for r in manifest_rows(out, "SELECT DISTINCT pid FROM events WHERE pid IS NOT NULL")}
    return {"points": n, "killed_pid": victim, "rc": p.returncode, "failed": summary.get("failed"),
            "done": summary.get("done"), "tiles": summary.get("tiles"), "worker_pids_seen": len(pids),
            "killed_pid_reported_work": victim in pids}


def single_process_mesh(scene_path: str, voxel_size: float, out_ply: str) -> dict:
    """The kernel backend on all points at once (a spawned process): the one-process reference."""
    import warnings

    import laspy

    from recon.backends.kernel import KernelConfig, KernelReconstructor
    from recon.io import save_mesh

    las = laspy.read(scene_path)
    pts = np.stack([las.x, las.y, las.z], 1)
    nrm = np.stack([las.nx, las.ny, las.nz], 1).astype(np.float32)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        field = KernelReconstructor(KernelConfig(voxel_size=voxel_size, mise_iter=0, device="cpu")).reconstruct(pts, nrm)
        mesh = field.extract_mesh()
    secs = time.perf_counter() - t
    save_mesh(mesh, out_ply)
    return {"seconds": secs, "faces": mesh.n_faces}


def _surface_distance(mesh, clean: np.ndarray, offset: np.ndarray, samples: int, seed: int = 0) -> dict:
    """Accuracy (mesh samples -> clean points), completeness (clean points -> mesh samples), CD-L1."""
    from scipy.spatial import cKDTree

    from recon.ops.sampling import sample_surface
    from recon.types import Mesh

    rng = np.random.default_rng(seed)
    m = Mesh(mesh.vertices - offset, mesh.faces)
    s, _ = sample_surface(m, samples, rng)
    c = clean[rng.choice(len(clean), min(samples, len(clean)), replace=False)] - offset
    acc = float(cKDTree(c).query(s, workers=1)[0].mean())
    comp = float(cKDTree(s).query(c, workers=1)[0].mean())
    return {"accuracy": acc, "completeness": comp, "chamfer_l1": 0.5 * (acc + comp)}


def bench_chamfer(n: int, samples: int, tile_points: int | None = None) -> dict:
    from recon.io import load_mesh
    from recon.tiling.lattice import Lattice
    from recon.tiling.stitch import boundary_edges, load_merged, plane_edges
    from recon.tiling.synth_scene import SceneSpec, iter_scene

    path = scene(n)
    extra = ("--max-tile-points", str(tile_points)) if tile_points else ()
    s = run_batch([str(path)], WORK / f"cd_{n}", "--workers", "2", "--no-preview", *extra)
    if s["rc"] not in (0, 1) or "lattice" not in s:
        return {"points": n, "error": s.get("error")}
    lat = Lattice.from_dict(s["lattice"])
    single_ply = WORK / f"cd_{n}_single.ply"
    one = run_isolated(single_process_mesh, {"scene_path": str(path), "voxel_size": lat.voxel_size,
                                             "out_ply": str(single_ply)}, timeout=7200)
    if one.get("error"):
        return {"points": n, "error": f"single process: {one['error']}"}
    tiled = load_merged(WORK / f"cd_{n}" / "scene.ply")
    single = load_mesh(single_ply)
    spec = SceneSpec(n, seed=0, noise=0.0, outliers=0.0)
    clean = np.concatenate([b[0] for b in iter_scene(spec)])
    off = np.asarray(spec.offset)
    d_t = _surface_distance(tiled, clean, off, samples)
    d_s = _surface_distance(single, clean, off, samples)
    from recon.eval import evaluate_meshes
    from recon.types import Mesh

    between = evaluate_meshes(Mesh(tiled.vertices - off, tiled.faces), Mesh(single.vertices - off, single.faces),
                              n_samples=samples, tau=lat.voxel_size, relative=False)
    be_t, be_s = boundary_edges(tiled.faces), boundary_edges(single.faces)
    # the seam baseline: one tile on the same lattice (the one-process backend run above has its own
    # voxel grid, whose cell faces never lie on the tile planes, so it cannot show the cell set's own rims there)
    one_run = run_batch([str(path)], WORK / f"cd_{n}_one_tile", "--workers", "1", "--tile-size", "1e9",
                        "--memory-limit", "16GB", "--no-preview")
    one_tile = load_merged(WORK / f"cd_{n}_one_tile" / "scene.ply") if one_run["rc"] == 0 else None
    return {"points": n, "voxel": lat.voxel_size, "tiles": s.get("tiles"), "fitted": s.get("fitted"), "tiled": d_t,
            "single": d_s,
            "ratio": d_t["chamfer_l1"] / d_s["chamfer_l1"], "between_cd": between.chamfer_l1,
            "between_f": between.fscore[0], "tiled_seconds": s["wall"], "single_seconds": one.get("seconds"),
            "single_rss_mib": one.get("process_peak_rss_mib"), "tiled_faces": tiled.n_faces,
            "single_faces": single.n_faces, "open_edges_tiled": int(len(be_t)), "open_edges_single": int(len(be_s)),
            "plane_edges_tiled": int(plane_edges(tiled, lat).sum()),
            "plane_edges_single": int(plane_edges(single, lat).sum()), "welded": s.get("welded"),
            "one_tile_open_edges": None if one_tile is None else int(len(boundary_edges(one_tile.faces))),
            "one_tile_plane_edges": None if one_tile is None else int(plane_edges(one_tile, lat).sum()),
            "one_tile_faces": None if one_tile is None else one_tile.n_faces}


def bench_autzen(tile_size: float) -> dict:
    from recon.tiling.lattice import Lattice
    from recon.tiling.stitch import boundary_edges, load_merged, plane_edges

    path = SHARED_DATA / "scans" / "lidar" / "autzen_trim.laz"
    if not path.exists():
        return {"error": f"{path} not found"}
    out = WORK / "autzen"
    s = run_batch([str(path)], out, "--workers", "2", "--tile-size", str(tile_size))
    res = {"rc": s["rc"], "tiles": s.get("tiles"), "done": s.get("done"), "wall": s["wall"], "points": s.get("points"),
           "faces": s.get("faces"), "failed": s.get("failed"), "error": s.get("error"), "notes": s.get("notes")}
    if s["rc"] == 0:
        m = load_merged(out / "scene.ply")
        lat = Lattice.from_dict(s["lattice"])
        res.update(open_edges=int(len(boundary_edges(m.faces))), plane_edges=int(plane_edges(m, lat).sum()))
        one = run_batch([str(path)], WORK / "autzen_one_tile", "--workers", "1", "--tile-size", "100000",
                        "--no-preview")
        if one["rc"] == 0:
            m1 = load_merged(WORK / "autzen_one_tile" / "scene.ply")
            res.update(one_tile_faces=m1.n_faces, one_tile_open_edges=int(len(boundary_edges(m1.faces))),
                       one_tile_plane_edges=int(plane_edges(m1, lat).sum()))
        img = RESULTS_DIR / "images" / "batch_autzen.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "recon_apps.cli", "view", str(out / "scene.ply"), "--screenshot",
                            str(img), "--size", "1200x700"], capture_output=True, text=True, env=_env(), timeout=600)
        res["image"] = img.name if r.returncode == 0 and img.exists() else None
    return res


# --------------------------------------------------------------------------- report


def _mib(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**PASS**" if ok else "**MISS**")


def write_report(res: dict, path: Path) -> None:
    m = machine_info()
    lines = ["# recon batch: out-of-core tiles on Dask", ""]
    if "--quick" in res.get("argv", ""):
        lines += ["> **Quick run** (small scenes, for checking the benchmark itself): the targets below are meant "
                  "for the full protocol (`python benchmarks/bench_batch.py`: 5M / 20M, 2M).", ""]
    lines += [
             f"- Date: {now_utc()}; `python benchmarks/bench_batch.py {res.get('argv', '')}`".rstrip(),
             f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM; {m['versions']}",
             "- Scenes: `recon synth-scene` (city blocks: rolling terrain, box buildings, tree crowns; airborne "
             "scanner visibility and thinning, 3 cm range noise, 0.05 % outliers; 12 points/m^2; normals stored), "
             "seed 0, LAZ with offset (636000, 850000, 100).",
             "- Each run is one `recon batch` process (embedded LocalCluster, 1 thread per worker, kernel backend "
             "defaults: density-rule voxel, depth 4, blend 4 voxels, MISE off). Worker peak RSS = max ru_maxrss "
             "reported by its tile tasks; driver peak RSS = the `recon batch` process (scheduler included).", ""]
    mem = res.get("memory")
    if mem:
        rows = mem["rows"]
        lines += ["## Memory", "", markdown_table(
            ["points", "tiles", "wall s", "tile phase pts/s", "driver peak MiB", "worker peak MiB (max)",
             "faces", "status"],
            [[f"{r['points']:,}", r["tiles"], r["wall"], (r["points"] / r["tile_seconds"]) if r["tile_seconds"] else None,
              _mib(r["driver"]), _mib(r["worker_max"]), r["faces"],
              "ok" if r["rc"] == 0 else f"rc {r['rc']} {r.get('error') or ''}"] for r in rows]), ""]
        ok_rows = [r for r in rows if r["rc"] == 0 and r["worker_max"] and r["driver"]]
        if ok_rows:
            wmax = max(r["worker_max"] for r in ok_rows)
            dmax = max(r["driver"] for r in ok_rows)
            lines.append(f"- worker peak {wmax:.0f} MiB (target <= 2 GB = {2 * GB / 2**20:.0f} MiB): "
                         f"{_verdict(wmax * 2**20 <= 2 * GB)}; driver peak {dmax:.0f} MiB (target <= 1 GB = "
                         f"{GB / 2**20:.0f} MiB): {_verdict(dmax * 2**20 <= GB)}")
            if len(ok_rows) >= 2:
                a, b = ok_rows[0], ok_rows[-1]
                gw = b["worker_max"] / a["worker_max"] - 1
                gd = b["driver"] / a["driver"] - 1
                lines.append(f"- growth {a['points']:,} -> {b['points']:,} points: worker {gw:+.1%}, driver {gd:+.1%} "
                             f"(target < 10 %): {_verdict(max(gw, gd) < 0.10)}")
            lines.append("")
    tp = res.get("throughput")
    if tp:
        runs = tp["runs"]
        lines += ["## Throughput (same tiles)", "", markdown_table(
            ["workers", "tiles", "tile phase s", "points/s (tile phase)", "wall s", "points/s (wall)",
             "task CPU / task wall"],
            [[w, runs[w]["tiles"], runs[w]["tile_seconds"], runs[w]["rate"], runs[w]["wall"], runs[w]["total_rate"],
              runs[w].get("cpu_share")] for w in sorted(runs, key=int)]), ""]
        eff = tp.get("efficiency")
        lines.append(f"- {tp['points']:,} points, tiles of at most {tp['max_tile_points']:,} points; 2-worker rate / "
                     f"(2 x 1-worker rate) = {fmt(eff)} (target >= 0.8): {_verdict(None if eff is None else eff >= 0.8)}; "
                     f"merged meshes of the two runs byte-identical: {tp['same_mesh']}. A task CPU / wall share well "
                     "below 1 means the tasks waited for a CPU (other load on the machine): rerun when it is quiet.")
        lines.append("")
    fk = res.get("faults")
    if fk:
        k, w = fk.get("kill"), fk.get("worker")
        lines += ["## Faults", ""]
        if k:
            ok = k["resume_rc"] == 0 and not k["refitted_done_tiles"] and not k["remeshed_done_tiles"] and k["identical"]
            lines += [f"- kill -9 of the whole run after {fmt(k['killed_after_s'])} s ({k['mesh_done_at_kill']} of "
                      f"{k['tiles']} tiles meshed, {k['fit_done_at_kill']} fitted; {k['leftover_processes']} processes "
                      f"left behind), then `--resume`: exit {k['resume_rc']}, {k['reused_fits']} fits and "
                      f"{k['reused_meshes']} meshes reused, finished tiles recomputed: "
                      f"{len(k['refitted_done_tiles'])} fits / {len(k['remeshed_done_tiles'])} meshes, merged mesh "
                      f"byte-identical to the uninterrupted run: {k['identical']}: {_verdict(ok)}"]
        if w:
            ok = w["rc"] == 0 and not w["failed"] and w["killed_pid"] is not None
            lines += [f"- SIGKILL of worker process {w['killed_pid']} while fitting: exit {w['rc']}, "
                      f"{w['done']} of {w['tiles']} tiles meshed, failed: {w['failed'] or 'none'} "
                      f"({w['worker_pids_seen']} worker processes did work: the nanny restarted the killed one and "
                      f"the scheduler re-ran its tile): {_verdict(ok)}"]
        lines.append("")
    cd = res.get("chamfer")
    if cd and not cd.get("error"):
        lines += ["## Tiled vs one process", "", markdown_table(
            ["run", "CD-L1 vs clean scene", "accuracy", "completeness", "faces", "open edges",
             "open edges on tile planes", "seconds"],
            [["tiled", cd["tiled"]["chamfer_l1"], cd["tiled"]["accuracy"], cd["tiled"]["completeness"],
              cd["tiled_faces"], cd["open_edges_tiled"], cd["plane_edges_tiled"], cd["tiled_seconds"]],
             ["one process", cd["single"]["chamfer_l1"], cd["single"]["accuracy"], cd["single"]["completeness"],
              cd["single_faces"], cd["open_edges_single"], cd["plane_edges_single"], cd["single_seconds"]]]), "",
            f"- {cd['points']:,} points, voxel {cd['voxel']:g} m, {cd['tiles']} tiles ({cd.get('fitted', '-')} with a "
            f"field of their own); CD-L1 tiled / one process = "
            f"{fmt(cd['ratio'])} (target <= 1.05): {_verdict(cd['ratio'] <= 1.05)}; CD-L1 between the two meshes "
            f"{fmt(cd['between_cd'])} m (F@1 voxel {fmt(cd['between_f'])}); one-process peak RSS "
            f"{_mib(cd['single_rss_mib'])} MiB.",
            f"- Seams: {cd['welded']} border vertices welded. Open edges lying on tile border planes: "
            f"{cd['plane_edges_tiled']} tiled vs {cd.get('one_tile_plane_edges', '-')} for a one-tile `recon batch` "
            f"run on the same lattice ({cd.get('one_tile_faces', '-')} faces, {cd.get('one_tile_open_edges', '-')} open "
            "edges in all): the sparse cell set's own rims and holes where they happen to lie on a plane; a seam gap "
            "would add to the tiled count. (The one-process backend mesh has its own voxel grid, so none of its cell "
            "faces lies on the planes.)", ""]
    elif cd:
        lines += ["## Tiled vs one process", "", f"- error: {cd['error']}", ""]
    az = res.get("autzen")
    if az:
        lines += ["## Real data: autzen_trim.laz", ""]
        if az.get("rc") == 0:
            notes = az.get("notes") or {}
            lines += [f"- {az['points']:,} points, voxel {fmt(notes.get('voxel_size'))} m (density rule), tiles "
                      f"{' x '.join(fmt(v) for v in notes.get('tile_edge', []))} m: {az['tiles']} tiles, "
                      f"{az['done']} meshed, {az['faces']:,} faces in {az['wall']:.1f} s; open edges {az['open_edges']}, "
                      f"of which on tile planes {az['plane_edges']} (one-tile run: {az.get('one_tile_faces', '-')} "
                      f"faces, {az.get('one_tile_open_edges', '-')} open edges, {az.get('one_tile_plane_edges', '-')} on "
                      "the same planes: the scan's own holes and rims)."]
            if az.get("image"):
                lines += ["", f"![autzen](images/{az['image']})"]
        else:
            lines += [f"- failed: rc {az.get('rc')}: {az.get('error') or az.get('failed')}"]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"[report] {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--sizes", nargs="*", default=["5M", "20M"], help="memory section scene sizes")
    ap.add_argument("--throughput-points", default="2M", help="throughput / fault scene size")
    ap.add_argument("--tile-points", default="150k", help="throughput / fault runs: --max-tile-points")
    ap.add_argument("--chamfer-points", default="2M", help="tiled vs one-process scene size")
    ap.add_argument("--chamfer-tile-points", default=None,
                    help="tiled run of the chamfer section: --max-tile-points (default: from the memory limit)")
    ap.add_argument("--samples", default="1M", help="surface samples for the Chamfer distances")
    ap.add_argument("--autzen-tile", type=float, default=250.0, help="autzen tile edge, metres")
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--quick", action="store_true", help="300k/600k memory, 300k elsewhere, 200k samples")
    ap.add_argument("--fresh", action="store_true", help="recompute the selected sections even if cached")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "batch.md")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.throughput_points, a.chamfer_points, a.samples, a.tile_points = ["300k", "600k"], "300k", "300k", "200k", "40k"
        a.chamfer_tile_points = "60k"
    sizes = [parse_count(s) for s in a.sizes]
    tp_n, tile_pts = parse_count(a.throughput_points), parse_count(a.tile_points)
    cd_tiles = parse_count(a.chamfer_tile_points) if a.chamfer_tile_points else None
    res = load_results(False)
    res["argv"] = " ".join(argv if argv is not None else sys.argv[1:])
    key = {"memory": [sizes, a.memory_limit], "throughput": [tp_n, tile_pts], "faults": [tp_n, tile_pts],
           "chamfer": [parse_count(a.chamfer_points), parse_count(a.samples), cd_tiles], "autzen": [a.autzen_tile]}
    for sec in a.sections:
        if not a.fresh and res.get(sec) is not None and res.get(f"{sec}_key") == key[sec]:
            print(f"[cached] {sec}", flush=True)
            continue
        t = time.perf_counter()
        if sec == "memory":
            res[sec] = bench_memory(sizes, a.memory_limit)
        elif sec == "throughput":
            res[sec] = bench_throughput(tp_n, tile_pts)
        elif sec == "faults":
            res[sec] = {"kill": bench_kill_resume(tp_n, tile_pts), "worker": bench_worker_kill(tp_n, tile_pts)}
        elif sec == "chamfer":
            res[sec] = bench_chamfer(parse_count(a.chamfer_points), parse_count(a.samples), cd_tiles)
        elif sec == "autzen":
            res[sec] = bench_autzen(a.autzen_tile)
        res[f"{sec}_key"] = key[sec]
        print(f"[done] {sec} in {time.perf_counter() - t:.0f} s", flush=True)
        save_results(res)
        write_report(res, a.out)
    write_report(res, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
