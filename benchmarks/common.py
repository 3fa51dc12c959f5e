"""Helpers shared by the benchmarks: the mesh list, normalised inputs, isolated runs, tables.

Typical use in a ``bench_<backend>.py``::

    from common import (list_meshes, prepare_input, run_isolated, machine_info, ...)

    for path in list_meshes():
        case = prepare_input(path, variant="noisy")      # cached under benchmarks/.cache/
        res = run_isolated(my_case_fn, {"case": case.cache_file, ...})

The ground truth is each mesh normalised to unit longest bounding-box side,
centred at the origin; inputs are area-weighted surface samples with the exact
face normals, optionally with Gaussian noise on the positions.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import multiprocessing as mp
import os
import platform
import re
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

# torch's threads spin briefly then sleep, as in the recon commands (apps/__init__.py); before torch loads
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from recon.meshing.cleanup import mesh_volume  # noqa: E402
from recon.types import Mesh, PointCloud  # noqa: E402

SHARED_DATA = Path(os.environ.get("RECON_SHARED_DATA", REPO.parent / "shared" / "data"))
MESH_DIR = SHARED_DATA / "meshes"
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"
MESH_SUFFIXES = (".obj", ".ply", ".stl")

#: Default protocol (documented in every results file).
N_INPUT_POINTS = 200_000
NOISE_SIGMA = 0.005
EVAL_SAMPLES = 100_000
INPUT_SEED = 0
EVAL_SEED = 0


# --------------------------------------------------------------------------- meshes


def list_meshes(root: Path = MESH_DIR, only: Sequence[str] | None = None) -> list[Path]:
    """Every .obj/.ply/.stl file under ``root`` (sorted), optionally filtered.

    Args:
        root: folder searched recursively.
        only: keep a file when any of these strings equals its :func:`mesh_name`,
            its stem, or is a substring of its name (case-insensitive).
    """
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if only:
        keys = [s.lower() for s in only]

        def keep(p: Path) -> bool:
            name = mesh_name(p, root).lower()
            return any(k == name or k == p.stem.lower() or k in name for k in keys)

        files = [p for p in files if keep(p)]
    return files


def mesh_name(path: Path, root: Path = MESH_DIR) -> str:
    """A short unique name: "<folder>/<stem>" (two bunnies live in different folders)."""
    path = Path(path)
    try:
        rel = path.relative_to(root)
        parent = rel.parent.name or path.parent.name
    except ValueError:
        parent = path.parent.name
    return f"{parent}/{path.stem}"


def load_mesh_any(path: Path) -> tuple[Mesh | None, str]:
    """Load a mesh with ``recon.io.load_mesh`` if available, else trimesh.

    Returns:
        (mesh or None, note). ``None`` when no reader produced triangles; the note
        says which reader was used or why it failed.
    """
    errors = []
    try:
        from recon.io import load_mesh  # written in parallel; may not exist yet

        try:
            m = load_mesh(path)
            m = m if isinstance(m, Mesh) else Mesh(m.vertices, m.faces)
            if m.n_faces > 0:
                return m, "recon.io.load_mesh"
            errors.append("recon.io.load_mesh: no triangles")
        except Exception as e:  # noqa: BLE001 - fall back to trimesh
            errors.append(f"recon.io.load_mesh: {type(e).__name__}: {str(e)[:120]}")
    except ImportError:
        errors.append("recon.io.load_mesh not importable")
    try:
        import trimesh

        tm = trimesh.load(str(path), force="mesh")
        if len(tm.faces) > 0:
            return Mesh(np.asarray(tm.vertices), np.asarray(tm.faces)), "trimesh"
        errors.append("trimesh: no triangles")
    except Exception as e:  # noqa: BLE001
        errors.append(f"trimesh: {type(e).__name__}: {str(e)[:120]}")
    return None, "; ".join(errors)


def orient_outward(mesh: Mesh) -> tuple[Mesh, bool]:
    """The mesh with faces reversed if its signed volume is negative (inside-out files
    such as scivi/buddha and scivi/feline), and whether it was flipped."""
    if mesh_volume(mesh) < 0:
        return Mesh(mesh.vertices, mesh.faces[:, ::-1].copy()), True
    return mesh, False


def normalise_mesh(mesh: Mesh) -> Mesh:
    """The mesh translated to its bounding-box centre and scaled to unit longest side.

    Unreferenced vertices are ignored for the box (and dropped).
    """
    used = np.unique(mesh.faces)
    remap = np.full(mesh.n_vertices, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    v = mesh.vertices[used]
    lo, hi = v.min(axis=0), v.max(axis=0)
    side = float(np.max(hi - lo))
    if not np.isfinite(side) or side <= 0:
        raise ValueError("degenerate mesh (zero extent)")
    return Mesh((v - 0.5 * (lo + hi)) / side, remap[mesh.faces])


# --------------------------------------------------------------------------- inputs


@dataclass
class Case:
    """One prepared benchmark input, stored as an .npz in the cache.

    Attributes:
        name: mesh name ("folder/stem").
        variant: "clean" or "noisy".
        cache_file: .npz with gt_vertices, gt_faces, points, normals.
        n_points: input points.
        sigma: Gaussian noise std on positions (units of the unit-side GT).
        loader: which reader loaded the source mesh.
        flipped: whether the source was wound inside out and reversed.
    """

    name: str
    variant: str
    cache_file: Path
    n_points: int
    sigma: float
    loader: str
    flipped: bool = False


#: Bump when the input preparation changes so cached inputs (and results keyed on them) refresh.
INPUT_VERSION = 2


def _cache_key(path: Path, variant: str, n: int, seed: int, sigma: float) -> str:
    st = path.stat()
    h = hashlib.sha1(f"v{INPUT_VERSION}|{path.resolve()}|{st.st_size}|{int(st.st_mtime)}|{variant}|{n}|{seed}|{sigma}"
                     .encode())
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", mesh_name(path))
    return f"{stem}_{variant}_{n}_{h.hexdigest()[:10]}.npz"


def prepare_input(
    path: Path,
    variant: str = "clean",
    *,
    n_points: int = N_INPUT_POINTS,
    sigma: float = NOISE_SIGMA,
    seed: int = INPUT_SEED,
    cache_dir: Path = CACHE_DIR,
) -> Case | None:
    """Normalise a mesh and sample an oriented input cloud, cached on disk.

    The mesh is normalised (:func:`normalise_mesh`) and, if wound inside out, reversed
    (:func:`orient_outward`), so the normals point outward. The points are
    area-weighted samples (seeded) with exact face normals; the "noisy" variant adds N(0, sigma^2) noise to each coordinate (normals unchanged).

    Returns:
        The :class:`Case`, or ``None`` (with a printed note) if the mesh cannot be read.
    """
    from recon.ops.sampling import sample_surface

    if variant not in ("clean", "noisy"):
        raise ValueError(f"unknown variant {variant!r}")
    sig = sigma if variant == "noisy" else 0.0
    cache_dir.mkdir(parents=True, exist_ok=True)
    f = cache_dir / _cache_key(path, variant, n_points, seed, sig)
    if f.exists():
        with np.load(f, allow_pickle=False) as z:
            loader = str(z["loader"])
            flipped = bool(z["flipped"]) if "flipped" in z.files else False
        return Case(mesh_name(path), variant, f, n_points, sig, loader, flipped)
    mesh, note = load_mesh_any(path)
    if mesh is None:
        print(f"[skip] {mesh_name(path)}: cannot be read ({note})", flush=True)
        return None
    gt, flipped = orient_outward(normalise_mesh(mesh))
    if flipped:
        print(f"[note] {mesh_name(path)}: faces wound inward (negative volume); reversed so normals point out",
              flush=True)
    rng = np.random.default_rng(seed)
    pts, nrm = sample_surface(gt, n_points, rng)
    if sig > 0:
        pts = pts + rng.normal(0.0, sig, size=pts.shape)
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, gt_vertices=gt.vertices, gt_faces=gt.faces, points=pts, normals=nrm, loader=np.str_(note),
             flipped=np.bool_(flipped))
    os.replace(tmp, f)
    return Case(mesh_name(path), variant, f, n_points, sig, note, flipped)


def load_case(cache_file: str | Path) -> tuple[Mesh, PointCloud]:
    """(normalised GT mesh, oriented input cloud) from a prepared case file."""
    with np.load(cache_file, allow_pickle=False) as z:
        gt = Mesh(z["gt_vertices"], z["gt_faces"])
        cloud = PointCloud(z["points"], z["normals"], source=str(cache_file))
    return gt, cloud


# --------------------------------------------------------------------------- isolation


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


class Timer:
    """Context manager measuring wall seconds into ``.seconds``."""

    def __enter__(self) -> "Timer":
        self._t0 = time.perf_counter()
        self.seconds = float("nan")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._t0


def _child(conn: Any, fn: Callable[..., dict], kwargs: dict) -> None:
    t0 = time.perf_counter()
    try:
        out = dict(fn(**kwargs))
        out.setdefault("error", None)
    except BaseException as e:  # noqa: BLE001 - report every failure to the parent
        out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
               "traceback": traceback.format_exc()}
    out["process_seconds"] = time.perf_counter() - t0
    out["process_peak_rss_mib"] = peak_rss_mib()
    conn.send(out)
    conn.close()


def run_isolated(fn: Callable[..., dict], kwargs: dict, timeout: float = 3600.0) -> dict:
    """Run ``fn(**kwargs)`` in a fresh spawned process and return its result dict.

    ``fn`` must be importable (defined at module top level). The result gains
    ``process_seconds`` and ``process_peak_rss_mib`` (the child's ru_maxrss, which
    includes interpreter and imports); on a crash, timeout or exception the dict
    has an ``error`` string.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, fn, kwargs))
    p.start()
    child.close()
    out: dict | None = None
    if parent.poll(timeout):
        try:
            out = parent.recv()
        except EOFError:
            out = None
    p.join(10 if out is not None else 0.1)
    if p.is_alive():
        p.kill()
        p.join()
        if out is None:
            return {"error": f"timeout after {timeout:.0f} s"}
    if out is None:
        return {"error": f"process died (exit code {p.exitcode}; killed for memory?)"}
    return out


