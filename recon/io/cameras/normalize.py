"""Where the scene is: a bounding sphere from the cameras (and masks), and the unit-sphere frame.

Rule (documented for users in :func:`scene_sphere`): the object is what every camera sees, so it
lies inside the intersection of the view frusta (the *visual hull*; with masks, of the masked
silhouettes). That hull is sampled on a grid around the optical axes' least-squares meeting
point, and its bounding sphere, grown by half a grid cell and by 10 %, is the scene sphere. A
capture without masks but with structure-from-motion points is bounded by a robust box of those
points instead (:func:`robust_points_box`): the points lie on what the photos show in common.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io.cameras.colmap import read_points3d
from recon.io.cameras.geometry import c2w_to_world_to_cam, optical_axes_centre
from recon.types import Cameras, Views

MARGIN = 1.1
#: robust box of sparse points: per-axis percentiles kept (and 100 - this), and the growth per side
#: as a fraction of the box's largest extent
POINTS_PERCENTILE = 1.0
POINTS_MARGIN = 0.1
#: fewer sparse points than this and the sphere comes from the cameras
MIN_SPARSE_POINTS = 20


def _inside_counts(points: np.ndarray, cameras: Cameras, masks: np.ndarray | None) -> np.ndarray:
    """(N,) number of cameras whose image (and mask, if given) contains each world point (N, 3)."""
    R, t = c2w_to_world_to_cam(cameras.cam_to_world)
    counts = np.zeros(points.shape[0], np.int32)
    for i in range(len(cameras)):  # loop over views; each step is vectorised over the points
        pc = points @ R[i].T + t[i]
        z = pc[:, 2]
        front = z > 1e-9
        proj = pc @ cameras.K[i].T
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(front, proj[:, 0] / z, -1.0)
            v = np.where(front, proj[:, 1] / z, -1.0)
        inside = front & (u >= 0) & (u < cameras.width) & (v >= 0) & (v < cameras.height)
        if masks is not None:
            hm, wm = masks.shape[1:]
            col = np.clip((u * wm / cameras.width).astype(np.int64), 0, wm - 1)
            row = np.clip((v * hm / cameras.height).astype(np.int64), 0, hm - 1)
            inside &= masks[i][row, col] > 0
        counts += inside
    return counts


def _grid(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """(n^3, 3) cell centres of the box [lo, hi] (cubic cells of the longest side) and the cell size."""
    cell = float(np.max(hi - lo)) / n
    mid = 0.5 * (lo + hi)
    axis = (np.arange(n) - (n - 1) / 2) * cell
    g = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return g + mid, cell


def _seen_samples(cameras: Cameras, masks: np.ndarray | None, resolution: int
                  ) -> tuple[np.ndarray | None, float, np.ndarray, np.ndarray]:
    """Grid samples every camera sees (steps 1-3 of :func:`scene_sphere`).

    Returns:
        kept (K, 3) world samples (None when no sample is seen by 90 % of the cameras), the cell size,
        c0 (3,) the optical axes' meeting point and (C,) the cameras' distances to it.
    """
    c2w = cameras.cam_to_world
    c0 = optical_axes_centre(c2w)
    dist = np.linalg.norm(c2w[:, :3, 3] - c0, axis=1)
    half = float(dist.min()) if dist.min() > 0 else 1.0
    lo, hi = c0 - half, c0 + half
    kept = None
    cell = 2 * half / resolution
    for _ in range(2):  # coarse pass, then a finer pass over the first pass's bounding box
        pts, cell = _grid(lo, hi, resolution)
        counts = _inside_counts(pts, cameras, masks)
        need = len(cameras)
        sel = counts >= need
        if not sel.any():
            sel = counts >= max(1, int(np.ceil(0.9 * need)))
        if not sel.any():
            break
        kept = pts[sel]
        lo, hi = kept.min(0) - cell, kept.max(0) + cell
    return kept, cell, c0, dist


def scene_sphere(cameras: Cameras, masks: np.ndarray | None = None, resolution: int = 40) -> tuple[np.ndarray, float]:
    """Bounding sphere of what all cameras see.

    Steps: (1) c0 = least-squares point closest to the optical axes; (2) sample a cube around c0
    whose half side is the distance from c0 to the nearest camera; keep the samples inside every
    camera's image (and mask); (3) resample the kept samples' bounding box more finely and keep
    again; (4) centre = middle of the kept samples' bounding box, radius = their largest distance
    from it plus half a cell diagonal, times 1.1. When no sample is seen by every camera, samples
    seen by 90 % of them are used; when none is, the sphere is centred on c0 with the radius that
    fills the narrowest field of view.

    Args:
        cameras: pinhole cameras (distortion ignored).
        masks: optional (C, h, w) masks (> 0 inside) of any resolution, aligned with the images.
        resolution: grid samples per axis in each pass.

    Returns:
        centre (3,) float64 world position and radius (world units).
    """
    kept, cell, c0, dist = _seen_samples(cameras, masks, resolution)
    if kept is None:
        fov = np.minimum(np.arctan2(0.5 * cameras.width, cameras.K[:, 0, 0]),
                         np.arctan2(0.5 * cameras.height, cameras.K[:, 1, 1]))
        return c0, float((dist * np.sin(fov)).min())
    centre = 0.5 * (kept.min(0) + kept.max(0))
    radius = float(np.linalg.norm(kept - centre, axis=1).max()) + 0.5 * np.sqrt(3) * cell
    return centre, MARGIN * radius


def scene_box(cameras: Cameras, masks: np.ndarray | None = None, resolution: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box (lo, hi), (3,) float64 each, of what all cameras see: the bounding box of the
    samples :func:`scene_sphere` keeps, grown by half a cell; the sphere's cube when none is kept."""
    kept, cell, _, _ = _seen_samples(cameras, masks, resolution)
    if kept is None:
        centre, radius = scene_sphere(cameras, masks, resolution)
        return centre - radius, centre + radius
    return kept.min(0) - 0.5 * cell, kept.max(0) + 0.5 * cell


