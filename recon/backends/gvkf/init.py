"""Initial Gaussians: from COLMAP sparse points, from the visual hull of the masks, or at random.

All positions are in the normalised frame (scene inside the unit sphere). Scales start isotropic
at the mean distance to the three nearest neighbours (as 3D Gaussian splatting), rotations at the
identity, opacities at ``init_opacity``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from recon.backends.gvkf.gaussians import GaussianSet
from recon.types import Cameras


def project(points: np.ndarray, cameras: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """Project points into every camera.

    Args:
        points: (P, 3) float64 normalised positions.
        cameras: C pinhole cameras.

    Returns:
        uv (C, P, 2) image coordinates in pixels and z (C, P) camera depths.
    """
    w2c = np.linalg.inv(np.asarray(cameras.cam_to_world, np.float64))          # (C, 4, 4)
    pc = np.einsum("cij,pj->cpi", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]  # (C, P, 3)
    z = pc[..., 2]
    pix = np.einsum("cij,cpj->cpi", np.asarray(cameras.K, np.float64), pc)
    uv = pix[..., :2] / np.where(np.abs(pix[..., 2:]) < 1e-12, 1e-12, pix[..., 2:])
    return uv, z


def visual_hull_points(masks: np.ndarray, cameras: Cameras, resolution: int = 96,
                       agreement: float = 0.95) -> np.ndarray:
    """Centres of the surface voxels of the masks' visual hull.

    A voxel of a ``resolution``^3 grid over [-1, 1]^3 (inside the unit sphere) is occupied when it
    lands in the image of at least half of the views (at least 2) and projects inside the mask
    (> 0.5) in at least ``agreement`` of those; surface voxels are occupied voxels with an empty
    6-neighbour.

    Args:
        masks: (C, H, W) float masks in [0, 1].
        cameras: the C cameras (normalised frame).

    Returns:
        (S, 3) float64 voxel centres (possibly empty).
    """
    r = int(resolution)
    ax = (np.arange(r) + 0.5) / r * 2.0 - 1.0
    grid = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    inside_sphere = (grid ** 2).sum(1) <= 1.0
    C, H, W = masks.shape
    seen = np.zeros(grid.shape[0], np.int32)
    hit = np.zeros(grid.shape[0], np.int32)
    for c in range(C):  # loop over views; every voxel at once
        uv, z = project(grid, Cameras(cameras.K[c:c + 1], cameras.cam_to_world[c:c + 1], W, H))
        i, j = np.floor(uv[0, :, 0]).astype(np.int64), np.floor(uv[0, :, 1]).astype(np.int64)
        ok = (z[0] > 1e-6) & (i >= 0) & (i < W) & (j >= 0) & (j < H)
        seen += ok
        hit[ok] += masks[c, j[ok], i[ok]] > 0.5
    # a voxel few cameras see is unconstrained (it would survive carving): demand half of them
    min_seen = max(2, int(np.ceil(0.5 * C)))
    occ = inside_sphere & (seen >= min(min_seen, C)) & (hit >= np.ceil(agreement * seen - 1e-9))
    occ3 = occ.reshape(r, r, r)
    padded = np.pad(occ3, 1)
    empty_nb = np.zeros_like(occ3)
    for a in range(3):
        for s in (-1, 1):
            empty_nb |= ~np.roll(padded, s, axis=a)[1:-1, 1:-1, 1:-1]
    return grid[(occ3 & empty_nb).reshape(-1)]


def _colours_from_images(points: np.ndarray, images: np.ndarray, cameras: Cameras) -> np.ndarray:
    """(P, 3) mean colour of each point over the images it projects into (occlusion ignored)."""
    C, H, W, _ = images.shape
    uv, z = project(points, cameras)
    i = np.clip(np.floor(uv[..., 0]).astype(np.int64), 0, W - 1)
    j = np.clip(np.floor(uv[..., 1]).astype(np.int64), 0, H - 1)
    ok = (z > 1e-6) & (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    col = images[np.arange(C)[:, None], j, i]                                  # (C, P, 3)
    n = ok.sum(0)
    mean = (col * ok[..., None]).sum(0) / np.maximum(n, 1)[:, None]
    return np.where(n[:, None] > 0, mean, 0.5)


def initial_gaussians(method: str, count: int, *, images: np.ndarray, masks: np.ndarray | None,
                      cameras: Cameras, points3d: tuple[np.ndarray, np.ndarray] | None = None,
                      hull_resolution: int = 96, hull_agreement: float = 0.95, opacity: float = 0.5,
                      seed: int = 0) -> tuple[GaussianSet, str]:
    """Initial Gaussians in the normalised frame.

    Args:
        method: "auto", "points3d", "hull" or "random" ("auto": points3d, else hull with masks, else random
            points of the unit sphere that at least half of the cameras see).
        count: number of Gaussians (points3D and hull voxels are subsampled to it).
        images: (C, H, W, 3) float32 RGB in [0, 1]; masks: optional (C, H, W).
        cameras: the C cameras (normalised frame).
        points3d: optional ((P, 3) positions in the normalised frame, (P, 3) RGB in [0, 1]).
        seed: seed of the subsampling, jitter and random draws.

    Returns:
        The Gaussians and the method actually used.

    Raises:
        ValueError: a forced method whose data are missing or empty.
    """
    rng = np.random.default_rng(seed)
    if method == "auto":
        method = "points3d" if points3d is not None and len(points3d[0]) >= 10 else \
            "hull" if masks is not None and (masks < 0.5).any() else "random"
    colours = None
    if method == "points3d":
        if points3d is None or len(points3d[0]) == 0:
            raise ValueError("init points3d: the folder has no COLMAP points3D")
        pts, rgb = np.asarray(points3d[0], np.float64), np.asarray(points3d[1], np.float64)
        inside = (pts ** 2).sum(1) <= 1.0
        pts, rgb = pts[inside], rgb[inside]
        if len(pts) == 0:
            raise ValueError("init points3d: no COLMAP point lies inside the scene sphere")
        pick = rng.choice(len(pts), size=min(count, len(pts)), replace=False)
        pts, colours = pts[pick], rgb[pick]
    elif method == "hull":
        if masks is None:
            raise ValueError("init hull: the views have no masks")
        surf = visual_hull_points(masks, cameras, hull_resolution, hull_agreement)
        if len(surf) == 0:
            raise ValueError("init hull: the masks' visual hull is empty (do the masks and cameras agree?)")
        pick = rng.choice(len(surf), size=count, replace=len(surf) < count)
        pts = surf[pick] + rng.uniform(-1.0, 1.0, (count, 3)) / hull_resolution
    elif method == "random":
        # uniform in the sphere of radius 0.9, kept where at least half of the cameras see the point
        # (elsewhere nothing constrains a Gaussian, and the opacity field would carry it as a floater)
        n_try = 8 * count
        d = rng.normal(size=(n_try, 3))
        cand = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0, 1, (n_try, 1)) ** (1 / 3) * 0.9
        uv, z = project(cand, cameras)
        H, W = images.shape[1:3]
        seen = ((z > 1e-6) & (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)).sum(0)
        ok = cand[seen >= max(1, int(np.ceil(0.5 * len(cameras))))]
        if len(ok) == 0:
            raise ValueError("init random: no point of the unit sphere is seen by half of the cameras")
        pts = ok[rng.choice(len(ok), size=count, replace=len(ok) < count)]
    else:
        raise ValueError(f"unknown init method {method!r}")
    if colours is None:
        colours = _colours_from_images(pts, images, cameras)
    k = min(4, len(pts))
    dist, _ = cKDTree(pts).query(pts, k=k)
    nn = dist[:, 1:].mean(1) if k > 1 else np.full(len(pts), 0.01)
    scale = np.clip(nn, 1e-4, 0.1)
    g = GaussianSet.from_values(torch.from_numpy(pts.astype(np.float32)), torch.from_numpy(scale.astype(np.float32)),
                                opacities=opacity, colours=torch.from_numpy(np.clip(colours, 0.02, 0.98).astype(np.float32)))
    return g, method
