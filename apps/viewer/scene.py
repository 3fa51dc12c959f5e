"""Build viewer layers (pyvista datasets plus how to draw them) from recon types.

The viewer never draws recon objects directly. Each input object is turned into
:class:`Layer` objects by an *adapter* registered for its type with
:func:`register_adapter`; a :class:`Panel` groups the layers of one input (or of
all inputs with ``overlay``). Later input kinds (posed-image folders, saved fields)
plug in by registering one more adapter; the window, the keys, screenshots and the
web mode then work for them unchanged.

Built-in adapters: :class:`recon.types.PointCloud`, :class:`recon.types.Mesh`,
:class:`recon.types.Cameras` and :class:`recon.types.Views` (camera frustums).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pyvista as pv

from recon.errors import ConfigError
from recon.types import Cameras, Mesh, PointCloud, Views

from recon_apps.viewer.fields import FieldSource
from recon_apps.viewer.gaussians import GaussianSource, gaussian_layers
from recon_apps.viewer.heatmap import distance_to_mesh
from recon_apps.viewer.layers import (ERROR_SCALARS, MESH_STYLES, POINT_COLORINGS, Coloring, Layer, frustum_corners,
                                      mesh_to_polydata)
from recon_apps.viewer.posed import PosedImageSet, thumbnails_polydata

@dataclass
class Panel:
    """One sub-window: a title, layers and an optional corner text (metrics)."""

    title: str
    layers: list[Layer] = field(default_factory=list)
    text: str | None = None


@dataclass
class SceneOptions:
    """How inputs become layers.

    Attributes:
        color_by: "auto", one of :data:`POINT_COLORINGS`, "error", or an attribute name.
        style: one of :data:`MESH_STYLES`.
        cmap: colour map for scalar colourings (height, attributes, error).
        point_size: point size in pixels.
        normals: show the normal glyphs from the start.
        max_glyphs: at most this many normal glyphs (a seeded subsample).
        max_points: at most this many points are drawn (a seeded subsample).
        frustum_depth: camera frustum depth in world units; None: 10 % of the rig size.
        gt: ground-truth mesh for the error heat map, or None.
        error_max: top of the error colour map in world units; None: the 95th percentile.
        up: the world's up axis ("x", "y", "z", "-x", "-y", "-z"): heights and the camera use it.
    """

    color_by: str = "auto"
    style: str = "smooth"
    cmap: str = "viridis"
    point_size: float = 3.0
    normals: bool = False
    max_glyphs: int = 3000
    max_points: int = 3_000_000
    frustum_depth: float | None = None
    gt: Mesh | None = None
    error_max: float | None = None
    up: str = "z"

    def up_vector(self) -> np.ndarray:
        """The up axis as a unit vector.

        Raises:
            ConfigError: not one of x, y, z with an optional minus sign.
        """
        return up_vector(self.up)


def up_vector(up: str) -> np.ndarray:
    """``"y"`` -> (0, 1, 0), ``"-z"`` -> (0, 0, -1).

    Raises:
        ConfigError: not one of x, y, z with an optional sign.
    """
    text = str(up).strip().lower()
    sign = -1.0 if text.startswith("-") else 1.0
    axis = text.lstrip("+-")
    if axis not in ("x", "y", "z"):
        raise ConfigError(f"unknown up axis '{up}'", None, "use --up x, y or z (or -x, -y, -z)")
    v = np.zeros(3)
    v["xyz".index(axis)] = sign
    return v


Adapter = Callable[[Any, str, SceneOptions], list[Layer]]
_ADAPTERS: list[tuple[type, Adapter]] = []


def register_adapter(cls: type) -> Callable[[Adapter], Adapter]:
    """Decorator: ``@register_adapter(MyType)`` makes ``fn(obj, label, options) -> [Layer]``
    the way the viewer draws ``MyType`` objects (later registrations win)."""

    def deco(fn: Adapter) -> Adapter:
        _ADAPTERS.insert(0, (cls, fn))
        return fn

    return deco


def layers_for(obj: Any, label: str, options: SceneOptions) -> list[Layer]:
    """The layers of one input object.

    Raises:
        ConfigError: no adapter draws this type.
    """
    for cls, fn in _ADAPTERS:
        if isinstance(obj, cls):
            return fn(obj, label, options)
    raise ConfigError(f"the viewer cannot show a {type(obj).__name__}", label,
                      "pass a point cloud, a mesh, Cameras or Views")


def build_panels(items: Sequence[tuple[str, Any]], options: SceneOptions, overlay: bool = False) -> list[Panel]:
    """Panels for ``(label, object)`` pairs: one per input, or one for all with ``overlay``.

    The GT mesh (if any) is added to every panel as a hidden translucent layer.
    """
    panels = []
    for label, obj in items:
        layers = layers_for(obj, label, options)
        if overlay and panels:
            panels[0].layers.extend(layers)
            if label:
                panels[0].title = f"{panels[0].title} + {label}" if panels[0].title else label
        else:
            panels.append(Panel(label, layers))
    if options.gt is not None:
        for p in panels:
            gt = Layer("gt", mesh_to_polydata(options.gt), "surface", color="white", opacity=0.35, visible=False)
            p.layers.append(gt)
    return panels


# ---------------------------------------------------------------- helpers


def normals_to_rgb(normals: np.ndarray) -> np.ndarray:
    """Unit normals mapped to uint8 colours, ``(n + 1) / 2`` per axis (+x red, +y green, +z blue)."""
    return (np.clip((np.asarray(normals, dtype=np.float64) + 1.0) * 0.5, 0, 1) * 255 + 0.5).astype(np.uint8)


def _subsample(n: int, k: int, seed: int = 0) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def normal_glyphs(points: np.ndarray, normals: np.ndarray, count: int, length: float) -> pv.PolyData:
    """Line segments ``p -> p + length * n`` for a seeded subsample of ``count`` points."""
    idx = _subsample(len(points), count, seed=1)
    p = np.asarray(points, dtype=np.float64)[idx]
    n = np.asarray(normals, dtype=np.float64)[idx]
    pts = np.concatenate([p, p + length * n])
    m = len(idx)
    lines = np.column_stack([np.full(m, 2), np.arange(m), np.arange(m) + m]).ravel()
    return pv.PolyData(pts, lines=lines)


def _height_coloring(options: SceneOptions) -> Coloring:
    return Coloring("height", "height", cmap=options.cmap, bar=f"height ({options.up.lstrip('+')})")


def _error_coloring(poly: pv.PolyData, options: SceneOptions) -> Coloring | None:
    if options.gt is None:
        return None
    d = distance_to_mesh(np.asarray(poly.points), options.gt)
    poly.point_data[ERROR_SCALARS] = d
    top = options.error_max if options.error_max is not None else float(np.percentile(d, 95)) if d.size else 0.0
    gt_size = float(np.linalg.norm(np.ptp(options.gt.vertices, axis=0))) or 1.0
    top = max(top, 1e-4 * gt_size)  # a perfect match still gets a readable scale
    return Coloring("error", ERROR_SCALARS, cmap=options.cmap, clim=(0.0, top), bar=ERROR_SCALARS)


def _order(colorings: list[Coloring], wanted: str, label: str, default: str) -> list[Coloring]:
    """Put the requested colouring first (``auto``: ``default``); unknown names raise."""
    names = [c.name for c in colorings]
    target = default if wanted == "auto" else wanted
    if target not in names:
        if wanted == "auto":
            return colorings
        raise ConfigError(f"cannot colour by '{wanted}' (available: {', '.join(names)})", label,
                          f"use --color-by {' or '.join(names[:3])}")
    i = names.index(target)
    return colorings[i:] + colorings[:i]


def _diagonal(points: np.ndarray) -> float:
    if len(points) == 0:
        return 1.0
    d = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    return d if d > 0 else 1.0


# ---------------------------------------------------------------- adapters


@register_adapter(PointCloud)
def cloud_layers(cloud: PointCloud, label: str, options: SceneOptions) -> list[Layer]:
    """Points (coloured by rgb / normal / height / attribute / error / solid) and normal glyphs."""
    idx = _subsample(len(cloud), options.max_points)
    pts = cloud.points[idx]
    poly = pv.PolyData(pts)
    colorings: list[Coloring] = []
    err = _error_coloring(poly, options)
    if err is not None:
        colorings.append(err)
    if cloud.colors is not None:
        poly.point_data["rgb"] = (np.clip(cloud.colors[idx], 0, 1) * 255 + 0.5).astype(np.uint8)
        colorings.append(Coloring("rgb", "rgb", rgb=True))
    if cloud.normals is not None:
        poly.point_data["normal_rgb"] = normals_to_rgb(cloud.normals[idx])
        colorings.append(Coloring("normal", "normal_rgb", rgb=True))
    poly.point_data["height"] = pts @ options.up_vector()
    colorings.append(_height_coloring(options))
    for name, values in sorted(cloud.attrs.items()):
        v = np.asarray(values)
        if v.ndim == 1 and v.shape[0] == len(cloud) and np.issubdtype(v.dtype, np.number) and name not in poly.point_data:
            poly.point_data[name] = v[idx].astype(np.float64)
            colorings.append(Coloring(name, name, cmap=options.cmap, bar=name))
    colorings.append(Coloring("solid"))
    default = "error" if err is not None else "rgb" if cloud.colors is not None else \
        "normal" if cloud.normals is not None else "height"
    layers = [Layer("points", poly, "points", _order(colorings, options.color_by, label, default),
                    point_size=options.point_size)]
    if cloud.normals is not None:
        glyphs = normal_glyphs(pts, cloud.normals[idx], options.max_glyphs, 0.02 * _diagonal(pts))
        layers.append(Layer("normals", glyphs, "lines", color="orange", visible=options.normals))
    return layers


@register_adapter(Mesh)
def mesh_layers(mesh: Mesh, label: str, options: SceneOptions) -> list[Layer]:
    """The surface (error / rgb / height / normal / solid colourings; smooth, flat or wireframe)."""
    if options.style not in MESH_STYLES:
        raise ConfigError(f"unknown mesh style '{options.style}'", None, f"use --style {', '.join(MESH_STYLES)}")
    poly = mesh_to_polydata(mesh)
    colorings: list[Coloring] = []
    err = _error_coloring(poly, options)
    if err is not None:
        colorings.append(err)
    if mesh.vertex_colors is not None:
        colorings.append(Coloring("rgb", "rgb", rgb=True))
    poly.point_data["height"] = np.asarray(poly.points, dtype=np.float64) @ options.up_vector()
    colorings.append(_height_coloring(options))
    poly = poly.compute_normals(point_normals=True, cell_normals=False, split_vertices=False,
                                auto_orient_normals=False, consistent_normals=False)
    poly.point_data["normal_rgb"] = normals_to_rgb(poly.point_data["Normals"])
    colorings.append(Coloring("normal", "normal_rgb", rgb=True))
    colorings.append(Coloring("solid"))
    default = "error" if err is not None else "rgb" if mesh.vertex_colors is not None else "solid"
    layers = [Layer("mesh", poly, "surface", _order(colorings, options.color_by, label, default),
                    style=options.style, color="lightsteelblue")]
    if options.normals:
        glyphs = normal_glyphs(np.asarray(poly.points), poly.point_data["Normals"], options.max_glyphs,
                               0.02 * _diagonal(np.asarray(poly.points)))
        layers.append(Layer("normals", glyphs, "lines", color="orange"))
    return layers


def frustum_polydata(cameras: Cameras, depth: float) -> pv.PolyData:
    """One line set for all cameras: per camera 4 apex edges, 4 image-rectangle edges and an
    "up" tick above the image's top edge (y down, so the tick marks row 0). Cell data
    ``camera`` holds the camera index of each cell (9 cells per camera)."""
    centres, corners = frustum_corners(cameras, depth)
    C = len(centres)
    top_mid = 0.5 * (corners[:, 0] + corners[:, 1])
    # "up" is towards row 0: from the image centre through the top-edge midpoint.
    centre_img = corners.mean(axis=1)
    tick = top_mid + 0.3 * (top_mid - centre_img)
    pts = np.concatenate([centres[:, None], corners, tick[:, None]], axis=1)  # (C, 6, 3)
    base = (np.arange(C) * 6)[:, None]
    segs = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1]])
    lines = np.concatenate([np.full((C, 8, 1), 2), base[:, :, None] + segs[None]], axis=2)  # (C, 8, 3)
    tri = np.concatenate([np.full((C, 1), 4), base + 1, base + 5, base + 2, base + 1], axis=1)  # polyline 1-5-2-1
    cells = np.concatenate([lines.reshape(C, -1), tri], axis=1).ravel()
    poly = pv.PolyData(pts.reshape(-1, 3), lines=cells)
    poly.cell_data["camera"] = np.repeat(np.arange(C), 9)
    return poly


def default_frustum_depth(cameras: Cameras) -> float:
    """10 % of the rig's size (median centre distance from the centres' mean); 1.0 for one camera."""
    centres = np.asarray(cameras.cam_to_world, dtype=np.float64).reshape(-1, 4, 4)[:, :3, 3]
    if len(centres) < 2:
        return 1.0
    r = float(np.median(np.linalg.norm(centres - centres.mean(axis=0), axis=1)))
    return 0.1 * r if r > 0 else 1.0


@register_adapter(Cameras)
def camera_layers(cameras: Cameras, label: str, options: SceneOptions) -> list[Layer]:
    """One frustum per camera."""
    if len(cameras) == 0:
        raise ConfigError("no cameras to show", label, "pass at least one camera")
    depth = options.frustum_depth if options.frustum_depth is not None else default_frustum_depth(cameras)
    return [Layer("cameras", frustum_polydata(cameras, depth), "lines", color="gold", line_width=2.0)]


@register_adapter(FieldSource)
def field_layers(source: Any, label: str, options: SceneOptions) -> list[Layer]:
    """A saved field: the mesh of its current level set, remade when the viewer's sliders move."""
    layers = mesh_layers(source.mesh(), label, options)
    layers[0].source = source
    return layers


