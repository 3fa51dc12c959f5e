"""Training data: procedural analytic-SDF shapes (random CSG) and the shared meshes.

Each training shape is stored as dense ground-truth surface samples with outward normals
(``ShapeGT``), normalised to unit longest side and centred at the origin. Per step an input
cloud is drawn from it: N points (log-uniform in [n_min, n_max]), Gaussian noise sigma from
a list, a random rotation, and either the true normals or PCA + MST estimated ones (the
"without normals" case). Ground-truth signed distances come from the dense samples by
IMLS (k = 8, as NKSR's training), negative inside.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon import synthetic as S
from recon.io import load_mesh
from recon.normals import estimate_normals
from recon.ops.sampling import sample_surface
from recon.types import Mesh

DEFAULT_TRAIN_MESHES = ("common-3d-test-models/spot.obj", "common-3d-test-models/cheburashka.obj",
                        "common-3d-test-models/homer.obj", "scivi/feline.obj", "trimesh-cad/idler_riser.STL")
"""Meshes used for training; every other shared mesh is held out (the benchmark reports both groups)."""


@dataclass
class ShapeGT:
    """Dense ground truth of one shape: (P, 3) float32 points and unit outward normals, unit longest side."""

    name: str
    points: np.ndarray
    normals: np.ndarray


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) uniformly random rotation."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _transformed(f: S.SDF, rot: np.ndarray, shift: np.ndarray) -> S.SDF:
    """SDF of a rigidly moved shape: x -> f(R^T (x - t))."""
    return lambda p: f((p - shift) @ rot)


def _capsule(a: np.ndarray, b: np.ndarray, r: float) -> S.SDF:
    def f(p: np.ndarray) -> np.ndarray:
        ab = b - a
        t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
        return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1) - r

    return f


def random_primitive(rng: np.random.Generator) -> S.SDF:
    """A random sphere / rounded box / torus / capsule / cylinder, randomly rotated and placed."""
    kind = rng.integers(5)
    if kind == 0:
        f = S.sphere((0, 0, 0), rng.uniform(0.12, 0.3))
    elif kind == 1:
        half = rng.uniform(0.06, 0.28, 3)
        f = S.box((0, 0, 0), half, rounding=float(rng.uniform(0, 0.5) * half.min()))
    elif kind == 2:
        R = rng.uniform(0.12, 0.28)
        f = S.torus((0, 0, 0), R, rng.uniform(0.03, 0.45 * R))
    elif kind == 3:
        h = rng.uniform(0.05, 0.25)
        f = _capsule(np.array([0, 0, -h]), np.array([0, 0, h]), rng.uniform(0.04, 0.15))
    else:
        f = S.cylinder((0, 0, 0), rng.uniform(0.05, 0.25), rng.uniform(0.05, 0.28))
    return _transformed(f, _rotation(rng), rng.uniform(-0.18, 0.18, 3))


def random_csg(rng: np.random.Generator) -> S.SDF:
    """Union of 1-4 primitives, possibly smooth, minus 0-2 primitives."""
    f = random_primitive(rng)
    for _ in range(rng.integers(0, 4)):
        g = random_primitive(rng)
        f = S.smooth_union(f, g, float(rng.uniform(0.01, 0.06))) if rng.random() < 0.4 else S.union(f, g)
    for _ in range(rng.integers(0, 3)):
        if rng.random() < 0.5:
            f = S.difference(f, random_primitive(rng))
    return f


def _normalise(points: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    lo, hi = points.min(0), points.max(0)
    side = float(np.max(hi - lo))
    return (points - 0.5 * (lo + hi)) / side, side, 0.5 * (lo + hi)


def procedural_shape(seed: int, n: int = 100_000) -> ShapeGT | None:
    """Dense samples of a random CSG shape (None when the shape is empty or degenerate)."""
    rng = np.random.default_rng(seed)
    f = random_csg(rng)
    try:
        p, nrm = S.sample_sdf_surface(f, np.array([[-0.75] * 3, [0.75] * 3]), n, seed=seed, resolution=96)
    except (ValueError, RuntimeError):
        return None
    if len(p) < n or not np.isfinite(p).all():
        return None
    p, side, _ = _normalise(p)
    if side < 0.05:
        return None
    return ShapeGT(f"proc{seed}", p.astype(np.float32), nrm.astype(np.float32))


def mesh_shape(path: Path, n: int = 100_000, seed: int = 0) -> ShapeGT | None:
    """Dense area-weighted samples of a mesh file with outward face normals (None when unreadable)."""
    try:
        m = load_mesh(path)
    except Exception:  # noqa: BLE001 - any reader failure: skip the mesh
        return None
    m = Mesh(np.asarray(m.vertices, np.float64), np.asarray(m.faces))
    if m.n_faces == 0:
        return None
    tri = m.vertices[m.faces]
    vol = float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6.0
    if vol < 0:
        m = Mesh(m.vertices, m.faces[:, ::-1])
    p, nrm = sample_surface(m, n, seed)
    p, _, _ = _normalise(p)
    return ShapeGT(Path(path).stem, p.astype(np.float32), np.asarray(nrm, np.float32))


def shape_pool(n_procedural: int, meshes: list[str], mesh_dir: Path, seed: int, cache_dir: Path,
               n_dense: int = 100_000, log=print) -> list[ShapeGT]:
    """Build (or read from ``cache_dir``) the training shapes."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out: list[ShapeGT] = []
    jobs = [("proc", seed * 100_003 + i) for i in range(n_procedural)] + [("mesh", m) for m in meshes]
    for kind, key in jobs:
        tag = hashlib.sha1(f"v1|{kind}|{key}|{n_dense}".encode()).hexdigest()[:12]
        f = cache_dir / f"shape_{tag}.npz"
        if f.is_file():
            with np.load(f) as z:
                out.append(ShapeGT(str(z["name"]), z["points"], z["normals"]))
            continue
        sh = procedural_shape(int(key), n_dense) if kind == "proc" else mesh_shape(mesh_dir / str(key), n_dense)
        if sh is None:
            log(f"[skip] {kind} {key}: no usable shape")
            continue
        tmp = f.with_suffix(".tmp.npz")
        np.savez(tmp, name=np.str_(sh.name), points=sh.points, normals=sh.normals)
        os.replace(tmp, f)
        out.append(sh)
    return out


