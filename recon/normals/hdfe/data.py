"""Training data: procedural SDF shapes and real meshes under PCPNet-style perturbations.

Every cloud is a surface sample with exact normals (analytic SDF gradients for the
procedural shapes, face normals for meshes), perturbed by one *condition*:

* ``noise0`` / ``noise1`` / ``noise2`` / ``noise3``: Gaussian position noise with
  sigma = 0, 0.125 %, 0.6 %, 1.2 % of the bounding-box diagonal (per coordinate);
* ``stripes``: density reduced to 15 % in every other band of 10 bands along a random
  direction; ``gradient``: density falling linearly from 100 % to 5 % along a random
  direction (both without noise).

Features of a subset of query points are computed once and cached as .npz files
keyed by the encoder and data settings, so training only touches the small head.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from recon import synthetic as syn
from recon.errors import InputError
from recon.normals.hdfe.model import EncoderSpec, patch_features
from recon.normals.hdfe.patches import extract_patches

#: Noise sigma as a fraction of the bounding-box diagonal, PCPNet levels.
NOISE_LEVELS = {"noise0": 0.0, "noise1": 0.00125, "noise2": 0.006, "noise3": 0.012}
CONDITIONS = ("noise0", "noise1", "noise2", "noise3", "stripes", "gradient")

#: Mesh files (relative to the shared meshes folder) used for training.
TRAIN_MESHES = (
    "common-3d-test-models/stanford-bunny.obj", "common-3d-test-models/fandisk.obj",
    "common-3d-test-models/cheburashka.obj", "common-3d-test-models/homer.obj",
    "correspondence/dragon.obj", "scivi/buddha.obj", "trimesh-cad/1002_tray_bottom.STL",
    "trimesh-cad/plate_holes.STL", "thingi10k/50736.stl", "thingi10k/97171.stl",
)
#: Mesh files held out of training, for the held-out evaluation (and PCPNet armadillo).
HELD_OUT_MESHES = (
    "continuous-remeshing/armadillo.obj", "common-3d-test-models/spot.obj", "scivi/feline.obj",
    "trimesh-cad/idler_riser.STL", "thingi10k/56095.stl",
)

Sampler = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def procedural_shapes() -> dict[str, tuple[syn.SDF, np.ndarray]]:
    """Name -> (SDF, (2, 3) bounds) of the procedural training shapes."""
    b = np.array([[-0.7, -0.7, -0.7], [0.7, 0.7, 0.7]])
    return {
        "sphere": (syn.sphere(radius=0.5), b),
        "box_sharp": (syn.box(half=(0.5, 0.35, 0.25)), b),
        "box_round": (syn.box(half=(0.45, 0.45, 0.3), rounding=0.08), b),
        "torus": (syn.torus(major=0.4, minor=0.15), b),
        "cylinder": (syn.cylinder(radius=0.3, half_height=0.5, axis=0), b),
        "box_minus_sphere": (syn.difference(syn.box(half=(0.45, 0.45, 0.45)), syn.sphere((0.3, 0.3, 0.3), 0.4)), b),
        "cross": (syn.union(syn.cylinder(radius=0.15, half_height=0.55, axis=0),
                            syn.cylinder(radius=0.2, half_height=0.5, axis=1)), b),
        "blobs": (syn.smooth_union(syn.sphere((-0.2, 0, 0), 0.3), syn.sphere((0.25, 0.1, 0.05), 0.22), 0.1), b),
        "mug": (syn.mug(), b),
    }


def sdf_sampler(f: syn.SDF, bounds: np.ndarray, seed: int) -> Sampler:
    """A sampler drawing from a dense precomputed SDF surface sample (exact normals)."""
    pool_p, pool_n = syn.sample_sdf_surface(f, bounds, 400_000, seed=seed, resolution=128)

    def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        i = rng.choice(len(pool_p), size=n, replace=n > len(pool_p))
        return pool_p[i], pool_n[i]

    return draw


def load_mesh_file(path: str | os.PathLike):
    """A trimesh.Trimesh of ``path`` (InputError when it has no triangles)."""
    import trimesh

    tm = trimesh.load(os.fspath(path), force="mesh", process=False)
    if not hasattr(tm, "faces") or len(tm.faces) == 0:
        raise InputError("mesh has no triangles", path, "use a triangle mesh")
    return tm


def mesh_sampler(path: str | os.PathLike) -> Sampler:
    """Area-weighted surface samples of a mesh with its face normals."""
    import trimesh

    tm = load_mesh_file(path)

    def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        p, fi = trimesh.sample.sample_surface(tm, n, seed=int(rng.integers(2**31)))
        return np.asarray(p, dtype=np.float64), np.asarray(tm.face_normals[fi], dtype=np.float32)

    return draw


def density_keep_prob(points: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(N,) keep probabilities of a density variation ("stripes" or "gradient")."""
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    t = points @ d
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-12)
    if kind == "stripes":
        return np.where(np.floor(t * 10).astype(np.int64) % 2 == 0, 1.0, 0.15)
    if kind == "gradient":
        return 0.05 + 0.95 * (1.0 - t)
    raise ValueError(f"unknown density variation {kind!r}")