@register_adapter(PosedImageSet)
def posed_layers(posed: Any, label: str, options: SceneOptions) -> list[Layer]:
    """A posed-image folder: frustums, the images as thumbnails on them, and its sparse points."""
    cams = posed.views.cameras
    depth = options.frustum_depth if options.frustum_depth is not None else default_frustum_depth(cams)
    layers = camera_layers(cams, label, options)
    thumbs = thumbnails_polydata(posed.views, depth)
    if thumbs is not None:
        layers.append(Layer("cameras", thumbs, "surface", [Coloring("rgb", "rgb", rgb=True)]))
    if posed.points is not None:
        layers = cloud_layers(posed.points, label, options) + layers
    return layers


@register_adapter(Views)
def views_layers(views: Views, label: str, options: SceneOptions) -> list[Layer]:
    """Posed images: their cameras' frustums (images themselves come with the posed-image loader)."""
    return camera_layers(views.cameras, label, options)


__all__ = [
    "Coloring",
    "ERROR_SCALARS",
    "Layer",
    "MESH_STYLES",
    "POINT_COLORINGS",
    "Panel",
    "SceneOptions",
    "build_panels",
    "default_frustum_depth",
    "frustum_corners",
    "frustum_polydata",
    "layers_for",
    "mesh_to_polydata",
    "normal_glyphs",
    "normals_to_rgb",
    "register_adapter",
    "up_vector",
]

register_adapter(GaussianSource)(gaussian_layers)
