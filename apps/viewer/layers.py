"""The pieces a viewer layer is made of: how to colour it, the layer itself, and the conversions from
recon types that every adapter shares (meshes to pyvista, camera frustum corners).

Adapters (apps/viewer/scene.py and the modules of other input kinds) build on these; this module
imports none of them, so any of them may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyvista as pv

from recon.types import Cameras, Mesh

MESH_STYLES = ("smooth", "flat", "wireframe")
"""Surface styles, in the order the ``m`` key cycles them."""

POINT_COLORINGS = ("rgb", "normal", "height", "solid")
"""Built-in colourings; any numeric per-point attribute name is accepted too, and
``error`` (distance to the ground truth) when a GT mesh is given."""

ERROR_SCALARS = "distance to GT"


@dataclass
class Coloring:
    """One way to colour a layer.

    Attributes:
        name: what the user types (``--color-by``) and sees in the help overlay.
        scalars: the point-data array to colour by; None means one solid colour.
        rgb: the array holds uint8 RGB colours to show as they are.
        cmap: colour map for scalar arrays.
        clim: (low, high) of the colour map; None lets pyvista use the data range.
        bar: title of the scalar bar to show with it (None: no bar).
    """

    name: str
    scalars: str | None = None
    rgb: bool = False
    cmap: str | None = None
    clim: tuple[float, float] | None = None
    bar: str | None = None


@dataclass
class Layer:
    """Something to draw: a dataset, its colourings and its style.

    Attributes:
        name: a short kind name shared by the layers one key toggles ("points",
            "mesh", "normals", "gt", "cameras").
        dataset: the pyvista dataset.
        kind: "points", "surface" or "lines".
        colorings: the available colourings; ``coloring`` indexes the current one.
        coloring: index of the current colouring.
        style: surface style, one of :data:`MESH_STYLES` (surfaces only).
        visible: drawn or hidden.
        color: the solid colour.
        opacity: 0..1.
        point_size: pixels (points).
        line_width: pixels (lines and wireframes).
        source: what the dataset was made from when it can be remade (a saved field's
            :class:`~recon_apps.viewer.fields.FieldSource`), else None.
    """

    name: str
    dataset: pv.DataSet
    kind: str
    colorings: list[Coloring] = field(default_factory=lambda: [Coloring("solid")])
    coloring: int = 0
    style: str = "smooth"
    visible: bool = True
    color: str = "lightgray"
    opacity: float = 1.0
    point_size: float = 3.0
    line_width: float = 1.0
    source: Any = None

    @property
    def current(self) -> Coloring:
        return self.colorings[self.coloring]

    def add_mesh_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`pyvista.Plotter.add_mesh` in the current state."""
        c = self.current
        kw: dict[str, Any] = {"opacity": self.opacity, "reset_camera": False, "pickable": self.kind != "lines"}
        if c.scalars is None:
            kw["color"] = self.color
        else:
            kw.update(scalars=c.scalars, rgb=c.rgb)
            if not c.rgb:
                kw.update(cmap=c.cmap or "viridis", clim=c.clim, show_scalar_bar=c.bar is not None)
                if c.bar is not None:
                    kw["scalar_bar_args"] = {"title": c.bar, "vertical": False, "position_x": 0.42,
                                             "position_y": 0.03, "height": 0.06, "width": 0.5, "n_labels": 3,
                                             "fmt": "%.3g", "title_font_size": 14, "label_font_size": 12,
                                             "color": "#e8e8e8"}
        if self.kind == "points":
            kw.update(style="points", point_size=self.point_size, render_points_as_spheres=False)
        elif self.kind == "lines":
            kw.update(line_width=self.line_width)
        else:
            if self.style == "wireframe":
                kw.update(style="wireframe", line_width=self.line_width)
            else:
                kw.update(smooth_shading=self.style == "smooth")
        return kw


def mesh_to_polydata(mesh: Mesh) -> pv.PolyData:
    """A pyvista PolyData of a recon Mesh (vertex colours as uint8 ``rgb``)."""
    poly = pv.PolyData.from_regular_faces(np.asarray(mesh.vertices, dtype=np.float64), mesh.faces)
    if mesh.vertex_colors is not None:
        poly.point_data["rgb"] = (np.clip(mesh.vertex_colors, 0, 1) * 255 + 0.5).astype(np.uint8)
    return poly


def frustum_corners(cameras: Cameras, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera centres (C, 3) and image-corner points at ``depth`` along the optical axis (C, 4, 3).

    Corners are the pixel-grid corners (0,0), (w,0), (w,h), (0,h) back-projected
    through ``K`` (OpenCV: x right, y down, z forward) and mapped by ``cam_to_world``.
    """
    K = np.asarray(cameras.K, dtype=np.float64).reshape(-1, 3, 3)
    T = np.asarray(cameras.cam_to_world, dtype=np.float64).reshape(-1, 4, 4)
    w, h = float(cameras.width), float(cameras.height)
    pix = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], dtype=np.float64)
    rays = np.einsum("cij,kj->cki", np.linalg.inv(K), pix)  # (C, 4, 3) with z = 1
    cam_pts = rays * depth
    corners = np.einsum("cij,ckj->cki", T[:, :3, :3], cam_pts) + T[:, None, :3, 3]
    return T[:, :3, 3].copy(), corners


__all__ = ["Coloring", "ERROR_SCALARS", "Layer", "MESH_STYLES", "POINT_COLORINGS", "frustum_corners",
           "mesh_to_polydata"]