def robust_points_box(points: np.ndarray, percentile: float = POINTS_PERCENTILE,
                      margin: float = POINTS_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Robust axis-aligned box (lo, hi) of sparse points: per axis the ``percentile`` and
    ``100 - percentile`` percentiles (stray points beyond them are ignored), each side grown by
    ``margin`` times the box's largest extent.

    Args:
        points: (P, 3) positions, P >= 1 (world units).

    Returns:
        lo, hi (3,) float64.
    """
    p = np.asarray(points, np.float64)
    lo, hi = np.percentile(p, percentile, axis=0), np.percentile(p, 100.0 - percentile, axis=0)
    g = margin * max(float(np.max(hi - lo)), 1e-12)
    return lo - g, hi + g


def find_sparse_points(views: Views) -> tuple[np.ndarray, np.ndarray] | None:
    """COLMAP sparse points of the model the views' images belong to (the images folder's parent, the
    folder itself or ``sparse/0`` beside it): (P, 3) float64 positions in world units and (P, 3) RGB in
    [0, 1], or None."""
    if not views.image_paths:
        return None
    img_dir = Path(views.image_paths[0]).parent
    for cand in (img_dir.parent, img_dir, img_dir.parent / "sparse" / "0"):
        try:
            pts = read_points3d(cand)
        except (InputError, OSError, ValueError):  # a malformed points file only costs the tighter bound
            pts = None
        if pts is not None and len(pts[0]) > 0:
            return np.asarray(pts[0], np.float64), pts[1]
    return None


def normalize_views(views: Views, use_masks: bool = True, resolution: int = 40,
                    mask_size: int = 128, points: np.ndarray | None | str = "auto") -> tuple[Views, np.ndarray]:
    """Map the scene into the unit sphere.

    The scene sphere is, in order of preference: :func:`scene_sphere` with the views' masks (read at
    ``mask_size``) when ``use_masks`` and masks exist; the sphere around the robust box of the sparse
    points (:func:`robust_points_box`, times 1.1) when there are at least MIN_SPARSE_POINTS of them;
    else :func:`scene_sphere` of the cameras alone. The returned views share the images; only the
    camera centres change: ``c' = (c - centre) / radius`` (rotations and K are unchanged).

    Args:
        points: (P, 3) sparse points in world units, None for none, or "auto": the COLMAP points3D of
            the model the images belong to (:func:`find_sparse_points`).

    Returns:
        the normalised views and to_world (4, 4) float64, mapping normalised coordinates back to
        world units: ``x_world = radius * x + centre``.
    """
    if isinstance(points, str):
        found = find_sparse_points(views) if points == "auto" else None
        points = None if found is None else found[0]
    if use_masks and views.mask_paths is not None:
        from recon.io.images import read_view_images  # recon.io.images imports recon.io.cameras: a cycle at top

        _, masks, small = read_view_images(views, max_size=mask_size)
        centre, radius = scene_sphere(small, masks, resolution)
    elif points is not None and len(points) >= MIN_SPARSE_POINTS:
        lo, hi = robust_points_box(points)
        centre, radius = 0.5 * (lo + hi), MARGIN * 0.5 * float(np.linalg.norm(hi - lo))
    else:
        centre, radius = scene_sphere(views.cameras, None, resolution)
    to_world = np.eye(4)
    to_world[:3, :3] *= radius
    to_world[:3, 3] = centre
    cams = views.cameras
    c2w = cams.cam_to_world.copy()
    c2w[:, :3, 3] = (c2w[:, :3, 3] - centre) / radius
    new = Cameras(K=cams.K.copy(), cam_to_world=c2w, width=cams.width, height=cams.height,
                  distortion=None if cams.distortion is None else cams.distortion.copy())
    return Views(new, list(views.image_paths), views.mask_paths, views.depth_paths), to_world


__all__ = ["find_sparse_points", "normalize_views", "robust_points_box", "scene_box", "scene_sphere"]