@dataclass
class Sample:
    """One training input with its ground truth (unit-side frame, world units).

    Attributes:
        points, normals: (N, 3) input points and normals (given or estimated).
        has_normals: whether ``normals`` are the true ones (False: estimated, the "no normals" case).
        gt_points, gt_normals: (P, 3) dense rotated ground truth.
        sigma: noise level; name: shape name.
    """

    points: np.ndarray
    normals: np.ndarray
    has_normals: bool
    gt_points: np.ndarray
    gt_normals: np.ndarray
    sigma: float
    name: str


def draw_sample(shape: ShapeGT, rng: np.random.Generator, n_min: int, n_max: int, sigmas: list[float],
                normal_prob: float) -> Sample:
    """A random input cloud of ``shape`` (random rotation, size, noise, normals or not)."""
    R = _rotation(rng)
    gp = (shape.points.astype(np.float64) @ R.T)
    gn = (shape.normals.astype(np.float64) @ R.T)
    n = int(round(np.exp(rng.uniform(np.log(n_min), np.log(min(n_max, len(gp)))))))
    idx = rng.choice(len(gp), size=n, replace=False)
    sigma = float(sigmas[rng.integers(len(sigmas))])
    pts = gp[idx] + rng.normal(0.0, sigma, size=(n, 3)) if sigma > 0 else gp[idx].copy()
    has = bool(rng.random() < normal_prob)
    if has:
        nrm = gn[idx]
    else:
        nrm = estimate_normals(pts, method="pca", orient="mst")
    return Sample(pts.astype(np.float32), np.asarray(nrm, np.float32), has, gp.astype(np.float32),
                  gn.astype(np.float32), sigma, shape.name)


def imls_sdf(tree, gt_points: np.ndarray, gt_normals: np.ndarray, q: np.ndarray, sigma: float,
             k: int = 8) -> np.ndarray:
    """Signed distance by IMLS: sum w_i <n_i, q - p_i> / sum w_i over the k nearest samples.

    Args:
        tree: scipy cKDTree over ``gt_points``; q: (K, 3) queries; sigma: Gaussian width (same units).

    Returns:
        (K,) float64 signed distances, negative inside.
    """
    d, i = tree.query(q, k=k)
    w = np.exp(-(d**2 - d[:, :1] ** 2) / sigma**2)
    proj = np.einsum("kjc,kjc->kj", gt_normals[i], q[:, None, :] - gt_points[i])
    return (w * proj).sum(1) / w.sum(1)
