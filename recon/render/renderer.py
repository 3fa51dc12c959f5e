"""Render a mesh from cameras on a sphere: RGB, alpha, depth and normals (deterministic, headless).

Per pixel, ``supersample``^2 rays on a regular sub-pixel grid give the colour and the coverage
(alpha); the ray through the pixel centre gives depth and normal, so those are exact surface
values (0 where the centre ray misses, even when alpha > 0 at a silhouette edge).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon.ops.rays import pixel_rays
from recon.render.raycast import MeshRaycaster
from recon.render.rig import sphere_rig
from recon.render.texture import surface_colour
from recon.types import Cameras, Mesh


@dataclass
class RenderResult:
    """Rendered views of one mesh.

    Attributes:
        cameras: C pinhole cameras (OpenCV convention, world units).
        rgb: (C, H, W, 3) float32 in [0, 1], composited over ``background``.
        alpha: (C, H, W) float32 pixel coverage in [0, 1].
        depth: (C, H, W) float32 depth along the optical axis (z), world units; 0 = no surface
            at the pixel centre.
        normals: (C, H, W, 3) float32 unit world normals at the pixel centre; 0 = no surface.
        centre: (3,) float64 centre of the mesh's bounding box.
        radius: largest distance of a vertex from ``centre`` (world units).
        info: how the views were made (seed, field of view, ...), JSON-serialisable.
    """

    cameras: Cameras
    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    centre: np.ndarray
    radius: float
    info: dict[str, Any] = field(default_factory=dict)


def _pixel_grid(width: int, height: int, offsets: np.ndarray) -> np.ndarray:
    """(S * H * W, 2) image coordinates: for each sub-pixel offset (S, 2), all pixels row-major."""
    j, i = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    base = np.stack([i.ravel(), j.ravel()], -1)
    return (offsets[:, None, :] + base[None]).reshape(-1, 2)


def render_views(mesh: Mesh, n_views: int = 48, size: int = 128, seed: int = 0, fov_deg: float = 40.0,
                 supersample: int = 2, background: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 up: tuple[float, float, float] = (0.0, 1.0, 0.0), cameras: Cameras | None = None) -> RenderResult:
    """Render ``mesh`` with a procedural texture from ``n_views`` cameras around it.

    Args:
        mesh: the triangle mesh (world units).
        n_views: number of views (Fibonacci directions over the whole sphere, rotated by ``seed``).
        size: image width = height in pixels.
        seed: selects the rotation of the viewpoint lattice; same seed, same output.
        fov_deg: field of view; the distance is chosen so the bounding ball fits in every image.
        supersample: s, for s x s rays per pixel (antialiased colour and fractional alpha).
        background: RGB in [0, 1] behind the object.
        up: world direction shown as image up.
        cameras: render these cameras instead of the sphere rig (``n_views``, ``size``, ``seed`` ignored).

    Returns:
        a :class:`RenderResult`.
    """
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    centre = 0.5 * (lo + hi)
    radius = float(np.linalg.norm(mesh.vertices - centre, axis=1).max())
    if cameras is None:
        cameras = sphere_rig(centre, radius, n_views, size, fov_deg=fov_deg, seed=seed, up=up)
    caster = MeshRaycaster(mesh)
    C, H, W = len(cameras), cameras.height, cameras.width
    s = max(1, int(supersample))
    sub = (np.arange(s) + 0.5) / s
    offsets = np.stack(np.meshgrid(sub, sub, indexing="xy"), -1).reshape(-1, 2)
    uv = np.concatenate([_pixel_grid(W, H, np.array([[0.5, 0.5]])), _pixel_grid(W, H, offsets)])
    bg = np.asarray(background, np.float64)
    rgb = np.empty((C, H, W, 3), np.float32)
    alpha = np.empty((C, H, W), np.float32)
    depth = np.empty((C, H, W), np.float32)
    normals = np.empty((C, H, W, 3), np.float32)
    for c in range(C):  # loop over views; every ray of a view is cast in one call
        o, d, cos = pixel_rays(cameras.K[c], cameras.cam_to_world[c], uv)
        hits = caster.cast(o, d)
        n_pix = H * W
        depth[c] = (hits.t[:n_pix] * cos[:n_pix]).reshape(H, W)
        normals[c] = hits.normals[:n_pix].reshape(H, W, 3)
        hs = hits.hit[n_pix:]
        col = surface_colour(hits.points[n_pix:], hits.normals[n_pix:], centre, radius)
        col = np.where(hs[:, None], col, bg[None])
        rgb[c] = col.reshape(s * s, H, W, 3).mean(0)
        alpha[c] = hs.reshape(s * s, H, W).mean(0)
    info = {"n_views": C, "size": [W, H], "seed": seed, "fov_deg": fov_deg, "supersample": s,
            "background": list(map(float, bg)), "up": list(map(float, up))}
    return RenderResult(cameras, rgb, alpha, depth, normals, centre, radius, info)


__all__ = ["RenderResult", "render_views"]
