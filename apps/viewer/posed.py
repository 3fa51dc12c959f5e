"""Posed-image folders in the viewer: camera frustums, image thumbnails on them, sparse points.

``recon view FOLDER`` (COLMAP, transforms.json, cameras.npz or Middlebury) shows one frustum per
view, the view's image as a small coloured grid on the frustum's far face (when there are at
most :data:`MAX_THUMBNAILS` views, so it stays cheap), and the model's sparse points when the
folder has a COLMAP ``points3D`` file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvista as pv

from recon.types import PointCloud, Views

from recon_apps.viewer.layers import frustum_corners

#: Thumbnails are drawn for at most this many views.
MAX_THUMBNAILS = 100
#: Thumbnail cells along the image's longer side.
THUMBNAIL_CELLS = 32


@dataclass
class PosedImageSet:
    """What a posed-image folder shows.

    Attributes:
        views: the posed images (world units).
        points: the sparse points (COLMAP points3D), or None.
        source: the folder, for labels.
    """

    views: Views
    points: PointCloud | None = None
    source: str | None = None

    def __len__(self) -> int:
        return len(self.views)


def load_posed_images(path: str | os.PathLike) -> PosedImageSet:
    """Views of a posed-image folder plus its sparse points (one-line InputError when unreadable)."""
    from recon.io.cameras import load_views
    from recon.io.cameras.colmap import read_points3d

    views = load_views(path)
    pts = read_points3d(Path(path))
    cloud = None if pts is None or len(pts[0]) == 0 else PointCloud(pts[0], colors=pts[1], source=str(path))
    return PosedImageSet(views, cloud, str(path))


def thumbnail_grid(image: np.ndarray, corners: np.ndarray, cells: int = THUMBNAIL_CELLS) -> pv.PolyData:
    """A grid of quads spanning the four frustum corners, coloured by the area-averaged image.

    Args:
        image: (H, W, 3) uint8 or float in [0, 1].
        corners: (4, 3) world corners in the order (0, 0), (w, 0), (w, h), (0, h) of the image.
        cells: quads along the image's longer side.

    Returns:
        PolyData with ``nx * ny`` quads and cell array ``rgb`` (uint8, (nx * ny, 3)); cell (i, j)
        shows the image block at column i, row j.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    nx = max(1, round(cells * w / max(w, h)))
    ny = max(1, round(cells * h / max(w, h)))
    # block means: crop to a multiple of the block size, then average
    bx, by = max(1, w // nx), max(1, h // ny)
    blocks = img[: by * ny, : bx * nx, :3].astype(np.float64).reshape(ny, by, nx, bx, 3).mean((1, 3))
    s = np.linspace(0, 1, nx + 1)
    t = np.linspace(0, 1, ny + 1)
    S, T = np.meshgrid(s, t)  # (ny + 1, nx + 1)
    c = np.asarray(corners, np.float64)
    top = c[0][None, None] + S[..., None] * (c[1] - c[0])[None, None]
    bottom = c[3][None, None] + S[..., None] * (c[2] - c[3])[None, None]
    pts = (top + T[..., None] * (bottom - top)).reshape(-1, 3)
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    a = (j * (nx + 1) + i).ravel()
    quads = np.stack([np.full_like(a, 4), a, a + 1, a + nx + 2, a + nx + 1], 1)
    poly = pv.PolyData(pts, quads.ravel())
    poly.cell_data["rgb"] = np.clip(np.round(blocks.reshape(-1, 3)), 0, 255).astype(np.uint8)
    return poly


def read_thumbnail(path: str, longest: int = 4 * THUMBNAIL_CELLS) -> np.ndarray:
    """(h, w, 3) uint8 small copy of an image file (Pillow's reduce on load; fast for JPEG)."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (longest, longest))
        im = im.convert("RGB")
        im.thumbnail((longest, longest))
        return np.asarray(im)


def thumbnails_polydata(views: Views, depth: float, cells: int = THUMBNAIL_CELLS) -> pv.PolyData | None:
    """All views' thumbnails merged into one PolyData (None for more than MAX_THUMBNAILS views)."""
    if len(views) == 0 or len(views) > MAX_THUMBNAILS:
        return None
    _, corners = frustum_corners(views.cameras, depth)
    grids = []
    for k, path in enumerate(views.image_paths):  # loop over views (at most MAX_THUMBNAILS)
        try:
            grids.append(thumbnail_grid(read_thumbnail(path), corners[k], cells))
        except OSError:
            continue  # an unreadable image just has no thumbnail
    if not grids:
        return None
    return pv.merge(grids) if len(grids) > 1 else grids[0]


__all__ = ["MAX_THUMBNAILS", "PosedImageSet", "load_posed_images", "thumbnail_grid",
           "thumbnails_polydata"]