def make_cloud(draw: Sampler, n: int, condition: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) float64 points and (n, 3) float32 unit normals of one perturbed cloud.

    Args:
        draw: surface sampler.
        n: points in the cloud.
        condition: one of :data:`CONDITIONS`.
        seed: seed of all random choices.
    """
    rng = np.random.default_rng(seed)
    if condition in NOISE_LEVELS:
        p, nr = draw(n, rng)
        lo, hi = p.min(axis=0), p.max(axis=0)
        sigma = NOISE_LEVELS[condition] * float(np.linalg.norm(hi - lo))
        if sigma > 0:
            p = p + rng.normal(scale=sigma, size=p.shape)
        return p, nr
    p, nr = draw(4 * n, rng)
    keep = rng.random(len(p)) < density_keep_prob(p, condition, rng)
    idx = np.flatnonzero(keep)
    idx = rng.choice(idx, size=n, replace=len(idx) < n)
    return p[idx], nr[idx]


def _key(obj: dict) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def cached_features(name: str, draw_factory: Callable[[], Sampler], conditions: tuple[str, ...], enc: EncoderSpec,
                    theta: np.ndarray, n_points: int, n_queries: int, seed: int, cache_dir: Path,
                    log: Callable[[str], None] = print) -> tuple[np.ndarray, np.ndarray]:
    """Features and patch-frame normals of one shape under several conditions, cached.

    Returns:
        X: (C * n_queries, D) float16 features; Y: (C * n_queries, 3) float32 unit
        ground-truth normals in the patch frames.
    """
    import dataclasses

    key = _key({"name": name, "cond": list(conditions), "enc": dataclasses.asdict(enc), "n": n_points,
                "q": n_queries, "seed": seed, "v": 3})  # v3: recon-hdfe-2 patches
    f = cache_dir / f"{name.replace('/', '_')}_{key}.npz"
    if f.exists():
        with np.load(f) as z:
            return z["X"], z["Y"]
    draw = draw_factory()
    xs, ys = [], []
    for ci, cond in enumerate(conditions):  # a few conditions per shape
        s = seed * 1000 + ci
        p, nr = make_cloud(draw, n_points, cond, s)
        q = np.random.default_rng(s + 7).choice(n_points, size=n_queries, replace=False)
        ps = extract_patches(p, enc.scales, q, frame_k=enc.frame_k, workers=1, max_points=enc.max_points)
        xs.append(patch_features(ps, theta, enc).astype(np.float16))
        ys.append(np.einsum("mij,mj->mi", ps.frames, nr[q].astype(np.float64)).astype(np.float32))
        log(f"  {name} {cond}: {n_queries} patches")
    X, Y = np.concatenate(xs), np.concatenate(ys)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, X=X, Y=Y)
    os.replace(tmp, f)
    return X, Y


__all__ = ["NOISE_LEVELS", "CONDITIONS", "TRAIN_MESHES", "HELD_OUT_MESHES", "procedural_shapes", "sdf_sampler",
           "mesh_sampler", "load_mesh_file", "density_keep_prob", "make_cloud", "cached_features"]
