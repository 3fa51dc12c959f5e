"""Write rendered views as a posed-image folder that every camera loader reads identically.

Layout (``recon render`` output)::

    DIR/transforms.json          instant-ngp style: fl_x fl_y cx cy w h, Blender-axis poses
    DIR/images/r_000.png         RGBA, 8 bit: RGB composited over the background, alpha = coverage
    DIR/depth/r_000.npy          float32 (H, W) depth along the optical axis, world units, 0 = none
    DIR/normals/r_000.png        RGBA, 8 bit: (n + 1) / 2 world normal, alpha 255 where a surface is
    DIR/sparse/0/cameras.txt     COLMAP text model: one PINHOLE camera per view,
    DIR/sparse/0/images.txt      the same poses, and surface points seen in each view
    DIR/sparse/0/points3D.txt
    DIR/cameras.npz              IDR/DTU world_mat_i and scale_mat_i (unit sphere around the mesh)

The folder is written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from recon.io.atomic import atomic_folder
from recon.io.cameras.colmap import write_colmap_text
from recon.io.cameras.dtu import write_cameras_npz
from recon.io.cameras.nerf import write_transforms
from recon.ops.rays import pixel_rays
from recon.render.renderer import RenderResult

#: the unit sphere of cameras.npz is the mesh's bounding ball grown by this factor.
NPZ_SPHERE_MARGIN = 1.1


def _png(path: Path, rgba: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.clip(np.round(rgba * 255.0), 0, 255).astype(np.uint8)).save(path)


Observations = list[tuple[np.ndarray, np.ndarray]]


def _surface_points(render: RenderResult, per_view: int, seed: int) -> tuple[np.ndarray, np.ndarray, Observations]:
    """Up to ``per_view`` surface points per view from pixel-centre depths: (P, 3), colours (P, 3), observations."""

    rng = np.random.default_rng(seed)
    cams = render.cameras
    pts, cols, obs = [], [], []
    start = 0
    for c in range(len(cams)):  # loop over views
        rows, colsx = np.nonzero(render.depth[c] > 0)
        k = min(per_view, rows.size)
        pick = rng.choice(rows.size, size=k, replace=False) if k else np.zeros(0, np.int64)
        r, q = rows[pick], colsx[pick]
        uv = np.stack([q + 0.5, r + 0.5], -1).astype(np.float64)
        o, d, cos = pixel_rays(cams.K[c], cams.cam_to_world[c], uv)
        pts.append(o + d * (render.depth[c][r, q] / cos)[:, None])
        cols.append(render.rgb[c][r, q])
        obs.append((np.arange(start, start + k), uv))
        start += k
    return np.concatenate(pts), np.concatenate(cols), obs


def write_render_folder(render: RenderResult, folder: str | os.PathLike, force: bool = False,
                        points_per_view: int = 64, seed: int = 0) -> Path:
    """Write ``render`` as a transforms.json folder plus a COLMAP text model and a cameras.npz.

    All three describe the same cameras (the loaders give identical rays). COLMAP's
    ``points3D.txt`` holds ``points_per_view`` surface points per view (seeded), each observed in
    the view it came from.

    Args:
        render: the output of :func:`recon.render.render_views`.
        folder: output folder (created; must be absent or empty unless ``force``).
        force: replace a non-empty folder.
        points_per_view: surface points per view for points3D.txt.
        seed: seed for picking those points.

    Returns:
        the folder.

    Raises:
        ConfigError: the folder is not empty and ``force`` is False.
    """
    C = len(render.cameras)
    digits = max(3, len(str(C - 1)))
    stems = [f"r_{i:0{digits}d}" for i in range(C)]
    with atomic_folder(folder, force) as tmp:
        for sub in ("images", "depth", "normals", "sparse/0"):
            (tmp / sub).mkdir(parents=True)
        for c, stem in enumerate(stems):  # loop over views (files)
            _png(tmp / "images" / f"{stem}.png", np.concatenate([render.rgb[c], render.alpha[c][..., None]], -1))
            np.save(tmp / "depth" / f"{stem}.npy", render.depth[c].astype(np.float32))
            has = (render.depth[c] > 0)[..., None].astype(np.float32)
            _png(tmp / "normals" / f"{stem}.png", np.concatenate([(render.normals[c] + 1) * 0.5 * has, has], -1))
        extra = {"scene_centre": [float(v) for v in render.centre], "scene_radius": float(render.radius),
                 "render": render.info}
        write_transforms(tmp / "transforms.json", render.cameras, [f"images/{s}.png" for s in stems],
                         depth_paths=[f"depth/{s}.npy" for s in stems], extra=extra)
        pts, cols, obs = _surface_points(render, points_per_view, seed)
        write_colmap_text(tmp / "sparse" / "0", render.cameras, [f"{s}.png" for s in stems], pts, cols, obs)
        scale = np.eye(4)
        scale[:3, :3] *= render.radius * NPZ_SPHERE_MARGIN
        scale[:3, 3] = render.centre
        write_cameras_npz(tmp / "cameras.npz", render.cameras, scale)
    return Path(folder)


__all__ = ["atomic_folder", "write_render_folder"]