# --------------------------------------------------------------------------- reporting


def machine_info() -> dict[str, str]:
    """CPU model, usable cores, RAM and library versions, for results headers."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    ram = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kib = int(fh.readline().split()[1])
            ram = f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("scipy", "open3d", "torch"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    return {"cpu": cpu, "cores": str(cores), "ram": ram,
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items())}


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def fmt(x: Any, digits: int = 4) -> str:
    """Table cell: |x| < 0.1 to ``digits`` significant digits, up to 1 with ``digits`` decimals, else 2 (0 from 100)."""
    if x is None:
        return "-"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if np.isnan(x):
            return "-"
        if np.isinf(x):
            return "inf"
        if abs(x) < 0.1:
            return f"{x:.{digits}g}"
        if abs(x) <= 1:
            return f"{x:.{digits}f}"
        return f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"
    return str(x)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one char per column ('l' or 'r')."""
    header = list(header)
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |")
    return "\n".join(lines)


def mean_finite(values: Iterable[float]) -> tuple[float, int]:
    """(mean over finite values, count of them); NaN if none."""
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    a = a[np.isfinite(a)]
    return (float(a.mean()) if a.size else float("nan")), int(a.size)


__all__ = [
    "BENCH_DIR", "CACHE_DIR", "Case", "EVAL_SAMPLES", "MESH_DIR", "N_INPUT_POINTS", "NOISE_SIGMA",
    "RESULTS_DIR", "Timer", "fmt", "list_meshes", "load_case", "load_mesh_any", "machine_info",
    "markdown_table", "mean_finite", "mesh_name", "normalise_mesh", "now_utc", "orient_outward", "peak_rss_mib",
    "prepare_input", "run_isolated",
]
